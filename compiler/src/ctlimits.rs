//! The zones' `conntrack-limit`s against the capacity of the datapath's
//! established-connection table (WG306). The table keeps a reserve that only
//! life-critical zones without a limit may use
//! ([`wardgate_common::maps::ct_reserve`]); the declared limits must fit in
//! the rest, so that every zone can always reach its own limit.

use std::collections::HashSet;

use wardgate_common::maps::{MAX_CONNECTIONS, ct_reserve};
use wardgate_lang::{
    Diagnostic, Span,
    ast::{self, ZoneItem},
};

use crate::codes;

/// Established connections the declared limits may share out: the table's
/// capacity less the life-critical reserve.
#[must_use]
pub fn limitable(capacity: u32) -> u32 {
    capacity - ct_reserve(capacity)
}

/// WG306 when the limits of the zones (first declaration of each name) add
/// up to more than [`limitable`] of the gateway's table.
#[must_use]
pub fn check(policy: &ast::Policy) -> Option<Diagnostic> {
    let mut seen = HashSet::new();
    let mut limits: Vec<(u64, Span, &str)> = Vec::new();
    for z in &policy.zones {
        if !seen.insert(z.name.node.as_str()) {
            continue;
        }
        let last = z.items.iter().rev().find_map(|i| match i.node {
            ZoneItem::ConntrackLimit(n) => Some((u64::from(n), i.span)),
            _ => None,
        });
        if let Some((n, span)) = last {
            limits.push((n, span, z.name.node.as_str()));
        }
    }
    let total: u64 = limits.iter().map(|l| l.0).sum();
    let max = limitable(MAX_CONNECTIONS);
    if total <= u64::from(max) {
        return None;
    }
    limits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.start.cmp(&b.1.start)));
    let (n, span, zone) = limits[0];
    let mut d = Diagnostic::new(
        &codes::CONNTRACK_LIMITS_EXCEED_CAPACITY,
        span,
        format!(
            "the zones' conntrack limits add up to {total}, more than the {max} connections the gateway can promise"
        ),
    )
    .with_primary_label(format!("`{zone}` asks for {n}, the most"))
    .with_help(format!(
        "the table holds {MAX_CONNECTIONS} established connections, of which {} are kept for life-critical zones without a limit; lower the limits, or leave the item out of zones that may share the rest",
        ct_reserve(MAX_CONNECTIONS)
    ));
    for (n, span, zone) in limits.iter().skip(1).take(4) {
        d = d.with_label(*span, format!("`{zone}`: {n}"));
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    fn codes(src: &str) -> Vec<&'static str> {
        let loaded = wardgate_lang::parse_str("t.ward", src);
        let (_, diags) = crate::resolve::resolve(&loaded.policy, &loaded.sources);
        diags.iter().map(|d| d.code).collect()
    }

    #[test]
    fn limits_within_the_table_less_the_reserve_pass() {
        let src = "zone a { hosts 10.0.0.1 conntrack-limit 200000 }\n\
                   zone b { hosts 10.0.0.2 conntrack-limit 29376 }\n";
        assert!(!codes(src).contains(&"WG306"));
    }

    #[test]
    fn limits_beyond_it_are_wg306() {
        let src = "zone a { hosts 10.0.0.1 conntrack-limit 200000 }\n\
                   zone b { hosts 10.0.0.2 conntrack-limit 29377 }\n";
        assert!(codes(src).contains(&"WG306"));
    }
}
