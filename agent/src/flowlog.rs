//! The flows log: the kernel's flow records (`WG_FLOWS`, one per new
//! connection key) drained into JSON lines, one record per key per drain.
//! The format is documented in `docs/agent.md` ("Flows log"); keep the two
//! in step. `wardgate suggest` and `wardgate drift` read it.
//!
//! The table has two halves (`wardgate_common::flows`). A drain points the
//! program at the other half, waits [`GRACE`] for the program runs that
//! were still writing the old one, then reads and clears the old half
//! through a shared mapping of the array, merging a key's records from
//! several CPUs. A connection the program counts while the agent drains
//! lands either in this drain or in the next: never in both, never lost.

use std::net::IpAddr;

use aya::maps::{Array, Map, MapData, PerCpuArray};
use serde::Serialize;
use wardgate_common::{
    FLOW_AUDIT, FLOW_DROP, FLOW_FULL_SLOT, FLOW_SLOTS, FlowKey, FlowSlot, FlowValue, IPPROTO_ICMP,
    IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, flow_region, maps,
};

use crate::eventlog::{Clock, EventRule, Images, ifname};
use crate::mapped::Mapped;
use crate::quarantine;

/// One line of the flows log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowRecord {
    /// RFC 3339, UTC: the first and last connection of this key in the interval.
    pub time_first: String,
    pub time_last: String,
    pub interface: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, or the protocol number.
    pub proto: String,
    /// TCP, UDP and SCTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// ICMP and ICMPv6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    pub src_zone: Option<String>,
    pub dst_zone: Option<String>,
    /// `allow`, `drop` or `audit`.
    pub verdict: &'static str,
    /// The deciding rule of the latest connection (null: intra-zone or default deny).
    pub rule: Option<EventRule>,
    pub connections: u64,
    pub generation: u32,
}

/// A notice in the flows log (a line with `note`, which readers skip).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Note {
    pub time: String,
    pub note: String,
    /// New connection keys the full table refused since the previous note.
    pub refused: u64,
}

fn protocol_name(proto: u8) -> String {
    match proto {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_ICMP => "icmp".into(),
        IPPROTO_ICMPV6 => "icmpv6".into(),
        IPPROTO_SCTP => "sctp".into(),
        n => n.to_string(),
    }
}

/// A kernel record in the log's words, zones and rule named from the image
/// of its generation.
#[must_use]
pub fn record(key: &FlowKey, value: &FlowValue, images: &Images, clock: &Clock) -> FlowRecord {
    let image = images.get(value.generation);
    let zone = |id: u32| image.map(|i| i.zone_name(id).to_owned());
    let rule = EventRule::named(image, value.rule);
    let ports = matches!(key.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP);
    let icmp = matches!(key.proto, IPPROTO_ICMP | IPPROTO_ICMPV6);
    FlowRecord {
        time_first: clock.rfc3339(value.first_ns),
        time_last: clock.rfc3339(value.last_ns),
        interface: ifname(key.ifindex),
        src: quarantine::addr(key.src),
        dst: quarantine::addr(key.dst),
        proto: protocol_name(key.proto),
        dst_port: ports.then_some(key.port),
        icmp_type: icmp.then(|| u8::try_from(key.port).unwrap_or(u8::MAX)),
        src_zone: zone(value.src_zone),
        dst_zone: zone(value.dst_zone),
        verdict: match key.verdict {
            FLOW_DROP => "drop",
            FLOW_AUDIT => "audit",
            _ => "allow",
        },
        rule,
        connections: value.connections,
        generation: value.generation,
    }
}

/// How long a drain waits after switching halves: far longer than a
/// program run, which is what may still write the old half.
pub const GRACE: std::time::Duration = std::time::Duration::from_millis(10);

