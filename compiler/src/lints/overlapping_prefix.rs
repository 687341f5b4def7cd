//! `overlapping-prefix` (WG505, informational).
//!
//! ## What it does
//! Reports a prefix of one zone that lies inside a prefix of another zone.
//!
//! ## Why is this bad
//! It is not wrong: the more specific prefix wins, and carving a server out
//! of a subnet is common. But a reviewer should see it, because addresses
//! silently change zone when either prefix is edited.
//!
//! ## Example
//! ```ward
//! zone servers { networks 10.30.0.0/16 }
//! zone pacs    { hosts 10.30.0.5 }     # inside `servers`
//! ```
//!
//! ## Fix
//! Nothing, if intended. Otherwise move the address out of the wider prefix.

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;
use crate::prefix::{Key, Lpm};

pub const CODE: CodeInfo = CodeInfo {
    code: "WG505",
    name: "overlapping-prefix",
    severity: Severity::Info,
    summary: "a prefix of one zone lies inside a prefix of another zone",
    explanation: "Not an error: the more specific prefix wins, and carving hosts out of a subnet is common. It is shown so that a reviewer knows that addresses change zone when either prefix is edited.",
    example: "zone servers { networks 10.30.0.0/16 }\nzone pacs { hosts 10.30.0.5 }\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    let mut entries = Vec::new();
    for (id, z) in cx.policy.zones.iter().enumerate() {
        let id = u32::try_from(id).expect("zone count fits u32");
        entries.extend(z.prefixes.iter().map(|p| (Key::of(p.net), id)));
    }
    let lpm = Lpm::new(entries.iter().copied());
    let decl = |key: Key, zone: u32| {
        cx.policy
            .zone(zone)
            .prefixes
            .iter()
            .find(|p| Key::of(p.net) == key)
    };
    for (id, z) in cx.policy.zones.iter().enumerate() {
        let id = u32::try_from(id).expect("zone count fits u32");
        for p in &z.prefixes {
            let key = Key::of(p.net);
            let Some((parent, owner)) = lpm.parent(key) else {
                continue;
            };
            if owner == id || p.net.is_ipv4() != parent.network().is_ipv4() {
                continue;
            }
            let outer = &cx.policy.zone(owner).name;
            let mut d = Diagnostic::new(
                &CODE,
                p.origin.span(),
                format!(
                    "`{}` of zone `{}` lies inside `{}` of zone `{outer}`",
                    p.net,
                    z.name,
                    parent.network()
                ),
            )
            .with_primary_label(format!("belongs to `{}`, the more specific prefix", z.name));
            if let Some(outer_decl) = decl(parent, owner) {
                d = d.with_label(
                    outer_decl.origin.span(),
                    format!("the wider prefix of `{outer}`"),
                );
            }
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    #[test]
    fn fires_for_a_prefix_nested_in_another_zone() {
        let p = "zone servers { networks 10.30.0.0/16 }\nzone pacs { hosts 10.30.0.5 }\n";
        assert_eq!(
            codes_of(p, "2026-01-01", "WG505"),
            vec!["`10.30.0.5/32` of zone `pacs` lies inside `10.30.0.0/16` of zone `servers`"]
        );
    }

    #[test]
    fn does_not_fire_inside_one_zone_or_for_disjoint_prefixes() {
        let p =
            "zone s { networks 10.30.0.0/16, 10.30.1.0/24 }\nzone t { networks 10.31.0.0/16 }\n";
        assert!(codes_of(p, "2026-01-01", "WG505").is_empty());
    }
}
