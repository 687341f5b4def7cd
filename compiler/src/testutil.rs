//! Builders for policies in tests, property tests and benchmarks.
//!
//! Not part of the stable API.

use crate::model::{Action, Origin, Policy, Rule, ServiceAtom, Zone, ZoneId};

/// A policy with `world` and one zone per name (ids 1, 2, ... in this order,
/// which is also the canonical order when the names are sorted).
#[must_use]
pub fn policy(names: &[&str]) -> Policy {
    let mut p = Policy::new();
    for (i, n) in names.iter().enumerate() {
        let mut z = Zone::new(*n);
        z.origin = Some(Origin::new(
            "test.ward",
            u32::try_from(i + 1).unwrap_or(0),
            1,
        ));
        p.add_zone(z);
    }
    p
}

/// Adds a rule; its origin line follows the previous statements.
pub fn rule(
    p: &mut Policy,
    action: Action,
    src: &[ZoneId],
    dst: &[ZoneId],
    services: &[ServiceAtom],
) {
    let line = u32::try_from(p.zones.len() + p.rules.len() + 1).unwrap_or(0);
    let mut src = src.to_vec();
    src.sort_unstable();
    src.dedup();
    let mut dst = dst.to_vec();
    dst.sort_unstable();
    dst.dedup();
    let labels: Vec<String> = services.iter().map(ToString::to_string).collect();
    let text = format!(
        "{} {} -> {} : {}",
        action.as_str(),
        p.names(&src),
        p.names(&dst),
        labels.join(", ")
    );
    let (src_label, dst_label) = (p.names(&src), p.names(&dst));
    p.rules.push(Rule {
        action,
        src,
        dst,
        services: services.to_vec(),
        src_label,
        dst_label,
        service_labels: labels,
        until: None,
        comment: None,
        text,
        origin: Origin::new("test.ward", line, 1),
    });
}

#[must_use]
pub fn tcp(lo: u16, hi: u16) -> ServiceAtom {
    ServiceAtom::ports(6, lo, hi)
}

#[must_use]
pub fn udp(lo: u16, hi: u16) -> ServiceAtom {
    ServiceAtom::ports(17, lo, hi)
}

#[must_use]
pub fn any() -> ServiceAtom {
    ServiceAtom::ANY
}

/// Parses one policy text and runs the compiler's analysis; panics on
/// language errors (tests write valid policies).
#[must_use]
pub fn check_text(text: &str, today: Option<crate::model::Date>) -> Vec<wardgate_lang::Diagnostic> {
    let loaded = wardgate_lang::parse_str("test.ward", text);
    assert!(
        !loaded.has_errors(),
        "test policy has language errors: {:#?}",
        loaded.diagnostics
    );
    crate::analyze(&loaded, &crate::Options { today }).diagnostics
}

/// Compiles one policy text to its image; panics if it does not compile
/// (tests write valid policies).
#[must_use]
pub fn image(text: &str) -> crate::PolicyImage {
    let loaded = wardgate_lang::parse_str("test.ward", text);
    crate::compile(&loaded, &crate::Options::default())
        .0
        .expect("the test policy compiles")
}
