//! `empty-zone` (WG504).
//!
//! ## What it does
//! Finds zones that hold no address: no `networks`, no `hosts`, and no
//! device of an inventory file.
//!
//! ## Why is this bad
//! Rules about an empty zone match no packet. The zone is usually waiting
//! for an inventory that was never wired in, or its addresses were moved and
//! it was left behind; its rules and requirements then give false comfort.
//!
//! ## Example
//! ```ward
//! zone dialysis { tags medical }
//! ```
//!
//! ## Fix
//! Add its `networks` or `hosts`, reference the inventory that fills it, or
//! delete the zone.

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;

pub const CODE: CodeInfo = CodeInfo {
    code: "WG504",
    name: "empty-zone",
    severity: Severity::Warning,
    summary: "a zone holds no address",
    explanation: "A zone without networks, hosts or inventory devices matches no packet, so its rules and requirements give false comfort. Add its addresses, reference the inventory that fills it, or delete the zone.",
    example: "zone dialysis { tags medical }\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    for z in cx.policy.zones.iter().skip(1) {
        let Some(origin) = &z.origin else { continue };
        // A zone whose every address was refused with an error (declared by
        // another zone first) is not reported again as empty.
        if z.prefixes.is_empty() && z.declared_addresses == 0 {
            out.push(
                Diagnostic::new(
                    &CODE,
                    origin.span(),
                    format!("zone `{}` holds no address", z.name),
                )
                .with_primary_label("no networks, hosts or inventory devices")
                .with_help("add `networks` or `hosts`, or an inventory that fills it"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    #[test]
    fn fires_for_a_zone_without_addresses() {
        assert_eq!(
            codes_of("zone d { tags medical }\n", "2026-01-01", "WG504").len(),
            1
        );
    }

    /// Issue 10 item 10: a prefix declared by two zones (WG301) also
    /// reported the second zone as empty.
    #[test]
    fn issue10_does_not_fire_for_a_zone_whose_prefix_is_a_duplicate() {
        assert!(
            codes_of(
                "zone a { networks 10.0.0.0/24 }\nzone b { networks 10.0.0.0/24 }\n",
                "2026-01-01",
                "WG504"
            )
            .is_empty()
        );
    }

    #[test]
    fn does_not_fire_for_zones_with_addresses() {
        assert!(
            codes_of(
                "zone d { hosts 10.0.0.1 }\nzone e { networks 10.1.0.0/16 }\n",
                "2026-01-01",
                "WG504"
            )
            .is_empty()
        );
    }
}
