//! Properties that hold for every policy: the image evaluator equals a
//! brute-force reading of the rules; compiling is deterministic; statement
//! order never changes a decision; images round-trip and corruption is caught.

use std::net::IpAddr;

use proptest::prelude::*;
use wardgate_compiler::eval::{decide, decide_by_rules};
use wardgate_compiler::model::{Action, Date, Origin, Policy, PrefixDecl, Rule, ServiceAtom, Zone};
use wardgate_compiler::{Packet, PolicyImage, build_image};

/// Candidate prefixes, nested and side by side, IPv4 and IPv6 (one covers
/// the IPv4-mapped block, to exercise the IPv4 guard).
const PREFIXES: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "10.2.0.0/16",
    "192.168.0.0/24",
    "0.0.0.0/1",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::/0",
];

const ADDRESSES: &[&str] = &[
    "10.1.2.3",
    "10.1.2.4",
    "10.1.3.1",
    "10.2.0.1",
    "10.3.0.1",
    "192.168.0.7",
    "172.16.0.1",
    "200.0.0.1",
    "2001:db8:1::1",
    "2001:db8:2::1",
    "2002::1",
    // IPv4-mapped: malformed, never the IPv4 zone.
    "::ffff:10.1.2.3",
    "::ffff:200.0.0.1",
];

const PROTOS: &[u8] = &[1, 6, 17, 50, 58, 132];

fn atom() -> impl Strategy<Value = ServiceAtom> {
    prop_oneof![
        1 => Just(ServiceAtom::ANY),
        2 => (prop::sample::select(PROTOS), 0u16..12, 0u16..6).prop_map(|(p, lo, w)| {
            if matches!(p, 1 | 6 | 17 | 58 | 132) {
                ServiceAtom::ports(p, lo, lo + w)
            } else {
                ServiceAtom::proto(p)
            }
        }),
        1 => prop::sample::select(PROTOS).prop_map(ServiceAtom::proto),
    ]
}

/// (allow?, source zones, destination zones, services, expiry day offset).
type RuleSpec = (bool, Vec<usize>, Vec<usize>, Vec<ServiceAtom>, Option<u8>);

#[derive(Clone, Debug)]
struct Spec {
    zones: usize,
    flags: Vec<(bool, bool)>,
    owners: Vec<Option<usize>>,
    rules: Vec<RuleSpec>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (1usize..6).prop_flat_map(|zones| {
        let zone_ids = 0..=zones; // 0 = world
        (
            Just(zones),
            prop::collection::vec((any::<bool>(), prop::bool::weighted(0.2)), zones),
            prop::collection::vec(prop::option::weighted(0.7, 1..=zones), PREFIXES.len()),
            prop::collection::vec(
                (
                    prop::bool::weighted(0.7),
                    prop::collection::vec(zone_ids.clone(), 1..3),
                    prop::collection::vec(zone_ids.clone(), 1..3),
                    prop::collection::vec(atom(), 1..3),
                    prop::option::weighted(0.2, 0u8..4),
                ),
                0..12,
            ),
        )
            .prop_map(|(zones, flags, owners, rules)| Spec {
                zones,
                flags,
                owners,
                rules,
            })
    })
}

