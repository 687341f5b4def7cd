//! The differential test: random policies and random packets, the kernel
//! program against the compiler's reference evaluator, zero disagreements.
//!
//! Each case is a policy (zones over a pool of nested IPv4/IPv6 prefixes,
//! isolated and monitor zones, allow and deny rules over every selector and
//! service form) and a batch of packets aimed at the policy's own addresses
//! and port boundaries. Every packet is decided alone: tracked connections are
//! flushed after each one. The verdict (pass, audit, drop) and, for drops and
//! audits, the deciding rule (from the event) must match the evaluator's.

use std::{fmt::Write as _, net::IpAddr};

use proptest::{prelude::*, test_runner::TestCaseError};
use wardgate_agent::{programmer, quarantine::key};
use wardgate_common::{CONFIG_FAST_PATH, CtKey, EVENT_AUDIT, RULE_NONE, counter};
use wardgate_compiler::{Verdict, decide};
use wardgate_tests::{
    enforcer::{Enforcer, image},
    packet::{self, L4, tcp_flags},
    privilege,
};

/// Prefixes zones are built from; nested on purpose.
const POOL: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "10.2.0.0/16",
    "192.0.2.0/24",
    "192.0.2.128/25",
    "2001:db8:1::/48",
    "2001:db8:1:5::/64",
    "2001:db8:1:5::7/128",
    "2001:db8:2::/48",
    "2001:db8:3::/48",
];

/// Addresses outside every pool prefix (`world`).
const WORLD: &[&str] = &[
    "198.51.100.7",
    "203.0.113.1",
    "2001:db8:ffff::1",
    "2001:db8:4::9",
];

const OTHER_PROTOS: &[u8] = &[47, 50, 89];

#[derive(Clone, Debug)]
enum Sel {
    Zone(usize),
    Tag,
    World,
    Any,
}

