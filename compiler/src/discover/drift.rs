//! The policy in force against what was seen (`wardgate drift`): allow
//! rules that never matched in the window, flows the policy drops or passes
//! only as audits, grouped by zone pair, and rules that expire within
//! [`EXPIRY_WARNING_DAYS`] (or have expired) while traffic still uses them.
//!
//! Flows are decided again with the policy in force (as the reference
//! evaluator decides them), so the report is about this policy whatever
//! generation logged them. Rule hits from a metrics scrape
//! (`wardgate_rule_verdicts_total`) count as matches too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::suggest::{Evidence, atom_text};
use super::{Observations, Seconds};
use crate::eval::{Packet, Verdict, decide};
use crate::image::PolicyImage;
use crate::model::{Action, Date, Policy, RuleId, ZoneId};
use crate::prefix::addr_key;

/// Rules that expire this close to `today` are reported if still in use.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// An allow rule and how it was used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleUse {
    /// `file:line`.
    pub location: String,
    pub rule: String,
    pub connections: u64,
    /// Hits in the metrics scrape, if one was given.
    pub metric_hits: Option<u64>,
}

/// Flows of one zone pair with one verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PairFlows {
    pub src_zone: String,
    pub dst_zone: String,
    pub services: Vec<String>,
    pub evidence: Evidence,
}

/// A rule near or past its `until` that traffic still uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expiring {
    pub location: String,
    pub rule: String,
    pub until: String,
    /// Negative once expired.
    pub days_left: i64,
    pub connections: u64,
}

/// Everything `drift` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub records: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub never_matched: Vec<RuleUse>,
    pub dropped: Vec<PairFlows>,
    pub audited: Vec<PairFlows>,
    pub expiring_in_use: Vec<Expiring>,
}

impl Report {
    /// Anything a reviewer should look at.
    #[must_use]
    pub fn has_drift(&self) -> bool {
        !(self.never_matched.is_empty()
            && self.dropped.is_empty()
            && self.audited.is_empty()
            && self.expiring_in_use.is_empty())
    }
}

#[derive(Default)]
struct Tally {
    atoms: BTreeSet<(u8, u16)>,
    connections: u64,
    sources: BTreeSet<std::net::IpAddr>,
    destinations: BTreeSet<std::net::IpAddr>,
    first: Option<Seconds>,
    last: Option<Seconds>,
    days: BTreeSet<i32>,
}

impl Tally {
    fn into_pair(self, policy: &Policy, s: ZoneId, t: ZoneId) -> PairFlows {
        PairFlows {
            src_zone: policy.zone(s).name.clone(),
            dst_zone: policy.zone(t).name.clone(),
            services: self.atoms.iter().map(|&(p, n)| atom_text(p, n)).collect(),
            evidence: Evidence {
                connections: self.connections,
                sources: self.sources.len(),
                destinations: self.destinations.len(),
                first_seen: self.first.map(super::rfc3339).unwrap_or_default(),
                last_seen: self.last.map(super::rfc3339).unwrap_or_default(),
                days_seen: self.days.len(),
            },
        }
    }
}

/// Per-rule hits from a Prometheus text page: `file:line` to the sum of
/// `wardgate_rule_verdicts_total` series with that location.
#[must_use]
pub fn metric_hits(page: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(labels) = series.strip_prefix("wardgate_rule_verdicts_total{") else {
            continue;
        };
        let Some(loc) = labels
            .split("location=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        let n = value.parse::<f64>().unwrap_or(0.0);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "counter values"
        )]
        let n = n.max(0.0) as u64;
        *out.entry(loc.to_owned()).or_insert(0) += n;
    }
    out
}

/// `file:line` as the agent labels it, matched on the file's last component.
fn same_location(metric: &str, file: &str, line: u32) -> bool {
    let Some((mfile, mline)) = metric.rsplit_once(':') else {
        return false;
    };
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    mline == line.to_string() && base(mfile) == base(file)
}