fn build(spec: &Spec) -> Policy {
    let mut p = Policy::new();
    for z in 0..spec.zones {
        let mut zone = Zone::new(format!("z{z}"));
        zone.isolated = spec.flags[z].0;
        zone.monitor = spec.flags[z].1;
        zone.origin = Some(Origin::new("p.ward", u32::try_from(z + 1).unwrap(), 1));
        p.add_zone(zone);
    }
    for (i, owner) in spec.owners.iter().enumerate() {
        if let Some(z) = owner {
            p.zones[*z].prefixes.push(PrefixDecl {
                net: PREFIXES[i].parse().unwrap(),
                origin: Origin::new("p.ward", 100 + u32::try_from(i).unwrap(), 1),
            });
        }
    }
    for (i, (allow, src, dst, services, until)) in spec.rules.iter().enumerate() {
        let mut src: Vec<u32> = src.iter().map(|&z| u32::try_from(z).unwrap()).collect();
        let mut dst: Vec<u32> = dst.iter().map(|&z| u32::try_from(z).unwrap()).collect();
        src.sort_unstable();
        src.dedup();
        dst.sort_unstable();
        dst.dedup();
        let (src_label, dst_label) = (format!("zones {src:?}"), format!("zones {dst:?}"));
        p.rules.push(Rule {
            action: if *allow { Action::Allow } else { Action::Deny },
            src,
            dst,
            services: services.clone(),
            src_label,
            dst_label,
            service_labels: services.iter().map(ToString::to_string).collect(),
            until: until.map(|d| day(i64::from(d))),
            comment: None,
            text: format!("rule {i}"),
            origin: Origin::new("p.ward", 200 + u32::try_from(i).unwrap(), 1),
        });
    }
    p.canonicalize();
    p
}

fn packet() -> impl Strategy<Value = Packet> {
    (
        prop::sample::select(ADDRESSES),
        prop::sample::select(ADDRESSES),
        prop::sample::select(PROTOS),
        0u16..20,
    )
        .prop_map(|(s, d, proto, port)| Packet {
            src: s.parse::<IpAddr>().unwrap(),
            dst: d.parse::<IpAddr>().unwrap(),
            proto,
            port,
        })
}

/// `n` days after 2026-01-01.
fn day(n: i64) -> Date {
    let start: Date = "2026-01-01".parse().unwrap();
    Date::from_days_since_epoch(start.days_since_epoch() + n).unwrap()
}

