//! Prometheus metrics, in the text exposition format (prometheus-client).
//! Every name is documented in `docs/agent.md` ("Metrics"); keep the two in
//! step.
//!
//! The values live in the kernel (per-CPU counters, rule hits, connection
//! table) and in the agent; a scrape reads them into an [`Input`] and
//! [`render`] encodes it. Nothing is cached between scrapes except the
//! connection-table summary, which costs one syscall per entry.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};
use wardgate_common::counter;

use crate::AttachMode;

/// One rule's verdicts.
#[derive(Clone, Debug)]
pub struct RuleHits {
    pub id: u32,
    pub action: &'static str,
    /// `file:line`.
    pub location: String,
    /// The rule's source and destination, as written.
    pub from: String,
    pub to: String,
    pub hits: u64,
}

/// Tracked connections by state, table and zone (one walk of the tables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    pub new: u64,
    pub established: u64,
    pub closing: u64,
    /// Entries in the unconfirmed table (idled out or not).
    pub unconfirmed_entries: u64,
    /// Entries in the established table (idled out or not).
    pub established_entries: u64,
    /// Live established entries by the zone that started them: `(zone id, n)`.
    pub per_zone: Vec<(u32, u64)>,
    /// Established entries per charge slot, per the program's counters:
    /// `(slot, n)` (a zone id, `CT_SLOT_POOL` or `CT_SLOT_RESERVED`).
    pub charged: Vec<(u32, u64)>,
    /// Idled-out established entries the agent's sweeps removed.
    pub swept: u64,
}

/// Everything one scrape reports.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// Datapath counters, indexed by `counter::*`.
    pub counters: Vec<u64>,
    pub rules: Vec<RuleHits>,
    pub generation: u32,
    pub hash: String,
    pub policy: String,
    pub reload_success: u64,
    pub reload_failure: u64,
    pub last_reload_ok: bool,
    pub interfaces: Vec<(String, AttachMode)>,
    pub tracked: Tracked,
    /// Zone names by id (the policy in force), and their `conntrack-limit`.
    pub zones: Vec<(String, Option<u32>)>,
    pub quarantined: u64,
    pub failsafe_entries: u64,
    pub events_written_drop: u64,
    pub events_written_audit: u64,
    pub events_write_failed: u64,
    pub monitor_all: bool,
    /// Flow records written to the flows log, not written, and new flow
    /// keys the full kernel table refused.
    pub flows_written: u64,
    pub flows_write_failed: u64,
    pub flows_refused: u64,
    /// The bundle source, when the policy is pulled.
    pub bundle: Option<crate::bundle_source::BundleStatus>,
}

type Labels = Vec<(String, String)>;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn label(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_owned(), v.into())
}