/// Reads and frees every used slot of `half` of the mapped `WG_FLOWS`,
/// across all CPUs.
fn take_half(slots: &Mapped<FlowSlot>, half: u32) -> Vec<FlowSlot> {
    let per_half = FLOW_SLOTS as usize;
    let cpus = slots.len() / (2 * per_half);
    let mut out = Vec::new();
    for cpu in 0..cpus {
        let first = flow_region(cpu as u32, half) as usize;
        for index in first..first + per_half {
            let slot = slots.at(index);
            // SAFETY: a value of the mapping; the program no longer writes
            // this half (see `GRACE`), and volatile accesses keep the reads
            // and stores to the shared memory as written.
            #[allow(unsafe_code, reason = "reads and stores in the shared mapping")]
            unsafe {
                let value = slot.read_volatile();
                if value.value.connections != 0 {
                    out.push(value);
                    slot.write_volatile(FlowSlot::default());
                }
            }
        }
    }
    out
}

/// Merges records of one key from several CPUs: counts add up, the times
/// span them all, and the latest connection's decision is kept.
fn merge(slots: Vec<FlowSlot>) -> Vec<(FlowKey, FlowValue)> {
    let mut merged: std::collections::HashMap<FlowKey, FlowValue> =
        std::collections::HashMap::with_capacity(slots.len());
    for FlowSlot { key, value } in slots {
        merged
            .entry(key)
            .and_modify(|m| {
                let latest = if value.last_ns >= m.last_ns {
                    value
                } else {
                    *m
                };
                *m = FlowValue {
                    first_ns: m.first_ns.min(value.first_ns),
                    last_ns: m.last_ns.max(value.last_ns),
                    connections: m.connections + value.connections,
                    ..latest
                };
            })
            .or_insert(value);
    }
    let mut out: Vec<_> = merged.into_iter().collect();
    out.sort_by_key(|(k, v)| (v.first_ns, k.words()));
    out
}

/// The flow table and its full counter, opened from the program or from
/// the pin directory.
pub struct FlowTable {
    slots: Mapped<FlowSlot>,
    half: Array<MapData, u32>,
    full: PerCpuArray<MapData, u64>,
}

impl FlowTable {
    /// Opens the pinned maps under `pin_dir`.
    ///
    /// # Errors
    /// The maps are not pinned there, or cannot be mapped.
    pub fn open(pin_dir: &std::path::Path) -> anyhow::Result<Self> {
        let data = |name: &str| -> anyhow::Result<MapData> {
            Ok(MapData::from_pin(crate::pin::map_path(pin_dir, name))?)
        };
        Ok(Self {
            slots: Mapped::owned(data(maps::FLOWS)?, maps::FLOWS)?,
            half: Array::try_from(Map::from_map_data(data(maps::FLOW_HALF)?)?)?,
            full: PerCpuArray::try_from(Map::from_map_data(data(maps::FLOW_FULL)?)?)?,
        })
    }

