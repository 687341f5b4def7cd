//! Drop and audit events as JSON lines, for a SIEM. The schema is documented
//! in `docs/agent.md` ("Event log"); keep the two in step.
//!
//! Events carry the zone and rule ids of the policy generation that decided
//! them; [`Images`] keeps the last few images so that an event read just after
//! a reload still names the zones and rule of the policy that dropped it.

use std::{
    collections::VecDeque,
    io::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Context as _;
use serde::Serialize;
use wardgate_common::{
    EVENT_AUDIT, Event, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP,
    RULE_NONE, counter,
};
use wardgate_compiler::PolicyImage;

use crate::{config::EventSink, quarantine};

/// Images by generation, newest last.
#[derive(Clone, Default)]
pub struct Images {
    by_generation: VecDeque<(u32, Arc<PolicyImage>)>,
}

impl Images {
    const KEEP: usize = 4;

    pub fn push(&mut self, generation: u32, image: Arc<PolicyImage>) {
        self.by_generation.push_back((generation, image));
        while self.by_generation.len() > Self::KEEP {
            self.by_generation.pop_front();
        }
    }

    pub fn get(&self, generation: u32) -> Option<&PolicyImage> {
        self.by_generation
            .iter()
            .rev()
            .find(|(g, _)| *g == generation)
            .map(|(_, i)| i.as_ref())
    }
}

/// The rule of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventRule {
    pub id: u32,
    /// `allow` or `deny`; null when the image of the event's generation is unknown.
    pub action: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub text: Option<String>,
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    /// RFC 3339, UTC, nanoseconds.
    pub time: String,
    /// Name of the interface the packet arrived on (its index if it has no name).
    pub interface: String,
    /// `drop` or `audit`.
    pub verdict: &'static str,
    /// `policy`, `quarantine`, `fragment` (or another drop counter's name).
    pub reason: String,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, or the protocol number.
    pub protocol: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TCP, UDP and SCTP only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// ICMP and ICMPv6 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// Zone names; null when the image of the event's generation is unknown.
    pub src_zone: Option<String>,
    pub dst_zone: Option<String>,
    /// The deciding rule; null for default deny, intra-zone decisions,
    /// quarantine and fragment drops.
    pub rule: Option<EventRule>,
    /// The policy generation in force.
    pub generation: u32,
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

fn reason_name(reason: u32) -> String {
    match reason {
        counter::AUDIT | counter::DROP_POLICY => "policy".into(),
        r => counter::NAMES.get(r as usize).map_or_else(
            || r.to_string(),
            |n| n.trim_start_matches("drop_").to_owned(),
        ),
    }
}

/// The interface name of `ifindex` in this network namespace.
pub fn ifname(ifindex: u32) -> String {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires.
    #[allow(unsafe_code, reason = "if_indextoname(3) has no safe wrapper in std")]
    let ptr = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast()) };
    if ptr.is_null() {
        return ifindex.to_string();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Converts `bpf_ktime_get_ns` (CLOCK_MONOTONIC) times to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall-clock nanoseconds minus monotonic nanoseconds, sampled once.
    offset_ns: i128,
}