#[derive(Clone, Debug)]
enum Svc {
    Ports(&'static str, Option<(u16, u16)>),
    Icmp(&'static str, Option<u8>),
    Proto(u8),
    Any,
}

#[derive(Clone, Debug)]
struct Rule {
    deny: bool,
    src: Sel,
    dst: Sel,
    services: Vec<Svc>,
}

#[derive(Clone, Debug)]
struct Spec {
    zones: usize,
    /// Owner zone of each pool prefix, if any.
    owners: Vec<Option<usize>>,
    isolated: Vec<bool>,
    monitor: Vec<bool>,
    rules: Vec<Rule>,
}

fn port_range() -> impl Strategy<Value = Option<(u16, u16)>> {
    prop_oneof![
        1 => Just(None),
        3 => any::<u16>().prop_map(|p| Some((p, p))),
        2 => (any::<u16>(), 0u16..2000).prop_map(|(lo, len)| Some((lo, lo.saturating_add(len)))),
        2 => (0u16..1100).prop_map(|p| Some((p, p))),
    ]
}

fn service() -> impl Strategy<Value = Svc> {
    prop_oneof![
        4 => (prop::sample::select(vec!["tcp", "udp", "sctp"]), port_range()).prop_map(|(p, r)| Svc::Ports(p, r)),
        2 => (prop::sample::select(vec!["icmp", "icmpv6"]), prop::option::of(prop_oneof![Just(8u8), Just(128u8), Just(0u8), Just(3u8), 0u8..=255])).prop_map(|(p, t)| Svc::Icmp(p, t)),
        1 => prop::sample::select(OTHER_PROTOS.to_vec()).prop_map(Svc::Proto),
        1 => Just(Svc::Any),
    ]
}

fn selector() -> impl Strategy<Value = Sel> {
    prop_oneof![
        6 => (0usize..8).prop_map(Sel::Zone),
        1 => Just(Sel::Tag),
        1 => Just(Sel::World),
        1 => Just(Sel::Any),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (1usize..6).prop_flat_map(|zones| {
        (
            Just(zones),
            prop::collection::vec(prop::option::weighted(0.8, 0..zones), POOL.len()),
            prop::collection::vec(prop::bool::weighted(0.25), zones),
            prop::collection::vec(prop::bool::weighted(0.2), zones),
            prop::collection::vec(
                (
                    prop::bool::weighted(0.3),
                    selector(),
                    selector(),
                    prop::collection::vec(service(), 1..4),
                )
                    .prop_map(|(deny, src, dst, services)| Rule {
                        deny,
                        src,
                        dst,
                        services,
                    }),
                0..12,
            ),
        )
            .prop_map(|(zones, owners, isolated, monitor, rules)| Spec {
                zones,
                owners,
                isolated,
                monitor,
                rules,
            })
    })
}

impl Spec {
    fn source(&self) -> String {
        let mut out = String::new();
        for z in 0..self.zones {
            let nets: Vec<&str> = POOL
                .iter()
                .zip(&self.owners)
                .filter(|(_, o)| **o == Some(z))
                .map(|(p, _)| *p)
                .collect();
            write!(out, "zone z{z} {{").unwrap();
            if !nets.is_empty() {
                write!(out, " networks {}", nets.join(", ")).unwrap();
            }
            if z == 0 {
                out.push_str(" tags t");
            }
            if self.isolated[z] {
                out.push_str(" isolated");
            }
            if self.monitor[z] {
                out.push_str(" mode monitor");
            }
            out.push_str(" }\n");
        }
        let sel = |s: &Sel| match s {
            Sel::Zone(i) => format!("z{}", i % self.zones),
            Sel::Tag => "tag:t".to_owned(),
            Sel::World => "world".to_owned(),
            Sel::Any => "any".to_owned(),
        };
        for r in &self.rules {
            let services: Vec<String> = r
                .services
                .iter()
                .map(|s| match s {
                    Svc::Ports(p, None) => (*p).to_owned(),
                    Svc::Ports(p, Some((lo, hi))) if lo == hi => format!("{p}/{lo}"),
                    Svc::Ports(p, Some((lo, hi))) => format!("{p}/{lo}-{hi}"),
                    Svc::Icmp(p, None) => (*p).to_owned(),
                    Svc::Icmp(p, Some(t)) => format!("{p}/{t}"),
                    Svc::Proto(n) => format!("proto/{n}"),
                    Svc::Any => "any".to_owned(),
                })
                .collect();
            writeln!(
                out,
                "{} {} -> {} : {}",
                if r.deny { "deny" } else { "allow" },
                sel(&r.src),
                sel(&r.dst),
                services.join(", ")
            )
            .unwrap();
        }
        out
    }

    /// Ports worth probing: every rule's boundaries and their neighbours.
    fn ports(&self) -> Vec<u16> {
        let mut ports = vec![0, 1, 22, 53, 443, 65535];
        for r in &self.rules {
            for s in &r.services {
                if let Svc::Ports(_, Some((lo, hi))) = s {
                    ports.extend([lo.saturating_sub(1), *lo, *hi, hi.saturating_add(1)]);
                }
            }
        }
        ports
    }
}

/// Addresses worth probing: each pool prefix's first, second and last address, and world.
fn addresses() -> (Vec<IpAddr>, Vec<IpAddr>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for p in POOL {
        let (addr, len) = p.split_once('/').unwrap();
        let len: u32 = len.parse().unwrap();
        match addr.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => {
                let base = u32::from(a);
                let last = base | u32::MAX.checked_shr(len).unwrap_or(0);
                v4.extend(
                    [base, base.saturating_add(1).min(last), last].map(|n| IpAddr::V4(n.into())),
                );
            }
            IpAddr::V6(a) => {
                let base = u128::from(a);
                let last = base | u128::MAX.checked_shr(len).unwrap_or(0);
                v6.extend(
                    [base, base.saturating_add(1).min(last), last].map(|n| IpAddr::V6(n.into())),
                );
            }
        }
    }
    for w in WORLD {
        match w.parse::<IpAddr>().unwrap() {
            a @ IpAddr::V4(_) => v4.push(a),
            a @ IpAddr::V6(_) => v6.push(a),
        }
    }
    (v4, v6)
}

/// One probe: a frame and what the evaluator is asked about it.
#[derive(Clone, Debug)]
struct Probe {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    port: u16,
    flags: u8,
}

impl Probe {
    /// The connection key the program tracks this probe under, if it passes.
    fn ct_key(&self) -> CtKey {
        let (sport, dport, icmp_type) = match self.proto {
            1 | 58 => (9, 0, self.port as u8),
            6 | 17 | 132 => (40000, self.port, 0),
            _ => (0, 0, 0),
        };
        CtKey::new(
            key(self.src),
            key(self.dst),
            self.proto,
            sport,
            dport,
            icmp_type,
        )
    }

    fn frame(&self) -> Vec<u8> {
        match (self.proto, self.src, self.dst) {
            (6, s, d) => packet::ip(
                s,
                d,
                L4::Tcp {
                    sport: 40000,
                    dport: self.port,
                    flags: self.flags,
                },
            ),
            (17, s, d) => packet::ip(
                s,
                d,
                L4::Udp {
                    sport: 40000,
                    dport: self.port,
                },
            ),
            (1 | 58, s, d) => packet::ip(
                s,
                d,
                L4::Icmp {
                    ty: self.port as u8,
                    code: 0,
                    id: 9,
                },
            ),
            (132, IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut hdr = [0u8; 12];
                hdr[0..2].copy_from_slice(&40000u16.to_be_bytes());
                hdr[2..4].copy_from_slice(&self.port.to_be_bytes());
                packet::ipv4_proto(s.octets(), d.octets(), 132, &hdr)
            }
            (p, IpAddr::V4(s), IpAddr::V4(d)) => {
                packet::ipv4_proto(s.octets(), d.octets(), p, &[0; 16])
            }
            _ => unreachable!("probes of other protocols are IPv4"),
        }
    }
}

fn probes(ports: Vec<u16>, count: usize) -> impl Strategy<Value = Vec<Probe>> {
    let (v4, v6) = addresses();
    let port = prop_oneof![3 => prop::sample::select(ports), 1 => any::<u16>()];
    let l4 = prop_oneof![
        4 => (Just(6u8), port.clone(), prop::sample::select(vec![tcp_flags::SYN, tcp_flags::ACK, tcp_flags::RST | tcp_flags::ACK])),
        3 => (Just(17u8), port.clone(), Just(0u8)),
        2 => (Just(1u8), prop_oneof![Just(8u16), Just(0u16), 0u16..=255], Just(0u8)),
        1 => (Just(132u8), port, Just(0u8)),
        1 => (prop::sample::select(OTHER_PROTOS.to_vec()), Just(0u16), Just(0u8)),
    ];
    let probe = (
        prop::bool::weighted(0.35),
        prop::sample::select(v4.clone()),
        prop::sample::select(v4),
        prop::sample::select(v6.clone()),
        prop::sample::select(v6),
        l4,
        prop_oneof![Just(128u16), Just(129u16), 0u16..=255],
    )
        .prop_map(|(six, s4, d4, s6, d6, (proto, port, flags), icmp6)| {
            // IPv6 probes use TCP, UDP or ICMPv6.
            if six && matches!(proto, 6 | 17 | 1) {
                let (proto, port) = if proto == 1 {
                    (58, icmp6)
                } else {
                    (proto, port)
                };
                Probe {
                    src: s6,
                    dst: d6,
                    proto,
                    port,
                    flags,
                }
            } else {
                Probe {
                    src: s4,
                    dst: d4,
                    proto,
                    port,
                    flags,
                }
            }
        });
    prop::collection::vec(probe, count)
}

fn expected(e: &Enforcer, p: &Probe) -> (Verdict, u32) {
    if p.proto == 58 && (133..=137).contains(&p.port) {
        // Neighbour discovery passes whatever the policy says (LANGUAGE.md, semantics 6).
        return (Verdict::Allow, RULE_NONE);
    }
    let d = decide(
        &e.image,
        &wardgate_compiler::Packet {
            src: p.src,
            dst: p.dst,
            proto: p.proto,
            port: p.port,
        },
    );
    (d.verdict, d.rule.unwrap_or(RULE_NONE))
}

/// Runs one probe; returns the kernel's verdict and, for drops and audits, the rule in the event.
fn observed(e: &mut Enforcer, p: &Probe) -> (Verdict, Option<u32>) {
    let audits = e.counter(counter::AUDIT);
    let passed = e.passes(&p.frame());
    let events = e.events();
    e.forget(&p.ct_key());
    let rule = events.first().map(|ev| ev.rule);
    let verdict = match (passed, e.counter(counter::AUDIT) > audits) {
        (false, _) => Verdict::Deny,
        (true, true) => {
            assert!(events.iter().all(|ev| ev.verdict == EVENT_AUDIT));
            Verdict::Audit
        }
        (true, false) => Verdict::Allow,
    };
    (verdict, rule)
}

const CASES: u32 = 50;
const PROBES_PER_CASE: usize = 2_000;

#[test]
fn kernel_agrees_with_the_reference_evaluator() {
    if !privilege::kernel_tests_can_run("kernel_agrees_with_the_reference_evaluator") {
        return;
    }
    // One program for every case: each case is also a reload.
    let mut e = Enforcer::new("zone seed { networks 10.9.0.0/16 }");
    let mut config = programmer::config(e.program.ebpf_mut()).unwrap();
    config.events_per_sec = u32::MAX;
    programmer::set_config(e.program.ebpf_mut(), config).unwrap();
    let e = std::cell::RefCell::new(e);
    let checked = std::cell::Cell::new(0usize);
    let cases = std::cell::Cell::new(0u32);
    let strategy = spec().prop_flat_map(|s| {
        let ports = s.ports();
        (Just(s), probes(ports, PROBES_PER_CASE))
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |(spec, probes)| {
        let source = spec.source();
        let mut e = e.borrow_mut();
        let e = &mut *e;
        e.image = image(&source);
        // Every other case with the fast path on: it must not change a verdict.
        let case = cases.get();
        cases.set(case + 1);
        let flags = if case % 2 == 1 { CONFIG_FAST_PATH } else { 0 };
        programmer::load(e.program.ebpf_mut(), &e.image, flags).unwrap();
        for probe in &probes {
            let (want, want_rule) = expected(e, probe);
            let (got, got_rule) = observed(e, probe);
            let rule_ok = got == Verdict::Allow || got_rule == Some(want_rule);
            if got != want || !rule_ok {
                return Err(TestCaseError::fail(format!(
                    "disagreement on {probe:?}\n  evaluator: {want:?} (rule {want_rule})\n  kernel:    {got:?} (rule {got_rule:?})\npolicy:\n{source}"
                )));
            }
            checked.set(checked.get() + 1);
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    let checked = checked.get();
    let e = e.into_inner();
    assert!(
        e.counter(counter::FAST_TO_STACK) > 0,
        "the fast-path cases never reached the fast path"
    );
    println!("differential: {checked} packets over {CASES} policies, zero disagreements");
    assert!(checked >= 100_000, "only {checked} packets checked");
}
