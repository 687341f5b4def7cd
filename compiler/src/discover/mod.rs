//! Discovery: from observed traffic to a proven policy (`docs/discovery.md`).
//!
//! Observations come from the agent's flows logs ([`flowlog`]) and from
//! packet captures ([`pcap`]); both are read as streams and aggregated into
//! [`Observations`], whose memory grows with the number of distinct flow keys
//! `(source, destination, protocol, destination port or ICMP type)`, never
//! with the size of the input. [`suggest`] turns them into `allow` rules for
//! the pairs the policy does not allow yet, named from the policy's services
//! then from a [`catalog`] of clinical and infrastructure services, each with
//! its evidence, and checked against the site's requirements; [`drift`]
//! compares them with the policy in force.
//!
//! Pure like the rest of the crate: readers take `impl Read`, the CLI opens
//! the files.

pub mod catalog;
pub mod drift;
pub mod flowlog;
pub mod pcap;
pub mod suggest;

use std::collections::HashMap;
use std::net::IpAddr;

/// What every observation is aggregated by. The client's port is never part
/// of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port (TCP, UDP, SCTP), ICMP type (ICMP, ICMPv6), else 0.
    pub port: u16,
}

/// Seconds since the Unix epoch (UTC).
pub type Seconds = i64;

/// A verdict as the agent logged it (a capture has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoggedVerdict {
    Allow,
    Drop,
    Audit,
}

impl LoggedVerdict {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Drop => "drop",
            Self::Audit => "audit",
        }
    }
}

/// What was seen of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStats {
    pub first: Seconds,
    pub last: Seconds,
    pub connections: u64,
    /// Distinct UTC days (days since the epoch) with a record, sorted; a
    /// record spanning days counts its first and last day.
    pub days: Vec<i32>,
    /// Verdicts the agent logged for this key (empty for captures).
    pub verdicts: Vec<LoggedVerdict>,
}

impl FlowStats {
    fn add_day(&mut self, t: Seconds) {
        let d = i32::try_from(t.div_euclid(86_400)).unwrap_or(i32::MAX);
        if let Err(i) = self.days.binary_search(&d) {
            self.days.insert(i, d);
        }
    }
}

/// Every observation, aggregated by key.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// Keyed with foldhash: keys come from our own inputs, and SipHash cost
    /// a seventh of reading a flows log.
    pub flows: HashMap<FlowKey, FlowStats, foldhash::fast::RandomState>,
    /// Records read (flows-log lines or connections in captures).
    pub records: u64,
    /// Records outside the time window.
    pub outside_window: u64,
}

/// Which records count: those that end at or after `since` and start at
/// or before `until`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<Seconds>,
    pub until: Option<Seconds>,
}

impl Window {
    #[must_use]
    pub fn contains(&self, first: Seconds, last: Seconds) -> bool {
        self.since.is_none_or(|s| last >= s) && self.until.is_none_or(|u| first <= u)
    }
}

impl Observations {
    /// Adds one record (already known to be in the window).
    pub fn add(
        &mut self,
        key: FlowKey,
        first: Seconds,
        last: Seconds,
        connections: u64,
        verdict: Option<LoggedVerdict>,
    ) {
        self.records += 1;
        let s = self.flows.entry(key).or_insert_with(|| FlowStats {
            first,
            last,
            connections: 0,
            days: Vec::new(),
            verdicts: Vec::new(),
        });
        s.first = s.first.min(first);
        s.last = s.last.max(last);
        s.connections = s.connections.saturating_add(connections);
        s.add_day(first);
        if last != first {
            s.add_day(last);
        }
        if let Some(v) = verdict
            && !s.verdicts.contains(&v)
        {
            s.verdicts.push(v);
            s.verdicts.sort_unstable();
        }
    }

    /// Adds another set of observations (of other records) to these.
    pub fn merge(&mut self, other: Observations) {
        self.records += other.records;
        self.outside_window += other.outside_window;
        for (key, o) in other.flows {
            match self.flows.entry(key) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(o);
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let s = e.get_mut();
                    s.first = s.first.min(o.first);
                    s.last = s.last.max(o.last);
                    s.connections = s.connections.saturating_add(o.connections);
                    for d in o.days {
                        if let Err(i) = s.days.binary_search(&d) {
                            s.days.insert(i, d);
                        }
                    }
                    for v in o.verdicts {
                        if !s.verdicts.contains(&v) {
                            s.verdicts.push(v);
                        }
                    }
                    s.verdicts.sort_unstable();
                }
            }
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

/// RFC 3339 (UTC) of a time in seconds.
#[must_use]
pub fn rfc3339(t: Seconds) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

/// The day of a time, `YYYY-MM-DD` (UTC).
#[must_use]
pub fn day(t: Seconds) -> String {
    rfc3339(t).chars().take(10).collect()
}

/// The protocol's name in the language (`tcp`), else its number.
#[must_use]
pub fn proto_text(p: u8) -> String {
    crate::model::proto_name(p).map_or_else(|| p.to_string(), str::to_owned)
}

/// A protocol name or number as logged (`tcp`, `50`).
#[must_use]
pub fn parse_proto(s: &str) -> Option<u8> {
    match s {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmpv6" => Some(58),
        "sctp" => Some(132),
        n => n.parse().ok(),
    }
}

/// Does the protocol have ports (or ICMP types) in the key?
#[must_use]
pub fn has_port(p: u8) -> bool {
    matches!(p, 1 | 6 | 17 | 58 | 132)
}