/// The exposition text.
pub fn render(input: &Input) -> String {
    let mut registry = Registry::default();
    let c = |i: u32| input.counters.get(i as usize).copied().unwrap_or(0);

    let datapath = Family::<Labels, Counter>::default();
    for (i, name) in counter::NAMES.iter().enumerate() {
        datapath
            .get_or_create(&vec![label("counter", *name)])
            .inc_by(c(u32::try_from(i).unwrap_or(u32::MAX)));
    }
    registry.register(
        "wardgate_datapath",
        "Datapath counters by name (packets parsed, passes, drops, events), since the maps were created",
        datapath,
    );

    let drops = Family::<Labels, Counter>::default();
    for (reason, index) in [
        ("policy", counter::DROP_POLICY),
        ("quarantine", counter::DROP_QUARANTINE),
        ("truncated", counter::DROP_TRUNCATED),
        ("malformed", counter::DROP_MALFORMED),
        ("fragment", counter::DROP_FRAGMENT),
        ("mapped", counter::DROP_MAPPED),
        ("conntrack_limit", counter::DROP_CT_LIMIT),
    ] {
        drops
            .get_or_create(&vec![label("reason", reason)])
            .inc_by(c(index));
    }
    registry.register("wardgate_drops", "Packets dropped, by reason", drops);

    let passes = Family::<Labels, Counter>::default();
    for (reason, index) in [
        ("rule", counter::PASS_RULE),
        ("intra_zone", counter::PASS_INTRA_ZONE),
        ("tracked", counter::PASS_TRACKED),
        ("failsafe", counter::PASS_FAILSAFE),
        ("fragment", counter::PASS_FRAGMENT),
    ] {
        passes
            .get_or_create(&vec![label("reason", reason)])
            .inc_by(c(index));
    }
    registry.register("wardgate_passes", "Packets passed, by reason", passes);
    counter(
        &mut registry,
        "wardgate_audits",
        "Packets the policy denies that passed because a zone (or the whole gateway) is in monitor mode",
        c(counter::AUDIT),
    );

    let rules = Family::<Labels, Counter>::default();
    for r in &input.rules {
        rules
            .get_or_create(&vec![
                label("rule", r.id.to_string()),
                label("location", r.location.clone()),
                label("action", r.action),
                label("from", r.from.clone()),
                label("to", r.to.clone()),
            ])
            .inc_by(r.hits);
    }
    registry.register(
        "wardgate_rule_verdicts",
        "Packets decided by each rule of the policy in force (connections' first packets and re-decisions), since it was loaded",
        rules,
    );

    gauge(
        &mut registry,
        "wardgate_policy_generation",
        "Generation of the policy in force (bumped on every switch)",
        u64::from(input.generation),
    );
    registry.register(
        "wardgate_policy",
        "The policy in force",
        Info::new(vec![
            label("hash", format!("sha256:{}", input.hash)),
            label("file", input.policy.clone()),
        ]),
    );
    let reloads = Family::<Labels, Counter>::default();
    reloads
        .get_or_create(&vec![label("result", "success")])
        .inc_by(input.reload_success);
    reloads
        .get_or_create(&vec![label("result", "failure")])
        .inc_by(input.reload_failure);
    registry.register(
        "wardgate_reloads",
        "Policy reloads by this agent, by result (a failure leaves the old policy in force)",
        reloads,
    );
    gauge(
        &mut registry,
        "wardgate_last_reload_success",
        "1 if the last reload succeeded (or none failed yet), 0 if it failed",
        u64::from(input.last_reload_ok),
    );
    counter(
        &mut registry,
        "wardgate_flow_records_written",
        "Flow records written to the flows log",
        input.flows_written,
    );
    counter(
        &mut registry,
        "wardgate_flow_records_write_failed",
        "Flow records that could not be written to the flows log",
        input.flows_write_failed,
    );
    counter(
        &mut registry,
        "wardgate_flow_keys_refused",
        "New flow keys not recorded because the kernel's flow table was full",
        input.flows_refused,
    );
    gauge(
        &mut registry,
        "wardgate_monitor_all",
        "1 if the global monitor override is on (drops become audits)",
        u64::from(input.monitor_all),
    );

    let ifaces = Family::<Labels, Gauge>::default();
    for (name, mode) in &input.interfaces {
        ifaces
            .get_or_create(&vec![
                label("interface", name.clone()),
                label("mode", mode.to_string()),
            ])
            .set(1);
    }
    registry.register(
        "wardgate_interface_attached",
        "Interfaces the program is attached to, with the XDP mode (driver or generic)",
        ifaces,
    );

    let tracked = Family::<Labels, Gauge>::default();
    for (state, n) in [
        ("new", input.tracked.new),
        ("established", input.tracked.established),
        ("closing", input.tracked.closing),
    ] {
        tracked
            .get_or_create(&vec![label("state", state)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    registry.register(
        "wardgate_tracked_connections",
        "Tracked connections that have not timed out, by state",
        tracked,
    );
    conntrack(&mut registry, input, &c);
    gauge(
        &mut registry,
        "wardgate_quarantined_addresses",
        "Addresses in quarantine",
        input.quarantined,
    );
    gauge(
        &mut registry,
        "wardgate_failsafe_entries",
        "Failsafe entries (address and TCP port pairs that always pass)",
        input.failsafe_entries,
    );
    counter(
        &mut registry,
        "wardgate_events_lost",
        "Events the program could not send because the ring buffer was full",
        c(counter::EVENTS_LOST),
    );
    counter(
        &mut registry,
        "wardgate_events_rate_limited",
        "Events not sent because of the per-CPU rate limit",
        c(counter::EVENTS_RATE_LIMITED),
    );
    let written = Family::<Labels, Counter>::default();
    written
        .get_or_create(&vec![label("verdict", "drop")])
        .inc_by(input.events_written_drop);
    written
        .get_or_create(&vec![label("verdict", "audit")])
        .inc_by(input.events_written_audit);
    registry.register(
        "wardgate_events_written",
        "Events written to the event log by this agent",
        written,
    );
    counter(
        &mut registry,
        "wardgate_events_write_failed",
        "Events this agent could not write to the event log (full disk, closed pipe)",
        input.events_write_failed,
    );

    let capacity = Family::<Labels, Gauge>::default();
    for (map, n) in [
        ("conntrack", wardgate_common::maps::MAX_CONNECTIONS),
        ("quarantine", wardgate_common::maps::MAX_QUARANTINE),
        ("failsafe", wardgate_common::maps::MAX_FAILSAFE),
    ] {
        capacity
            .get_or_create(&vec![label("map", map)])
            .set(i64::from(n));
    }
    registry.register(
        "wardgate_map_capacity",
        "Entries each kernel map holds at most (the unconfirmed connection table evicts the least recently used when full; the established one never evicts)",
        capacity,
    );

    if let Some(b) = &input.bundle {
        bundle_metrics(&mut registry, b);
    }

    let mut out = String::new();
    encode(&mut out, &registry).expect("encoding into a String cannot fail");
    out
}

/// The connection tables: entries per table and per zone, limits, failed
/// inserts, evictions.
fn conntrack(registry: &mut Registry, input: &Input, c: &impl Fn(u32) -> u64) {
    let t = &input.tracked;
    let entries = Family::<Labels, Gauge>::default();
    for (table, n) in [
        ("unconfirmed", t.unconfirmed_entries),
        ("established", t.established_entries),
    ] {
        entries
            .get_or_create(&vec![label("table", table)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    registry.register(
        "wardgate_conntrack_entries",
        "Entries in each connection table (unconfirmed: no reply yet, evicted first; established: never evicted), at the last walk",
        entries,
    );
    let name = |id: u32| {
        input
            .zones
            .get(id as usize)
            .map_or_else(|| id.to_string(), |z| z.0.clone())
    };
    let zones = Family::<Labels, Gauge>::default();
    for (zone, n) in &t.per_zone {
        zones
            .get_or_create(&vec![label("zone", name(*zone))])
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(
        "wardgate_conntrack_zone_entries",
        "Established connections by the zone that started them, at the last walk",
        zones,
    );
    let limits = Family::<Labels, Gauge>::default();
    for (zone, limit) in &input.zones {
        if let Some(limit) = limit {
            limits
                .get_or_create(&vec![label("zone", zone.clone())])
                .set(i64::from(*limit));
        }
    }
    registry.register(
        "wardgate_conntrack_zone_limit",
        "The conntrack-limit of each zone that declares one",
        limits,
    );
    let charged = Family::<Labels, Gauge>::default();
    for (slot, n) in &t.charged {
        let slot = match *slot {
            wardgate_common::CT_SLOT_POOL => "pool".to_owned(),
            wardgate_common::CT_SLOT_RESERVED => "reserve".to_owned(),
            zone => name(zone),
        };
        charged
            .get_or_create(&vec![label("slot", slot)])
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(
        "wardgate_conntrack_charged",
        "Established connections as the datapath counts them against limits: per limited zone, the pool of zones without a limit, the life-critical reserve",
        charged,
    );
    counter(
        registry,
        "wardgate_conntrack_failed_inserts",
        "Replies that could not move their connection to the established table (full, or the zone at its limit): the connection stays unconfirmed",
        c(counter::CT_INSERT_FAILED),
    );
    counter(
        registry,
        "wardgate_conntrack_limit_drops",
        "New connections dropped because their zone was at its conntrack-limit (or the pool was full)",
        c(counter::DROP_CT_LIMIT),
    );
    // The LRU table does not report evictions; every entry that left it
    // without being promoted or removed by the program or a sweep was
    // evicted (approximate: the walk and the counters are not one snapshot).
    let created = c(counter::CT_UNCONFIRMED_CREATED);
    let left = c(counter::CT_PROMOTED) + c(counter::CT_UNCONFIRMED_REMOVED) + t.unconfirmed_entries;
    counter(
        registry,
        "wardgate_conntrack_evictions",
        "Unconfirmed connections evicted to make room (estimated from creations, promotions, removals and the last walk); the established table never evicts",
        created.saturating_sub(left),
    );
    counter(
        registry,
        "wardgate_conntrack_swept",
        "Idled-out established connections removed by this agent's sweeps",
        t.swept,
    );
}

/// Seconds since the epoch of an RFC 3339 time (0 if none).
fn epoch(t: Option<&str>) -> u64 {
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .and_then(|t| u64::try_from(t.as_second()).ok())
        .unwrap_or(0)
}

/// `wardgate_bundle_*`: the bundle source's downloads, refusals and revision.
fn bundle_metrics(registry: &mut Registry, b: &crate::bundle_source::BundleStatus) {
    gauge(
        registry,
        "wardgate_bundle_active_revision",
        "Revision of the signed bundle in force (0 before the first)",
        b.active_revision.unwrap_or(0),
    );
    let downloads = Family::<Labels, Counter>::default();
    for result in ["new", "not_modified", "error"] {
        downloads
            .get_or_create(&vec![label("result", result)])
            .inc_by(b.downloads.get(result).copied().unwrap_or(0));
    }
    registry.register(
        "wardgate_bundle_downloads",
        "Bundle downloads by result: new (a bundle was received), not_modified (304), error (no answer, HTTP error)",
        downloads,
    );
    let failures = Family::<Labels, Counter>::default();
    for reason in [
        "download",
        "archive",
        "signature",
        "unknown_key",
        "hash",
        "manifest",
        "expired",
        "rollback",
        "activation",
    ] {
        failures
            .get_or_create(&vec![label("reason", reason)])
            .inc_by(b.failures.get(reason).copied().unwrap_or(0));
    }
    registry.register(
        "wardgate_bundle_failures",
        "Bundle attempts that failed or were refused, by reason; the policy in force stays",
        failures,
    );
    gauge(
        registry,
        "wardgate_bundle_last_success_timestamp_seconds",
        "When the bundle server was last reached with success (a verified bundle or a 304), seconds since 1970 (0: never)",
        epoch(b.last_download.as_deref()),
    );
    gauge(
        registry,
        "wardgate_bundle_last_activation_timestamp_seconds",
        "When this agent last switched to a new bundle revision, seconds since 1970 (0: not since it started)",
        epoch(b.last_activation.as_deref()),
    );
    gauge(
        registry,
        "wardgate_bundle_expiry_timestamp_seconds",
        "When the bundle in force expires, seconds since 1970 (0: no expiry)",
        epoch(b.active_expires.as_deref()),
    );
    gauge(
        registry,
        "wardgate_bundle_last_attempt_success",
        "1 if the last bundle attempt succeeded (or none failed yet), 0 if it failed",
        u64::from(b.last_error.is_none()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_names_and_values() {
        let mut counters = vec![0; counter::COUNT as usize];
        counters[counter::DROP_POLICY as usize] = 7;
        let text = render(&Input {
            counters,
            rules: vec![RuleHits {
                id: 3,
                action: "allow",
                location: "h.ward:12".into(),
                from: "imaging".into(),
                to: "pacs".into(),
                hits: 5,
            }],
            generation: 2,
            hash: "ab".into(),
            interfaces: vec![("eth1".into(), AttachMode::Driver)],
            ..Input::default()
        });
        assert!(
            text.contains("wardgate_drops_total{reason=\"policy\"} 7"),
            "{text}"
        );
        assert!(text.contains(
            "wardgate_rule_verdicts_total{rule=\"3\",location=\"h.ward:12\",action=\"allow\",from=\"imaging\",to=\"pacs\"} 5"
        ), "{text}");
        assert!(text.contains("wardgate_policy_generation 2"), "{text}");
        assert!(
            text.contains("wardgate_policy_info{hash=\"sha256:ab\""),
            "{text}"
        );
        assert!(
            text.contains("wardgate_interface_attached{interface=\"eth1\",mode=\"driver\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn renders_connection_tables_zones_and_limits() {
        let mut counters = vec![0; counter::COUNT as usize];
        counters[counter::DROP_CT_LIMIT as usize] = 4;
        counters[counter::CT_INSERT_FAILED as usize] = 2;
        counters[counter::CT_UNCONFIRMED_CREATED as usize] = 100;
        counters[counter::CT_PROMOTED as usize] = 30;
        counters[counter::CT_UNCONFIRMED_REMOVED as usize] = 5;
        let text = render(&Input {
            counters,
            tracked: Tracked {
                unconfirmed_entries: 15,
                established_entries: 30,
                per_zone: vec![(1, 30)],
                charged: vec![(1, 20), (wardgate_common::CT_SLOT_POOL, 10)],
                ..Tracked::default()
            },
            zones: vec![("world".into(), None), ("guest".into(), Some(20))],
            ..Input::default()
        });
        for line in [
            "wardgate_conntrack_entries{table=\"unconfirmed\"} 15",
            "wardgate_conntrack_entries{table=\"established\"} 30",
            "wardgate_conntrack_zone_entries{zone=\"guest\"} 30",
            "wardgate_conntrack_zone_limit{zone=\"guest\"} 20",
            "wardgate_conntrack_charged{slot=\"guest\"} 20",
            "wardgate_conntrack_charged{slot=\"pool\"} 10",
            "wardgate_conntrack_failed_inserts_total 2",
            "wardgate_conntrack_limit_drops_total 4",
            // 100 created - 30 promoted - 5 removed - 15 present.
            "wardgate_conntrack_evictions_total 50",
            "wardgate_drops_total{reason=\"conntrack_limit\"} 4",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
