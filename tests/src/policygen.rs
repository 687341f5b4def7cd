//! The random policies and probes of the differential tests (kernel and
//! nftables): zones over a pool of nested IPv4/IPv6 prefixes, isolated and
//! monitor zones, allow and deny rules over every selector and service form
//! (a quarter of them within one selector: intra-zone denies, `world ->
//! world`; some with many ports, for port directories), and probes aimed at the policy's own addresses and port
//! boundaries, between two `world` addresses, and from or to IPv4-mapped
//! IPv6 addresses (malformed).

use std::{fmt::Write as _, net::IpAddr};

use proptest::prelude::*;

use crate::packet::tcp_flags;

/// Prefixes zones are built from; nested on purpose. Those in 10.3.0.0/16
/// cut that block into enough ranges (more than `V4_DIR_MIN_RANGES`) for it
/// to get a block directory when most of them are in the policy.
pub const POOL: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "10.2.0.0/16",
    "10.3.0.0/20",
    "10.3.0.16/28",
    "10.3.0.48/28",
    "10.3.1.0/30",
    "10.3.1.128/25",
    "10.3.2.5/32",
    "10.3.255.0/24",
    "192.0.2.0/24",
    "192.0.2.128/25",
    "2001:db8:1::/48",
    "2001:db8:1:5::/64",
    "2001:db8:1:5::7/128",
    "2001:db8:2::/48",
    "2001:db8:3::/48",
];

/// Addresses outside every pool prefix (`world`).
pub const WORLD: &[&str] = &[
    "198.51.100.7",
    "203.0.113.1",
    "2001:db8:ffff::1",
    "2001:db8:4::9",
];

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`), some embedding an address
/// a zone holds: malformed, they must drop and never classify as IPv4.
pub const MAPPED: &[&str] = &["::ffff:10.1.2.3", "::ffff:192.0.2.1", "::ffff:198.51.100.7"];

pub const OTHER_PROTOS: &[u8] = &[47, 50, 89];

#[derive(Clone, Debug)]
pub enum Sel {
    Zone(usize),
    Tag,
    World,
    Any,
}

#[derive(Clone, Debug)]
pub enum Svc {
    Ports(&'static str, Option<(u16, u16)>),
    Icmp(&'static str, Option<u8>),
    Proto(u8),
    Any,
}

#[derive(Clone, Debug)]
pub struct Rule {
    deny: bool,
    src: Sel,
    dst: Sel,
    services: Vec<Svc>,
}

#[derive(Clone, Debug)]
pub struct Spec {
    zones: usize,
    /// Owner zone of each pool prefix, if any.
    owners: Vec<Option<usize>>,
    isolated: Vec<bool>,
    monitor: Vec<bool>,
    rules: Vec<Rule>,
}

pub fn port_range() -> impl Strategy<Value = Option<(u16, u16)>> {
    prop_oneof![
        1 => Just(None),
        3 => any::<u16>().prop_map(|p| Some((p, p))),
        2 => (any::<u16>(), 0u16..2000).prop_map(|(lo, len)| Some((lo, lo.saturating_add(len)))),
        2 => (0u16..1100).prop_map(|p| Some((p, p))),
    ]
}

pub fn service() -> impl Strategy<Value = Svc> {
    prop_oneof![
        4 => (prop::sample::select(vec!["tcp", "udp", "sctp"]), port_range()).prop_map(|(p, r)| Svc::Ports(p, r)),
        2 => (prop::sample::select(vec!["icmp", "icmpv6"]), prop::option::of(prop_oneof![Just(8u8), Just(128u8), Just(0u8), Just(3u8), 0u8..=255])).prop_map(|(p, t)| Svc::Icmp(p, t)),
        1 => prop::sample::select(OTHER_PROTOS.to_vec()).prop_map(Svc::Proto),
        1 => Just(Svc::Any),
    ]
}

pub fn selector() -> impl Strategy<Value = Sel> {
    prop_oneof![
        6 => (0usize..8).prop_map(Sel::Zone),
        1 => Just(Sel::Tag),
        1 => Just(Sel::World),
        1 => Just(Sel::Any),
    ]
}

pub fn spec() -> impl Strategy<Value = Spec> {
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
                    prop::bool::weighted(0.25),
                    // Now and then many ports (a pair's port directory).
                    prop_oneof![
                        4 => prop::collection::vec(service(), 1..4),
                        // One protocol: each port adds intervals to one table.
                        1 => (
                            prop::sample::select(vec!["tcp", "udp"]),
                            prop::collection::vec(port_range(), 12..24),
                        )
                            .prop_map(|(p, ranges)| ranges
                                .into_iter()
                                .map(|r| Svc::Ports(p, r))
                                .collect()),
                    ],
                )
                    .prop_map(|(deny, src, dst, same, services)| Rule {
                        deny,
                        dst: if same { src.clone() } else { dst },
                        src,
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
    pub fn source(&self) -> String {
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
    pub fn ports(&self) -> Vec<u16> {
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

/// Addresses worth probing: each pool prefix's first, second and last address,
/// world, and (IPv6) the IPv4-mapped ones.
pub fn addresses() -> (Vec<IpAddr>, Vec<IpAddr>) {
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
    v6.extend(MAPPED.iter().map(|m| m.parse::<IpAddr>().unwrap()));
    (v4, v6)
}

fn world(v6: bool) -> Vec<IpAddr> {
    WORLD
        .iter()
        .map(|w| w.parse::<IpAddr>().unwrap())
        .filter(|a| a.is_ipv6() == v6)
        .collect()
}

/// One probe: a frame and what the evaluator is asked about it.
#[derive(Clone, Debug)]
pub struct Probe {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port, or ICMP type for ICMP and ICMPv6.
    pub port: u16,
    /// TCP flags (TCP probes only).
    pub flags: u8,
}

pub fn probes(ports: Vec<u16>, count: usize) -> impl Strategy<Value = Vec<Probe>> {
    let (v4, v6) = addresses();
    let port = prop_oneof![3 => prop::sample::select(ports), 1 => any::<u16>()];
    let l4 = prop_oneof![
        4 => (Just(6u8), port.clone(), prop::sample::select(vec![tcp_flags::SYN, tcp_flags::ACK, tcp_flags::RST | tcp_flags::ACK])),
        3 => (Just(17u8), port.clone(), Just(0u8)),
        2 => (Just(1u8), prop_oneof![Just(8u16), Just(0u16), 0u16..=255], Just(0u8)),
        1 => (Just(132u8), port, Just(0u8)),
        1 => (prop::sample::select(OTHER_PROTOS.to_vec()), Just(0u16), Just(0u8)),
    ];
    // One probe in ten runs between two `world` addresses (`world` is isolated).
    let v4_pick = prop_oneof![
        9 => (prop::sample::select(v4.clone()), prop::sample::select(v4)),
        1 => (prop::sample::select(world(false)), prop::sample::select(world(false))),
    ];
    let v6_pick = prop_oneof![
        9 => (prop::sample::select(v6.clone()), prop::sample::select(v6)),
        1 => (prop::sample::select(world(true)), prop::sample::select(world(true))),
    ];
    let probe = (
        prop::bool::weighted(0.35),
        v4_pick,
        v6_pick,
        l4,
        prop_oneof![Just(128u16), Just(129u16), 0u16..=255],
    )
        .prop_map(|(six, (s4, d4), (s6, d6), (proto, port, flags), icmp6)| {
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
