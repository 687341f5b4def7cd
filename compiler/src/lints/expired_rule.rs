//! `expired-rule` (WG506).
//!
//! ## What it does
//! Finds rules whose `until` date has passed (checked against `--today`).
//!
//! ## Why is this bad
//! An expired rule is ignored: it no longer allows or denies anything. Left in
//! the file, it misleads every reader into thinking the exception still
//! exists, and a later edit of its date silently reopens it.
//!
//! ## Example
//! ```ward
//! allow biomed -> infusion : https until 2025-01-31 "vendor maintenance"
//! ```
//!
//! ## Fix
//! Delete the rule, or renew it with a new `until` date if the exception is
//! still needed.

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;

pub const CODE: CodeInfo = CodeInfo {
    code: "WG506",
    name: "expired-rule",
    severity: Severity::Warning,
    summary: "a rule's `until` date has passed, so the rule is ignored",
    explanation: "A rule is in force up to and including its `until` date (UTC). After it, it allows or denies nothing; left in the file it misleads readers. Delete it, or renew it with a new date. Use `--today` for reproducible results.",
    example: "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nallow a -> b : tcp/443 until 2020-01-31\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let Some(today) = cx.today else { return };
    for r in &cx.policy.rules {
        let Some(until) = r.until else { continue };
        if until < today {
            out.push(
                Diagnostic::new(
                    &CODE,
                    r.origin.span(),
                    format!("this rule expired on {until} and is ignored"),
                )
                .with_primary_label(format!("in force until {until}"))
                .with_help("delete the rule, or renew it with a new `until` date"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    const P: &str = "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nallow a -> b : tcp/443 until 2026-01-31\n";

    #[test]
    fn fires_the_day_after() {
        assert_eq!(codes_of(P, "2026-02-01", "WG506").len(), 1);
    }

    #[test]
    fn does_not_fire_on_the_last_day() {
        assert!(codes_of(P, "2026-01-31", "WG506").is_empty());
    }
}
