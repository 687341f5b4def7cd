//! `broad-service` (WG510).
//!
//! ## What it does
//! Finds `allow` rules into a life-critical zone (`criticality life-critical`
//! or tag `life-critical`) with `any` or a whole protocol (`tcp`, `udp`,
//! `sctp`, `icmp`, `icmpv6`) instead of the ports the devices use.
//!
//! ## Why is this bad
//! Life-critical devices (infusion pumps, ventilators, patient monitors)
//! should expose only the few services their workflow needs. A whole
//! protocol opens every management and debug port they have, known or not.
//!
//! ## Example
//! ```ward
//! zone infusion { networks 10.40.0.0/22 tags medical, life-critical }
//! allow pump-server -> infusion : tcp
//! ```
//!
//! ## Fix
//! List the ports the workflow needs (`tcp/443, hl7-mllp`).

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;

pub const CODE: CodeInfo = CodeInfo {
    code: "WG510",
    name: "broad-service",
    severity: Severity::Warning,
    summary: "`any` or a whole protocol is allowed into a life-critical zone",
    explanation: "Life-critical devices should expose only the services their workflow needs; a whole protocol opens every management and debug port they have. List the ports instead (`tcp/443, hl7-mllp`).",
    example: "zone infusion { networks 10.40.0.0/22 criticality life-critical }\nzone pump-server { hosts 10.41.0.10 }\nallow pump-server -> infusion : tcp\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    for (_, rule) in cx.allows() {
        let broad: Vec<_> = rule
            .services
            .iter()
            .filter(|a| a.is_whole() && a.proto.is_none_or(|p| matches!(p, 1 | 6 | 17 | 58 | 132)))
            .collect();
        if broad.is_empty() {
            continue;
        }
        let hit = rule.dst.iter().find_map(|&d| {
            if !cx.policy.zone(d).is_life_critical() {
                return None;
            }
            let opened = broad.iter().find(|a| {
                rule.src
                    .iter()
                    .any(|&s| cx.consulted(s, d) && cx.opens(s, d, a))
            })?;
            Some((d, opened))
        });
        let Some((d, atom)) = hit else { continue };
        out.push(
            Diagnostic::new(
                &CODE,
                rule.origin.span(),
                format!(
                    "`{atom}` is allowed into life-critical zone `{}`",
                    cx.policy.zone(d).name
                ),
            )
            .with_primary_label("every port")
            .with_help("list only the ports the workflow needs"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    const Z: &str =
        "zone p { hosts 10.0.0.1 criticality life-critical }\nzone s { hosts 10.0.0.2 }\n";

    #[test]
    fn fires_for_any_and_whole_protocols() {
        assert_eq!(
            codes_of(&format!("{Z}allow s -> p : tcp\n"), "2026-01-01", "WG510"),
            vec!["`tcp` is allowed into life-critical zone `p`"]
        );
        assert_eq!(
            codes_of(&format!("{Z}allow s -> p : any\n"), "2026-01-01", "WG510").len(),
            1
        );
    }

    #[test]
    fn does_not_fire_for_ports_or_other_zones() {
        assert!(
            codes_of(
                &format!("{Z}allow s -> p : tcp/443\n"),
                "2026-01-01",
                "WG510"
            )
            .is_empty()
        );
        assert!(codes_of(&format!("{Z}allow p -> s : any\n"), "2026-01-01", "WG510").is_empty());
    }
}