    /// Takes the maps out of a loaded program (tests).
    ///
    /// # Errors
    /// The program has no flow maps, or they cannot be mapped.
    pub fn take(ebpf: &mut aya::Ebpf) -> anyhow::Result<Self> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow::anyhow!("the program has no map `{name}`"))
        };
        let Map::Array(flows) = take(maps::FLOWS)? else {
            anyhow::bail!("map `{}` is not an array", maps::FLOWS);
        };
        Ok(Self {
            slots: Mapped::owned(flows, maps::FLOWS)?,
            half: Array::try_from(take(maps::FLOW_HALF)?)?,
            full: PerCpuArray::try_from(take(maps::FLOW_FULL)?)?,
        })
    }

    /// Every record since the previous drain, one per key, oldest first.
    ///
    /// # Errors
    /// The half switch cannot be read or written.
    pub fn drain(&mut self) -> anyhow::Result<Vec<(FlowKey, FlowValue)>> {
        let old = self.half.get(&0, 0)? & 1;
        self.half.set(0, 1 - old, 0)?;
        std::thread::sleep(GRACE);
        Ok(merge(take_half(&self.slots, old)))
    }

    /// New keys refused because the table was full, since the program was loaded.
    ///
    /// # Errors
    /// The counter cannot be read.
    pub fn refused(&self) -> anyhow::Result<u64> {
        let values = self.full.get(&FLOW_FULL_SLOT, 0)?;
        Ok(values.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use wardgate_common::v4_mapped;

    fn image() -> wardgate_compiler::PolicyImage {
        let loaded = wardgate_lang::parse_str(
            "site.ward",
            "zone a { networks 10.1.0.0/24 }\nzone b { networks 10.2.0.0/24 }\nallow a -> b : tcp/443, icmp/echo-request\n",
        );
        wardgate_compiler::compile(&loaded, &wardgate_compiler::Options::default())
            .0
            .unwrap()
    }

    /// The agent's lines are what `wardgate suggest` reads.
    #[test]
    fn records_name_zones_and_rules_and_read_back_in_suggest() {
        let img = Arc::new(image());
        let mut images = Images::default();
        images.push(3, img.clone());
        let key = FlowKey {
            src: v4_mapped([10, 1, 0, 5]),
            dst: v4_mapped([10, 2, 0, 9]),
            ifindex: 1,
            port: 443,
            proto: IPPROTO_TCP,
            verdict: wardgate_common::FLOW_ALLOW,
        };
        let value = FlowValue {
            first_ns: 1_000,
            last_ns: 2_000,
            connections: 4,
            src_zone: img.classify(wardgate_compiler::prefix::addr_key(
                "10.1.0.5".parse().unwrap(),
            )),
            dst_zone: img.classify(wardgate_compiler::prefix::addr_key(
                "10.2.0.9".parse().unwrap(),
            )),
            rule: img.rules()[0].id,
            generation: 3,
        };
        let r = record(&key, &value, &images, &Clock::new());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["src_zone"], "a");
        assert_eq!(json["dst_zone"], "b");
        assert_eq!(json["dst_port"], 443);
        assert_eq!(json["verdict"], "allow");
        assert_eq!(json["connections"], 4);
        assert_eq!(json["rule"]["action"], "allow");
        assert!(json.get("icmp_type").is_none());

        let ping = FlowKey {
            proto: IPPROTO_ICMP,
            port: 8,
            verdict: FLOW_DROP,
            ..key
        };
        let json = serde_json::to_value(record(&ping, &value, &images, &Clock::new())).unwrap();
        assert_eq!(json["icmp_type"], 8);
        assert!(json.get("dst_port").is_none());

        let line = serde_json::to_string(&r).unwrap();
        let mut obs = wardgate_compiler::discover::Observations::default();
        let report = wardgate_compiler::discover::flowlog::read(
            line.as_bytes(),
            wardgate_compiler::discover::Window::default(),
            &mut obs,
        )
        .unwrap();
        assert_eq!(report.bad, 0);
        assert_eq!(obs.flows.values().next().unwrap().connections, 4);
    }

    /// One key counted on two CPUs is one record: counts add up, times
    /// span both, the latest decision wins; other keys stay apart.
    #[test]
    fn records_of_one_key_from_several_cpus_merge() {
        let key = |port| FlowKey {
            src: v4_mapped([10, 1, 0, 1]),
            dst: v4_mapped([10, 2, 0, 1]),
            ifindex: 2,
            port,
            proto: 6,
            verdict: FLOW_DROP,
        };
        let value = |first_ns, last_ns, connections, rule| FlowValue {
            first_ns,
            last_ns,
            connections,
            src_zone: 1,
            dst_zone: 2,
            rule,
            generation: 1,
        };
        let merged = merge(vec![
            FlowSlot {
                key: key(443),
                value: value(100, 500, 3, 7),
            },
            FlowSlot {
                key: key(22),
                value: value(50, 60, 1, 1),
            },
            FlowSlot {
                key: key(443),
                value: value(40, 900, 2, 8),
            },
        ]);
        assert_eq!(
            merged,
            vec![
                (key(443), value(40, 900, 5, 8)),
                (key(22), value(50, 60, 1, 1))
            ]
        );
    }
}
