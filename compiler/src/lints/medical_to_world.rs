//! `medical-to-world` (WG509).
//!
//! ## What it does
//! Finds `allow` rules that let a zone tagged `medical` reach `world` (every
//! address no zone holds: in practice, the internet).
//!
//! ## Why is this bad
//! Medical devices run old, unpatchable software. A path to the internet is
//! how ransomware calls home and how data leaves. Vendor cloud services
//! should be named zones with their own prefixes, not `world`.
//!
//! ## Example
//! ```ward
//! zone imaging { networks 10.20.0.0/23 tags medical }
//! allow imaging -> world : https
//! ```
//!
//! ## Fix
//! Declare the vendor's service as a zone with its prefixes and allow only
//! that; keep `deny tag:medical -> world : any` as a guardrail.

use wardgate_common::WORLD_ZONE;
use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;

pub const CODE: CodeInfo = CodeInfo {
    code: "WG509",
    name: "medical-to-world",
    severity: Severity::Warning,
    summary: "a `medical` zone is allowed to reach `world`",
    explanation: "Medical devices run old, unpatchable software; a path to the internet is how ransomware calls home and how data leaves. Declare the vendor's service as a zone with its prefixes and allow only that, and keep `deny tag:medical -> world : any` as a guardrail.",
    example: "zone imaging { networks 10.20.0.0/23 tags medical }\nallow imaging -> world : tcp/443\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    for (_, rule) in cx.allows() {
        if rule.dst.binary_search(&WORLD_ZONE).is_err() {
            continue;
        }
        let Some(&m) = rule
            .src
            .iter()
            .find(|&&s| cx.policy.zone(s).is_medical() && cx.rule_opens(rule, s, WORLD_ZONE))
        else {
            continue;
        };
        out.push(
            Diagnostic::new(
                &CODE,
                rule.origin.span(),
                format!(
                    "medical zone `{}` is allowed to reach `world`",
                    cx.policy.zone(m).name
                ),
            )
            .with_primary_label("opens a path to the internet")
            .with_help("declare the vendor's service as a zone and allow only that"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    const Z: &str = "zone m { hosts 10.0.0.1 tags medical }\nzone b { hosts 10.0.0.2 }\n";

    #[test]
    fn fires_for_medical_to_world_and_any() {
        assert_eq!(
            codes_of(
                &format!("{Z}allow m -> world : tcp/443\n"),
                "2026-01-01",
                "WG509"
            )
            .len(),
            1
        );
        assert_eq!(
            codes_of(
                &format!("{Z}allow tag:medical -> any : tcp/443\n"),
                "2026-01-01",
                "WG509"
            )
            .len(),
            1
        );
    }

    #[test]
    fn does_not_fire_when_denied_or_not_medical() {
        let p = format!("{Z}allow m -> world : tcp/443\ndeny tag:medical -> world : any\n");
        assert!(codes_of(&p, "2026-01-01", "WG509").is_empty());
        assert!(
            codes_of(
                &format!("{Z}allow b -> world : tcp/443\n"),
                "2026-01-01",
                "WG509"
            )
            .is_empty()
        );
    }
}