/// Builds the report for the policy in force on `today`.
#[must_use]
pub fn drift(
    policy: &Policy,
    image: &PolicyImage,
    obs: &Observations,
    today: Date,
    metrics: Option<&BTreeMap<String, u64>>,
) -> Report {
    let mut uses: BTreeMap<RuleId, u64> = BTreeMap::new();
    let mut dropped: BTreeMap<(ZoneId, ZoneId), Tally> = BTreeMap::new();
    let mut audited: BTreeMap<(ZoneId, ZoneId), Tally> = BTreeMap::new();
    let mut covered: BTreeMap<usize, u64> = BTreeMap::new();
    let (mut first, mut last): (Option<Seconds>, Option<Seconds>) = (None, None);
    let dated: Vec<usize> = (0..policy.rules.len())
        .filter(|&i| {
            let r = &policy.rules[i];
            r.action == Action::Allow
                && r.until
                    .is_some_and(|u| today.days_until(u) <= EXPIRY_WARNING_DAYS)
        })
        .collect();
    let mut keys: Vec<_> = obs.flows.iter().collect();
    keys.sort_unstable_by_key(|(k, _)| **k);
    for (key, stats) in keys {
        first = Some(first.map_or(stats.first, |f| f.min(stats.first)));
        last = Some(last.map_or(stats.last, |l| l.max(stats.last)));
        let pkt = Packet {
            src: key.src,
            dst: key.dst,
            proto: key.proto,
            port: key.port,
        };
        let d = decide(image, &pkt);
        if d.malformed {
            continue;
        }
        if let Some(r) = d.rule
            && d.verdict == Verdict::Allow
        {
            *uses.entry(r).or_insert(0) += stats.connections;
        }
        let bucket = match d.verdict {
            Verdict::Deny => Some(&mut dropped),
            Verdict::Audit => Some(&mut audited),
            Verdict::Allow => None,
        };
        if let Some(b) = bucket {
            let t = b.entry((d.src_zone, d.dst_zone)).or_default();
            t.atoms.insert((key.proto, key.port));
            t.connections += stats.connections;
            t.sources.insert(key.src);
            t.destinations.insert(key.dst);
            t.first = Some(t.first.map_or(stats.first, |f| f.min(stats.first)));
            t.last = Some(t.last.map_or(stats.last, |l| l.max(stats.last)));
            t.days.extend(stats.days.iter().copied());
        }
        // Expiring (or expired, hence not in the image) rules: by coverage.
        let (sz, dz) = (
            image.classify(addr_key(key.src)),
            image.classify(addr_key(key.dst)),
        );
        for &i in &dated {
            if policy.rules[i].covers(sz, dz, key.proto, pkt.lookup_port()) {
                *covered.entry(i).or_insert(0) += stats.connections;
            }
        }
    }
    let mut report = Report {
        records: obs.records,
        first_seen: first.map(super::rfc3339).unwrap_or_default(),
        last_seen: last.map(super::rfc3339).unwrap_or_default(),
        ..Report::default()
    };
    for (i, r) in policy.rules.iter().enumerate() {
        if r.action != Action::Allow || !r.in_force(Some(today)) {
            continue;
        }
        let id = RuleId::try_from(i).unwrap_or(RuleId::MAX);
        let connections = uses.get(&id).copied().unwrap_or(0);
        let metric_hits = metrics.map(|m| {
            m.iter()
                .filter(|(loc, _)| same_location(loc, &r.origin.file, r.origin.line))
                .map(|(_, n)| *n)
                .sum::<u64>()
        });
        if connections == 0 && metric_hits.unwrap_or(0) == 0 {
            report.never_matched.push(RuleUse {
                location: r.origin.to_string(),
                rule: r.text.clone(),
                connections,
                metric_hits,
            });
        }
    }
    for (i, connections) in covered {
        let r = &policy.rules[i];
        let until = r.until.expect("dated rules have an until");
        report.expiring_in_use.push(Expiring {
            location: r.origin.to_string(),
            rule: r.text.clone(),
            until: until.to_string(),
            days_left: today.days_until(until),
            connections,
        });
    }
    report.dropped = dropped
        .into_iter()
        .map(|((s, t), v)| v.into_pair(policy, s, t))
        .collect();
    report.audited = audited
        .into_iter()
        .map(|((s, t), v)| v.into_pair(policy, s, t))
        .collect();
    report
}

/// For people: one section per finding.
#[must_use]
pub fn render_human(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "drift over {} records, {} to {}",
        r.records,
        r.first_seen.get(..10).unwrap_or(""),
        r.last_seen.get(..10).unwrap_or("")
    );
    section(
        &mut out,
        "allow rules that never matched",
        r.never_matched.len(),
    );
    for u in &r.never_matched {
        let _ = writeln!(out, "  {}  {}", u.location, u.rule);
    }
    for (title, pairs) in [
        ("dropped", &r.dropped),
        ("passed only as audit (monitor mode)", &r.audited),
    ] {
        section(&mut out, title, pairs.len());
        for p in pairs {
            let _ = writeln!(
                out,
                "  {} -> {} : {} ({})",
                p.src_zone,
                p.dst_zone,
                p.services.join(", "),
                p.evidence.text()
            );
        }
    }
    section(
        &mut out,
        "expiring rules still in use",
        r.expiring_in_use.len(),
    );
    for e in &r.expiring_in_use {
        let when = if e.days_left < 0 {
            format!("expired {} days ago", -e.days_left)
        } else {
            format!("expires in {} days", e.days_left)
        };
        let _ = writeln!(
            out,
            "  {}  {} ({when}): {} connections",
            e.location, e.rule, e.connections
        );
    }
    out
}