fn clock_ns(id: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    #[allow(unsafe_code, reason = "clock_gettime(2) for CLOCK_MONOTONIC")]
    unsafe {
        libc::clock_gettime(id, &raw mut ts)
    };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Clock {
    pub fn new() -> Self {
        Self {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        }
    }

    /// Monotonic nanoseconds now (the program's clock).
    pub fn monotonic_now() -> u64 {
        u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
    }

    /// RFC 3339 UTC time of a monotonic timestamp.
    pub fn rfc3339(&self, mono_ns: u64) -> String {
        let wall = i128::from(mono_ns) + self.offset_ns;
        jiff::Timestamp::from_nanosecond(wall).map_or_else(|_| wall.to_string(), |t| t.to_string())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl EventRule {
    /// Rule `id` as the image of its generation names it; `None` for no rule
    /// (`RULE_NONE`: the default deny or a monitored pass).
    #[must_use]
    pub fn named(image: Option<&PolicyImage>, id: u32) -> Option<Self> {
        (id != RULE_NONE).then(|| {
            let meta = image.and_then(|i| i.rule(id));
            Self {
                id,
                action: meta.map(|m| m.action.as_str().to_owned()),
                file: meta.map(|m| m.file.clone()),
                line: meta.map(|m| m.line),
                text: meta.map(|m| m.text.clone()),
            }
        })
    }
}

/// The record of an event, resolved against the image of its generation.
pub fn record(event: &Event, images: &Images, clock: &Clock) -> EventRecord {
    let image = images.get(event.generation);
    let zone = |id: u32| image.map(|i| i.zone_name(id).to_owned());
    let rule = EventRule::named(image, event.rule);
    let ports = matches!(event.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP);
    let icmp = matches!(event.proto, IPPROTO_ICMP | IPPROTO_ICMPV6);
    EventRecord {
        time: clock.rfc3339(event.ts_ns),
        interface: ifname(event.ifindex),
        verdict: if event.verdict == EVENT_AUDIT {
            "audit"
        } else {
            "drop"
        },
        reason: reason_name(event.reason),
        protocol: protocol_name(event.proto),
        src: quarantine::addr(event.src),
        dst: quarantine::addr(event.dst),
        src_port: ports.then_some(event.sport),
        dst_port: ports.then_some(event.dport),
        icmp_type: icmp.then(|| u8::try_from(event.dport).unwrap_or(u8::MAX)),
        src_zone: zone(event.src_zone),
        dst_zone: zone(event.dst_zone),
        rule,
        generation: event.generation,
    }
}

/// Where the JSON lines go.
pub enum Writer {
    Stdout,
    File {
        path: PathBuf,
        file: std::fs::File,
        /// Bytes in the file now (for the size budget).
        size: u64,
        /// Rotate to `<path>.1` before the file would grow past this.
        max_bytes: Option<u64>,
    },
    Off,
}

/// Opens (creating it 0640) the event log for appending; refuses anything
/// but a regular file.
fn open_append(path: &Path) -> anyhow::Result<(std::fs::File, u64)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot open the event log `{}`", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot open the event log `{}`", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "the event log `{}` is not a regular file (give a file, `stdout` or `off`)",
            path.display()
        );
    }
    Ok((file, meta.len()))
}

impl Writer {
    pub fn open(sink: &EventSink, max_bytes: Option<u64>) -> anyhow::Result<Self> {
        Ok(match sink {
            EventSink::Stdout => Self::Stdout,
            EventSink::Off => Self::Off,
            EventSink::File(path) => {
                let (file, size) = open_append(path)?;
                Self::File {
                    path: path.clone(),
                    file,
                    size,
                    max_bytes,
                }
            }
        })
    }

    /// Reopens a file sink (after log rotation).
    pub fn reopen(&mut self) -> anyhow::Result<()> {
        if let Self::File {
            path, file, size, ..
        } = self
        {
            (*file, *size) = open_append(path)?;
        }
        Ok(())
    }

    /// Writes records, one JSON object per line, in one write. On an error
    /// nothing of the batch counts as written.
    pub fn write<R: Serialize>(&mut self, records: &[R]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(records.len() * 320);
        for r in records {
            serde_json::to_writer(&mut buf, r)?;
            buf.push(b'\n');
        }
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&buf)?;
                out.flush()
            }
            Self::File {
                path,
                file,
                size,
                max_bytes,
            } => {
                if let Some(max) = *max_bytes
                    && *size > 0
                    && *size + buf.len() as u64 > max
                {
                    // Built-in rotation: one old file is kept.
                    let mut old = path.clone().into_os_string();
                    old.push(".1");
                    std::fs::rename(&*path, &old)?;
                    (*file, *size) = open_append(path).map_err(std::io::Error::other)?;
                }
                file.write_all(&buf)?;
                *size += buf.len() as u64;
                Ok(())
            }
            Self::Off => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardgate_common::{EVENT_DROP, v4_mapped};

    #[test]
    fn record_without_image_has_ids_only() {
        let event = Event {
            ts_ns: 0,
            src: v4_mapped([10, 0, 0, 1]),
            dst: v4_mapped([10, 0, 0, 2]),
            sport: 1234,
            dport: 443,
            proto: IPPROTO_TCP,
            verdict: EVENT_DROP,
            family: 4,
            reason: counter::DROP_POLICY,
            ifindex: 1,
            src_zone: 1,
            dst_zone: 2,
            rule: 7,
            generation: 3,
            ..Event::default()
        };
        let r = record(&event, &Images::default(), &Clock::new());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["verdict"], "drop");
        assert_eq!(json["reason"], "policy");
        assert_eq!(json["protocol"], "tcp");
        assert_eq!(json["src"], "10.0.0.1");
        assert_eq!(json["dst_port"], 443);
        assert_eq!(json["rule"]["id"], 7);
        assert!(json["rule"]["file"].is_null());
        assert!(json["src_zone"].is_null());
        assert!(json.get("icmp_type").is_none());
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
    }
}
