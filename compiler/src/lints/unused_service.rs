//! `unused-service` (WG503).
//!
//! ## What it does
//! Finds `service` definitions that no rule and no other service refers to.
//!
//! ## Why is this bad
//! An unused service is usually a rule that was removed or never written, or
//! a typo in the rule that meant to use it (which then names another
//! service). Either way the policy says less than its author thinks.
//!
//! ## Example
//! ```ward
//! service hl7-mllp = tcp/2575
//! allow infusion -> pump-server : https
//! ```
//!
//! ## Fix
//! Use the service in the rule that needs it, or delete the definition.

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;

pub const CODE: CodeInfo = CodeInfo {
    code: "WG503",
    name: "unused-service",
    severity: Severity::Warning,
    summary: "a service is defined but never used",
    explanation: "No rule and no other service refers to it. It is usually a rule that was removed or never written, or a typo in the rule that meant to use it. Use it, or delete the definition.",
    example: "service hl7-mllp = tcp/2575\nzone a { hosts 10.0.0.1 }\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    for s in cx.policy.services.iter().filter(|s| s.uses == 0) {
        out.push(
            Diagnostic::new(
                &CODE,
                s.origin.span(),
                format!("service `{}` is never used", s.name),
            )
            .with_primary_label("defined here")
            .with_help("use it in a rule, or delete the definition"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    #[test]
    fn fires_for_an_unreferenced_service() {
        let p = "service hl7 = tcp/2575\nzone a { hosts 10.0.0.1 }\n";
        assert_eq!(
            codes_of(p, "2026-01-01", "WG503"),
            vec!["service `hl7` is never used"]
        );
    }

    #[test]
    fn does_not_fire_for_services_used_by_rules_or_services() {
        let p = "service a = tcp/1\nservice b = a, tcp/2\nzone x { hosts 10.0.0.1 }\nzone y { hosts 10.0.0.2 }\nallow x -> y : b\n";
        assert!(codes_of(p, "2026-01-01", "WG503").is_empty());
    }
}
