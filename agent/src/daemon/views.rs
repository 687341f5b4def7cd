//! What `status` and a metrics scrape report. Both read counters under the
//! agent's lock (a few map reads) and the connection-table summary kept by
//! [`super::tracked`]: neither walks the connection table.

use std::sync::atomic::Ordering;

use wardgate_common::counter;

use crate::{
    control::{FailsafeStatus, InterfaceStatus, PolicyStatus, Status, Summary},
    metrics, quarantine,
};

use super::{Agent, Shared, lock, rule_hits};

impl Agent {
    fn counters(&self) -> Vec<u64> {
        self.program
            .counters()
            .unwrap_or_else(|_| vec![0; counter::COUNT as usize])
    }

    fn quarantined(&mut self) -> u64 {
        quarantine::list(self.program.ebpf_mut()).map_or(0, |l| l.len() as u64)
    }
}

/// The answer to `status`.
pub(super) async fn status(shared: &Shared) -> Status {
    let tracked = shared.tracked.fresh().await;
    let events = &shared.events;
    let mut agent = lock(&shared.agent);
    let counters = agent.counters();
    let c = |i: u32| counters.get(i as usize).copied().unwrap_or(0);
    let quarantined = agent.quarantined();
    let a = &*agent;
    Status {
        pid: std::process::id(),
        uptime_secs: a.started.elapsed().as_secs(),
        adopted: a.adopted,
        policy: PolicyStatus {
            file: a.settings.policy.clone(),
            kind: if a.source { "source" } else { "image" }.to_owned(),
            hash: format!("sha256:{}", a.image.hash()),
            generation: a.generation,
            loaded_at: jiff::Timestamp::try_from(a.loaded_at)
                .map(|t| t.to_string())
                .ok(),
            zones: a.image.zones().len(),
            rules: a.image.rules().len(),
        },
        monitor_all: a.settings.monitor_all,
        fast_path: a.settings.fast_path,
        pin_path: a.settings.pin_path.clone(),
        interfaces: a
            .links
            .iter()
            .map(|l| InterfaceStatus {
                name: l.name.clone(),
                mode: l.mode.to_string(),
                adopted: l.adopted,
            })
            .collect(),
        summary: Summary {
            packets: c(counter::PACKETS),
            passed: c(counter::PASS_RULE)
                + c(counter::PASS_INTRA_ZONE)
                + c(counter::PASS_TRACKED)
                + c(counter::PASS_FAILSAFE)
                + c(counter::PASS_FRAGMENT),
            dropped: c(counter::DROP_POLICY)
                + c(counter::DROP_QUARANTINE)
                + c(counter::DROP_TRUNCATED)
                + c(counter::DROP_MALFORMED)
                + c(counter::DROP_FRAGMENT)
                + c(counter::DROP_CT_LIMIT),
            audited: c(counter::AUDIT),
            tracked_connections: tracked.new + tracked.established + tracked.closing,
            quarantined,
            events_written: events.written_drop.load(Ordering::Relaxed)
                + events.written_audit.load(Ordering::Relaxed),
            events_write_failed: events.failed.load(Ordering::Relaxed),
            events_lost: c(counter::EVENTS_LOST),
        },
        counters: counter::NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_owned(), counters.get(i).copied().unwrap_or(0)))
            .collect(),
        failsafe: FailsafeStatus {
            enabled: a.settings.failsafe.enabled,
            ports: a.settings.failsafe.ports.clone(),
            entries: a.failsafe_entries,
        },
        reloads: a.reloads.clone(),
        bundle: a.pull.as_ref().map(|p| p.status.clone()),
    }
}

/// Everything one scrape reports.
pub(super) async fn metrics_input(shared: &Shared) -> metrics::Input {
    let tracked = shared.tracked.fresh().await;
    let events = &shared.events;
    let mut agent = lock(&shared.agent);
    let per_rule = agent.settings.rule_metrics;
    let rules = if per_rule {
        let hits = rule_hits(&agent.program, agent.image.rules().len());
        agent
            .image
            .rules()
            .iter()
            .zip(hits)
            .map(|(r, h)| metrics::RuleHits {
                id: r.id,
                action: r.action.as_str(),
                location: format!("{}:{}", r.file, r.line),
                from: r.from.clone(),
                to: r.to.clone(),
                hits: h.saturating_sub(agent.rule_base.get(r.id as usize).copied().unwrap_or(0)),
            })
            .collect()
    } else {
        Vec::new()
    };
    let quarantined = agent.quarantined();
    let counters = agent.counters();
    let a = &*agent;
    metrics::Input {
        counters,
        rules,
        generation: a.generation,
        hash: a.image.hash().to_owned(),
        policy: a.settings.policy.display().to_string(),
        reload_success: a.reloads.success,
        reload_failure: a.reloads.failure,
        last_reload_ok: a.reloads.last_error.is_none(),
        interfaces: a.links.iter().map(|l| (l.name.clone(), l.mode)).collect(),
        tracked,
        zones: a
            .image
            .zones()
            .iter()
            .map(|z| (z.name.clone(), z.conntrack_limit))
            .collect(),
        quarantined,
        failsafe_entries: a.failsafe_entries as u64,
        events_written_drop: events.written_drop.load(Ordering::Relaxed),
        events_written_audit: events.written_audit.load(Ordering::Relaxed),
        events_write_failed: events.failed.load(Ordering::Relaxed),
        monitor_all: a.settings.monitor_all,
        flows_written: shared.flows.written.load(Ordering::Relaxed),
        flows_write_failed: shared.flows.failed.load(Ordering::Relaxed),
        flows_refused: shared.flows.refused.load(Ordering::Relaxed),
        bundle: a.pull.as_ref().map(|p| p.status.clone()),
    }
}
