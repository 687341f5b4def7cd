//! `rule-expires-soon` (WG507).
//!
//! ## What it does
//! Finds rules whose `until` date is at most 14 days away (against `--today`).
//!
//! ## Why is this bad
//! When the date passes, the traffic the rule allows stops. If the exception
//! is still needed (a vendor's maintenance that overran), the clinical
//! workflow behind it breaks without warning.
//!
//! ## Example
//! ```ward
//! allow biomed -> infusion : https until 2027-01-31 "vendor maintenance"
//! ```
//!
//! ## Fix
//! Confirm with the owner: renew the date, or let it expire on purpose.

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;

/// How many days before its `until` date a rule is reported.
pub const DAYS: i64 = 14;

pub const CODE: CodeInfo = CodeInfo {
    code: "WG507",
    name: "rule-expires-soon",
    severity: Severity::Warning,
    summary: "a rule's `until` date is 14 days away or less",
    explanation: "When the date passes, the rule is ignored and the traffic it allows stops. If the exception is still needed, the workflow behind it breaks without warning. Confirm with the owner: renew the date, or let it expire on purpose.",
    example: "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nallow a -> b : tcp/443 until 2027-01-31\n# wardgate check --today 2027-01-25\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let Some(today) = cx.today else { return };
    for r in &cx.policy.rules {
        let Some(until) = r.until else { continue };
        let left = today.days_until(until);
        if (0..=DAYS).contains(&left) {
            let when = match left {
                0 => "today".to_owned(),
                1 => "tomorrow".to_owned(),
                n => format!("in {n} days"),
            };
            out.push(
                Diagnostic::new(
                    &CODE,
                    r.origin.span(),
                    format!("this rule expires {when} ({until})"),
                )
                .with_primary_label(format!("in force until {until}"))
                .with_help(
                    "renew the date if the exception is still needed, or let it expire on purpose",
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    const P: &str = "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nallow a -> b : tcp/443 until 2026-01-31\n";

    #[test]
    fn fires_within_fourteen_days() {
        assert_eq!(
            codes_of(P, "2026-01-17", "WG507"),
            vec!["this rule expires in 14 days (2026-01-31)"]
        );
        assert_eq!(
            codes_of(P, "2026-01-31", "WG507"),
            vec!["this rule expires today (2026-01-31)"]
        );
    }

    #[test]
    fn does_not_fire_earlier_or_after() {
        assert!(codes_of(P, "2026-01-16", "WG507").is_empty());
        assert!(codes_of(P, "2026-02-01", "WG507").is_empty());
    }
}
