//! `shadowed-by-deny` (WG501).
//!
//! ## What it does
//! Finds `allow` rules that a `deny` cancels completely: every packet the
//! allow covers is also covered by a deny that lasts at least as long
//! (`until`), so the allow never lets anything through. An allow that opens
//! once a temporary deny expires is not reported.
//!
//! ## Why is this bad
//! Deny always wins, whatever the order of the statements. An allow that
//! opens nothing is dead policy: either its author expects traffic to flow
//! that will be dropped (a ticket waiting to happen), or the deny is broader
//! than intended.
//!
//! ## Example
//! ```ward
//! allow biomed -> infusion : https
//! deny  tag:any-medical-source -> infusion : tcp
//! ```
//!
//! ## Fix
//! Remove the allow, or narrow the deny so that it no longer covers it.

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;
use crate::model::{Action, RuleId};

pub const CODE: CodeInfo = CodeInfo {
    code: "WG501",
    name: "shadowed-by-deny",
    severity: Severity::Warning,
    summary: "an `allow` rule is completely cancelled by `deny` rules",
    explanation: "Deny always wins, whatever the order of statements. An allow whose every packet is also denied, by denies that last at least as long, never lets anything through: either its author expects traffic that will be dropped, or the deny is broader than intended. Remove the allow, or narrow the deny.",
    example: "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nallow a -> b : tcp/443\ndeny a -> b : tcp\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    for (id, rule) in cx.allows() {
        if !cx.lowered.considered[id as usize] || cx.lowered.effective[id as usize] {
            continue;
        }
        let denies = covering_denies(cx, id);
        let mut d = Diagnostic::new(
            &CODE,
            rule.origin.span(),
            "this `allow` never allows anything: `deny` rules cover all of it",
        )
        .with_primary_label("cancelled by deny");
        for r in denies.iter().take(3) {
            d = d.with_label(cx.policy.rule(*r).origin.span(), "denied here");
        }
        out.push(d.with_help("deny always wins: remove the allow, or narrow the deny"));
    }
}

/// Deny rules sharing a zone pair with rule `id` whose services overlap it.
pub(crate) fn covering_denies(cx: &Context, id: RuleId) -> Vec<RuleId> {
    let rule = cx.policy.rule(id);
    let mut v = Vec::new();
    for &s in &rule.src {
        for &d in &rule.dst {
            let Some(others) = cx.lowered.by_pair.get(&(s, d)) else {
                continue;
            };
            for &o in others {
                let other = cx.policy.rule(o);
                if other.action == Action::Deny && overlaps(&rule.services, &other.services) {
                    v.push(o);
                }
            }
            if v.len() >= 3 {
                break;
            }
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

pub(crate) fn overlaps(a: &[crate::model::ServiceAtom], b: &[crate::model::ServiceAtom]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            (x.proto.is_none() || y.proto.is_none() || x.proto == y.proto)
                && x.lo <= y.hi
                && y.lo <= x.hi
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    const ZONES: &str =
        "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nzone c { hosts 10.0.0.3 }\n";

    #[test]
    fn fires_when_a_deny_covers_the_whole_allow() {
        let p = format!("{ZONES}allow a -> b : tcp/443\ndeny a -> b : tcp\n");
        assert_eq!(codes_of(&p, "2026-01-01", "WG501").len(), 1);
        let p = format!("{ZONES}allow a -> b : tcp/443, udp/53\ndeny a -> b : any\n");
        assert_eq!(codes_of(&p, "2026-01-01", "WG501").len(), 1);
    }

    #[test]
    fn respects_until_the_deny_must_last_as_long_as_the_allow() {
        // The allow opens once the deny expires: not dead.
        let p = format!("{ZONES}allow a -> b : tcp/443\ndeny a -> b : tcp until 2027-01-31\n");
        assert!(codes_of(&p, "2026-01-01", "WG501").is_empty());
        let p = format!(
            "{ZONES}allow a -> b : tcp/443 until 2027-06-30\ndeny a -> b : tcp until 2027-01-31\n"
        );
        assert!(codes_of(&p, "2026-01-01", "WG501").is_empty());
        // A deny that lasts at least as long does cancel it.
        let p = format!(
            "{ZONES}allow a -> b : tcp/443 until 2027-01-31\ndeny a -> b : tcp until 2027-01-31\n"
        );
        assert_eq!(codes_of(&p, "2026-01-01", "WG501").len(), 1);
        let p = format!("{ZONES}allow a -> b : tcp/443 until 2027-01-31\ndeny a -> b : tcp\n");
        assert_eq!(codes_of(&p, "2026-01-01", "WG501").len(), 1);
    }

    #[test]
    fn does_not_fire_when_something_gets_through() {
        let p = format!("{ZONES}allow a -> b : tcp/443, udp/53\ndeny a -> b : tcp\n");
        assert!(codes_of(&p, "2026-01-01", "WG501").is_empty());
        let p = format!("{ZONES}allow a -> b, c : tcp/443\ndeny a -> b : tcp\n");
        assert!(codes_of(&p, "2026-01-01", "WG501").is_empty());
    }
}
