//! `redundant-rule` (WG502).
//!
//! ## What it does
//! Finds `allow` rules whose every allowed packet is also allowed by other
//! `allow` rules that last at least as long (`until`): removing the rule
//! would change no decision, today or later. A temporary rule never makes a
//! permanent one redundant.
//!
//! ## Why is this bad
//! Redundant rules make a policy longer to review and hide intent: when the
//! broader rule is later narrowed, nobody knows whether the narrow one was
//! meant to stay. They also inflate the rule tables for nothing.
//!
//! ## Example
//! ```ward
//! allow imaging -> pacs : tcp
//! allow imaging -> pacs : dicom   # already allowed by the rule above
//! ```
//!
//! ## Fix
//! Remove the redundant rule, or narrow the broader one.

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;
use super::shadowed_by_deny::overlaps;
use crate::model::{Action, RuleId};

pub const CODE: CodeInfo = CodeInfo {
    code: "WG502",
    name: "redundant-rule",
    severity: Severity::Warning,
    summary: "an `allow` rule only allows what other `allow` rules already allow",
    explanation: "Removing the rule would change no decision, today or later: the covering rules last at least as long (`until`). Redundant rules make a policy longer to review and hide intent: when the broader rule is later narrowed, nobody knows whether the narrow one was meant to stay. Remove it, or narrow the broader rule.",
    example: "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nallow a -> b : tcp\nallow a -> b : tcp/443\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    for (id, rule) in cx.allows() {
        let i = id as usize;
        if !cx.lowered.considered[i] || !cx.lowered.effective[i] || cx.lowered.needed[i] {
            continue;
        }
        let mut d = Diagnostic::new(
            &CODE,
            rule.origin.span(),
            "this `allow` is redundant: other `allow` rules already allow everything it does",
        )
        .with_primary_label("redundant");
        for r in covering_allows(cx, id).iter().take(3) {
            d = d.with_label(cx.policy.rule(*r).origin.span(), "also allowed here");
        }
        out.push(d.with_help("remove this rule, or narrow the broader one"));
    }
}

fn covering_allows(cx: &Context, id: RuleId) -> Vec<RuleId> {
    let rule = cx.policy.rule(id);
    let mut v = Vec::new();
    'pairs: for &s in &rule.src {
        for &d in &rule.dst {
            for &o in cx.lowered.by_pair.get(&(s, d)).into_iter().flatten() {
                let other = cx.policy.rule(o);
                if o != id
                    && other.action == Action::Allow
                    && overlaps(&rule.services, &other.services)
                {
                    v.push(o);
                }
            }
            if v.len() >= 3 {
                break 'pairs;
            }
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    const ZONES: &str =
        "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nzone c { hosts 10.0.0.3 }\n";

    #[test]
    fn fires_when_other_allows_cover_it() {
        let p = format!("{ZONES}allow a -> b : tcp\nallow a -> b : tcp/443\n");
        assert_eq!(codes_of(&p, "2026-01-01", "WG502").len(), 1);
        // Covered by two rules together.
        let p = format!(
            "{ZONES}allow a -> b : tcp/1-100\nallow a -> b : tcp/101-200\nallow a -> b : tcp/50-150\n"
        );
        assert_eq!(codes_of(&p, "2026-01-01", "WG502").len(), 1);
    }

    #[test]
    fn respects_until_covering_rules_must_last_as_long() {
        // A temporary rule never makes a permanent one redundant...
        let p = format!(
            "{ZONES}allow a -> b : tcp/443\nallow a -> b : tcp until 2027-01-31 \"vendor\"\n"
        );
        assert!(codes_of(&p, "2026-01-01", "WG502").is_empty());
        // ...nor one that lasts longer.
        let p = format!(
            "{ZONES}allow a -> b : tcp/443 until 2027-06-30\nallow a -> b : tcp until 2027-01-31\n"
        );
        assert!(codes_of(&p, "2026-01-01", "WG502").is_empty());
        // A temporary rule covered by a permanent one is redundant.
        let p = format!("{ZONES}allow a -> b : tcp/443 until 2027-01-31\nallow a -> b : tcp\n");
        assert_eq!(codes_of(&p, "2026-01-01", "WG502").len(), 1);
        // So is one covered by a rule that lasts exactly as long.
        let p = format!(
            "{ZONES}allow a -> b : tcp/443 until 2027-01-31\nallow a -> b : tcp until 2027-01-31\n"
        );
        assert_eq!(codes_of(&p, "2026-01-01", "WG502").len(), 1);
    }

    #[test]
    fn does_not_fire_for_partial_overlap_or_other_pairs() {
        let p = format!("{ZONES}allow a -> b : tcp/1-100\nallow a -> b : tcp/50-150\n");
        assert!(codes_of(&p, "2026-01-01", "WG502").is_empty());
        let p = format!("{ZONES}allow a -> b, c : tcp/443\nallow a -> b : tcp\n");
        assert!(codes_of(&p, "2026-01-01", "WG502").is_empty());
    }
}