fn today() -> impl Strategy<Value = Option<Date>> {
    prop::option::of((0i64..6).prop_map(day))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn image_evaluator_equals_brute_force(spec in spec(), today in today(), pkts in prop::collection::vec(packet(), 40)) {
        let policy = build(&spec);
        let image = build_image(&policy, today).unwrap();
        for pkt in &pkts {
            prop_assert_eq!(decide(&image, pkt), decide_by_rules(&policy, today, pkt), "{:?}", pkt);
        }
    }

    #[test]
    fn compiling_is_deterministic_and_order_free(spec in spec(), seed in any::<u64>(), pkts in prop::collection::vec(packet(), 20)) {
        let policy = build(&spec);
        let a = build_image(&policy, None).unwrap();
        prop_assert_eq!(a.to_bytes(), build_image(&policy, None).unwrap().to_bytes());

        // Move statements around: shuffle zones and rules, renumber lines.
        let mut moved = policy.clone();
        let mut rng = seed;
        let mut next = move |n: usize| {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(rng >> 33).unwrap() % n
        };
        for i in (1..moved.rules.len()).rev() {
            let j = next(i + 1);
            moved.rules.swap(i, j);
        }
        for (i, r) in moved.rules.iter_mut().enumerate() {
            r.origin.line = 500 + u32::try_from(i).unwrap();
        }
        // Zone ids are positions; swapping zones means remapping rule sets.
        let n = moved.zones.len();
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (2..n).rev() {
            let j = 1 + next(i);
            perm.swap(i, j);
        }
        let old = moved.zones.clone();
        for (new, &o) in perm.iter().enumerate() {
            moved.zones[new] = old[o].clone();
        }
        let mut inv = vec![0u32; n];
        for (new, &o) in perm.iter().enumerate() {
            inv[o] = u32::try_from(new).unwrap();
        }
        for r in &mut moved.rules {
            for z in r.src.iter_mut().chain(r.dst.iter_mut()) {
                *z = inv[*z as usize];
            }
        }
        moved.canonicalize();
        let b = build_image(&moved, None).unwrap();
        for pkt in &pkts {
            let (da, db) = (decide(&a, pkt), decide(&b, pkt));
            prop_assert_eq!(da.verdict, db.verdict);
            prop_assert_eq!(a.zone_name(da.src_zone), b.zone_name(db.src_zone));
            prop_assert_eq!(a.zone_name(da.dst_zone), b.zone_name(db.dst_zone));
            prop_assert_eq!(da.rule.map(|r| &a.rule(r).unwrap().text), db.rule.map(|r| &b.rule(r).unwrap().text));
        }
    }

    #[test]
    fn images_round_trip_and_corruption_is_rejected(spec in spec(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let image = build_image(&build(&spec), None).unwrap();
        let bytes = image.to_bytes();
        let loaded = PolicyImage::from_bytes(&bytes).unwrap();
        prop_assert!(loaded == image);
        prop_assert_eq!(loaded.to_bytes(), bytes.clone());
        let mut bad = bytes;
        let i = at.index(bad.len());
        bad[i] ^= 1 << bit;
        prop_assert!(PolicyImage::from_bytes(&bad).is_err());
    }
}

/// The real examples with their statements shuffled (text level: parse,
/// reorder the statements' source text, parse again) decide every packet
/// the same way: verdict, zones and the deciding rule's text.
mod shuffled_examples {
    use std::path::Path;

    use proptest::prelude::*;
    use wardgate_compiler::{Options, Packet, PolicyImage, analyze, decide};

    fn compile(path: &str, root_text: Option<&str>) -> PolicyImage {
        let root = Path::new(path).to_path_buf();
        let mut read = |p: &Path| match root_text {
            Some(t) if p == root => Ok(t.to_owned()),
            _ => std::fs::read_to_string(p),
        };
        let loaded = wardgate_lang::load_with(Path::new(path), &mut read).unwrap();
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        let opts = Options {
            today: "2026-06-01".parse().ok(),
        };
        analyze(&loaded, &opts).image.expect("clean example")
    }

    fn shuffled(path: &str, seed: u64) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        let file = &wardgate_lang::parse_str(path, &text).files[0];
        let mut parts: Vec<&str> = file
            .statements
            .iter()
            .map(|s| &text[s.span.start..s.span.end])
            .collect();
        let mut rng = seed;
        for i in (1..parts.len()).rev() {
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from(rng >> 33).unwrap() % (i + 1);
            parts.swap(i, j);
        }
        parts.join("\n\n") + "\n"
    }

    fn addr() -> impl Strategy<Value = std::net::IpAddr> {
        prop_oneof![
            (
                prop::sample::select(&[10u8, 192, 203, 8][..]),
                0u8..110,
                0u8..5,
                0u8..30
            )
                .prop_map(|(a, b, c, d)| std::net::IpAddr::from([
                    a,
                    if a == 10 { b } else { 168 },
                    c,
                    d
                ])),
            (0u16..0x60, 0u16..4)
                .prop_map(|(z, h)| std::net::IpAddr::from([0x2001, 0xdb8, z, 0, 0, 0, 0, h])),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn moving_statements_never_changes_a_decision(
            seed in any::<u64>(),
            pkts in prop::collection::vec((addr(), addr(), prop::sample::select(&[1u8, 6, 17, 50, 58][..]), 0u16..600), 200),
        ) {
            for path in ["../examples/clinic.ward", "../examples/hospital.ward"] {
                let a = compile(path, None);
                let b = compile(path, Some(&shuffled(path, seed)));
                for &(src, dst, proto, port) in &pkts {
                    if src.is_ipv4() != dst.is_ipv4() {
                        continue;
                    }
                    let pkt = Packet { src, dst, proto, port: if port > 500 { 104 } else { port } };
                    let (da, db) = (decide(&a, &pkt), decide(&b, &pkt));
                    prop_assert_eq!(da.verdict, db.verdict, "{:?}", pkt);
                    prop_assert_eq!(a.zone_name(da.src_zone), b.zone_name(db.src_zone));
                    prop_assert_eq!(a.zone_name(da.dst_zone), b.zone_name(db.dst_zone));
                    prop_assert_eq!(
                        da.rule.map(|r| &a.rule(r).unwrap().text),
                        db.rule.map(|r| &b.rule(r).unwrap().text)
                    );
                }
            }
        }
    }
}
