//! The flows log: the kernel's flow records (`WG_FLOWS`, one per new
//! connection key) drained into JSON lines, one record per key per drain.
//! The format is documented in `docs/agent.md` ("Flows log"); keep the two
//! in step. `wardgate suggest` and `wardgate drift` read it.
//!
//! Draining reads and deletes each key in one `BPF_MAP_LOOKUP_AND_DELETE_ELEM`
//! call, so a connection the program counts while the agent drains lands
//! either in this drain or in the next: never in both, and never lost, except
//! an increment racing with the delete itself on another CPU (the program
//! then updates a value already taken; nanoseconds wide, at most one per CPU).

use std::net::IpAddr;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};

use aya::maps::{HashMap, IterableMap as _, Map, MapData, PerCpuArray};
use serde::Serialize;
use wardgate_common::{
    FLOW_AUDIT, FLOW_DROP, FLOW_FULL_SLOT, FlowKey, FlowValue, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP,
};

use crate::eventlog::{Clock, EventRule, Images, ifname};
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

/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (Linux 5.14 for hash maps).
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;

/// The `bpf_attr` layout of the map element commands.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Reads and deletes `key` in one call; `None` if it is not there.
fn take(fd: BorrowedFd<'_>, key: &FlowKey) -> std::io::Result<Option<FlowValue>> {
    let mut value = FlowValue::default();
    let attr = ElemAttr {
        map_fd: u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX),
        _pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: std::ptr::from_mut(&mut value) as u64,
        flags: 0,
    };
    // SAFETY: `attr` points at a live key and a value buffer of the map's
    // value size (`FlowValue`, asserted in wardgate-common) for the call.
    #[allow(unsafe_code, reason = "bpf(2) lookup-and-delete has no aya wrapper")]
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            &raw const attr,
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if r == 0 {
        return Ok(Some(value));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// The flow table and its full counter, opened from the program or from
/// the pin directory.
pub struct FlowTable {
    keys: HashMap<MapData, FlowKey, FlowValue>,
    full: PerCpuArray<MapData, u64>,
}

impl FlowTable {
    /// Opens the pinned maps under `pin_dir`.
    ///
    /// # Errors
    /// The maps are not pinned there.
    pub fn open(pin_dir: &std::path::Path) -> anyhow::Result<Self> {
        let open = |name: &str| -> anyhow::Result<Map> {
            let data = MapData::from_pin(crate::pin::map_path(pin_dir, name))?;
            Ok(Map::from_map_data(data)?)
        };
        Ok(Self {
            keys: HashMap::try_from(open(wardgate_common::maps::FLOWS)?)?,
            full: PerCpuArray::try_from(open(wardgate_common::maps::FLOW_FULL)?)?,
        })
    }

    /// Takes the maps out of a loaded program (tests).
    ///
    /// # Errors
    /// The program has no flow maps.
    pub fn take(ebpf: &mut aya::Ebpf) -> anyhow::Result<Self> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow::anyhow!("the program has no map `{name}`"))
        };
        Ok(Self {
            keys: HashMap::try_from(take(wardgate_common::maps::FLOWS)?)?,
            full: PerCpuArray::try_from(take(wardgate_common::maps::FLOW_FULL)?)?,
        })
    }

    /// Every record, each read and deleted at once, at most `max`.
    ///
    /// # Errors
    /// A map operation fails for another reason than a key gone.
    pub fn drain(&mut self, max: usize) -> anyhow::Result<Vec<(FlowKey, FlowValue)>> {
        let keys: Vec<FlowKey> = self.keys.keys().filter_map(Result::ok).take(max).collect();
        let fd = self.keys_fd();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = take(fd, &k)? {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    fn keys_fd(&self) -> BorrowedFd<'_> {
        self.keys.map().fd().as_fd()
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
}