fn section(out: &mut String, title: &str, n: usize) {
    let _ = writeln!(
        out,
        "\n{title}: {}",
        if n == 0 {
            "none".to_owned()
        } else {
            n.to_string()
        }
    );
}

/// For a pull request or a ticket.
#[must_use]
pub fn render_markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Policy drift\n");
    let _ = writeln!(
        out,
        "{} records, {} to {}.\n",
        r.records,
        r.first_seen.get(..10).unwrap_or(""),
        r.last_seen.get(..10).unwrap_or("")
    );
    let _ = writeln!(out, "### Allow rules that never matched\n");
    if r.never_matched.is_empty() {
        let _ = writeln!(out, "None.\n");
    }
    for u in &r.never_matched {
        let _ = writeln!(out, "- `{}` ({})", u.rule, u.location);
    }
    for (title, pairs) in [
        ("Dropped", &r.dropped),
        ("Passed only as audit", &r.audited),
    ] {
        let _ = writeln!(out, "\n### {title}\n");
        if pairs.is_empty() {
            let _ = writeln!(out, "None.");
            continue;
        }
        let _ = writeln!(
            out,
            "| from | to | services | connections | sources | last seen |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---:|---|");
        for p in pairs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                p.src_zone,
                p.dst_zone,
                p.services.join(", "),
                p.evidence.connections,
                p.evidence.sources,
                p.evidence.last_seen.get(..10).unwrap_or("")
            );
        }
    }
    let _ = writeln!(out, "\n### Expiring rules still in use\n");
    if r.expiring_in_use.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for e in &r.expiring_in_use {
        let _ = writeln!(
            out,
            "- `{}` ({}): until {}, {} days left, {} connections",
            e.rule, e.location, e.until, e.days_left, e.connections
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Options, analyze};
    use crate::discover::FlowKey;

    const SITE: &str = r#"
zone a { networks 10.1.0.0/24 }
zone b { networks 10.2.0.0/24 }
zone m { networks 10.4.0.0/24  mode monitor }
allow a -> b : tcp/443
allow a -> b : tcp/22 until 2026-01-15 "vendor"
allow b -> a : tcp/8080
"#;

    fn run(flows: &[(&str, &str, u16)], metrics: Option<&str>) -> Report {
        let loaded = wardgate_lang::parse_str("site.ward", SITE);
        let today = Date::new(2026, 1, 10).unwrap();
        let analysis = analyze(&loaded, &Options { today: Some(today) });
        let image = analysis.image.unwrap();
        let mut obs = Observations::default();
        for &(s, d, port) in flows {
            let key = FlowKey {
                src: s.parse().unwrap(),
                dst: d.parse().unwrap(),
                proto: 6,
                port,
            };
            obs.add(key, 1_767_600_000, 1_767_600_000, 2, None);
        }
        let m = metrics.map(metric_hits);
        drift(&analysis.policy, &image, &obs, today, m.as_ref())
    }

    #[test]
    fn unused_rules_drops_audits_and_expiring_rules_in_use() {
        let r = run(
            &[
                ("10.1.0.5", "10.2.0.5", 443),
                ("10.1.0.5", "10.2.0.5", 22),
                ("10.1.0.5", "10.2.0.5", 25),
                ("10.1.0.5", "10.4.0.5", 25),
            ],
            None,
        );
        let never: Vec<&str> = r.never_matched.iter().map(|u| u.rule.as_str()).collect();
        assert_eq!(never, ["allow b -> a : tcp/8080"]);
        assert_eq!(r.dropped.len(), 1);
        assert_eq!(
            (
                r.dropped[0].src_zone.as_str(),
                r.dropped[0].services[0].as_str()
            ),
            ("a", "tcp/25")
        );
        assert_eq!(r.audited[0].dst_zone, "m");
        assert_eq!(r.expiring_in_use.len(), 1);
        assert_eq!(
            (
                r.expiring_in_use[0].days_left,
                r.expiring_in_use[0].connections
            ),
            (5, 2)
        );
        assert!(r.has_drift());
    }

    #[test]
    fn metric_hits_count_as_matches() {
        let page = "# TYPE wardgate_rule_verdicts counter\n\
            wardgate_rule_verdicts_total{rule=\"2\",location=\"/etc/wardgate/site.ward:7\",action=\"allow\",from=\"b\",to=\"a\"} 3\n";
        let r = run(
            &[("10.1.0.5", "10.2.0.5", 443), ("10.1.0.5", "10.2.0.5", 22)],
            Some(page),
        );
        assert!(r.never_matched.is_empty(), "{r:?}");
    }
}
