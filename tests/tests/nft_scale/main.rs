//! The nftables backend at scale (issue 18): generated policies of 100,
//! 1,000 and 10,000 zones (ids past 255 and 4,095, IPv4 and IPv6 prefixes,
//! every service form, denies, monitor and open zones), loaded into a
//! gateway namespace.
//!
//! For each size:
//! 1. the maps read back from the kernel (`nft -j -n list table`) hold
//!    exactly the elements the backend wrote;
//! 2. for every rule's triples (each pair of its zones' prefixes, each
//!    service at its bounds and one past them), a lookup in the *read-back*
//!    maps names the same zones, verdict and deciding rule as the reference
//!    evaluator (`decide`), whatever semantics it implements;
//! 3. a spread of those triples goes through the gateway as real frames, and
//!    each arrives exactly when the evaluator passes it.
//!
//! A dedicated binary, so that `cargo test` runs it on its own (one test at
//! a time: every size loads tens of thousands of elements).

#[path = "../nft/gateway.rs"]
#[allow(
    dead_code,
    reason = "shared with the `nft` test binary, which uses all of it"
)]
mod gateway;
#[path = "../nft/probe.rs"]
#[allow(
    dead_code,
    reason = "shared with the `nft` test binary, which uses all of it"
)]
mod probe;
#[path = "../nft/readback.rs"]
#[allow(
    dead_code,
    reason = "shared with the `nft` test binary, which uses all of it"
)]
mod readback;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use wardgate_compiler::{Decision, PolicyImage, Verdict, decide, nft};
use wardgate_tests::{
    enforcer::image,
    packet::tcp_flags,
    policygen::Probe,
    privilege,
    scalegen::{Mix, Policy, Scale, Service},
};

use crate::gateway::Gateway;
use crate::probe::{NftProbe as _, expected, tag};
use crate::readback::Maps;

/// Frames sent through the gateway per size.
const PROBES: usize = 1_500;

/// Intervals `(lo, hi, chain)` of one key prefix.
type Intervals = Vec<(u128, u128, String)>;

/// The read-back maps as lookup tables: what the ruleset decides for a
/// packet, up to the chain a map sends it to.
struct Loaded {
    /// `(lo, hi, zone)`, sorted, per family: source and destination.
    src: [Vec<(u128, u128, u32)>; 2],
    dst: [Vec<(u128, u128, u32)>; 2],
    /// `(pair, proto)` to `(lo, hi, chain)` for ports and ICMP types;
    /// `pair` to `(proto lo, proto hi, chain)` for other protocols.
    ports: HashMap<(u32, u32), Intervals>,
    icmp: HashMap<(u32, u32), Intervals>,
    other: HashMap<u32, Intervals>,
}

impl Loaded {
    fn new(maps: &Maps) -> Self {
        let zones = |name: &str| {
            let mut v: Vec<(u128, u128, u32)> = maps
                .get(name)
                .into_iter()
                .flatten()
                .map(|e| {
                    let zone = match &e.data {
                        nft::Data::Classid(c) => *c & 0xffff,
                        nft::Data::Goto(chain) => chain
                            .strip_prefix("from_z")
                            .and_then(|z| z.parse().ok())
                            .unwrap_or_else(|| panic!("{name}: goto {chain}")),
                    };
                    (e.key[0].lo, e.key[0].hi, zone)
                })
                .collect();
            v.sort_unstable();
            v
        };
        let table = |name: &str| {
            let mut t: HashMap<(u32, u32), Intervals> = HashMap::new();
            for e in maps.get(name).into_iter().flatten() {
                let nft::Data::Goto(chain) = &e.data else {
                    panic!("{name}: not a verdict map")
                };
                let pair = u32::try_from(e.key[0].lo).expect("classid");
                let proto = u32::try_from(e.key[1].lo).expect("protocol");
                assert_eq!(e.key[1].lo, e.key[1].hi, "{name}: one protocol per element");
                t.entry((pair, proto))
                    .or_default()
                    .push((e.key[2].lo, e.key[2].hi, chain.clone()));
            }
            t
        };
        let mut other: HashMap<u32, Intervals> = HashMap::new();
        for e in maps.get("policy_other").into_iter().flatten() {
            let nft::Data::Goto(chain) = &e.data else {
                panic!("policy_other: not a verdict map")
            };
            other
                .entry(u32::try_from(e.key[0].lo).expect("classid"))
                .or_default()
                .push((e.key[1].lo, e.key[1].hi, chain.clone()));
        }
        Self {
            src: [zones("src_zone_v4"), zones("src_zone_v6")],
            dst: [zones("dst_zone_v4"), zones("dst_zone_v6")],
            ports: table("policy_ports"),
            icmp: table("policy_icmp"),
            other,
        }
    }

    /// Source zone, destination zone and the chain the policy maps send the
    /// packet to (`None`: no element, the chain's tail decides).
    fn lookup(&self, pkt: &wardgate_compiler::Packet) -> (u32, u32, Option<&str>) {
        let zone = |ranges: &[(u128, u128, u32)], a: u128| {
            let i = ranges.partition_point(|r| r.0 <= a);
            i.checked_sub(1)
                .map(|i| ranges[i])
                .filter(|r| a <= r.1)
                .map_or(0, |r| r.2)
        };
        let (fam, s, d) = match (pkt.src, pkt.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (0, u32::from(s).into(), u32::from(d).into()),
            (IpAddr::V6(s), IpAddr::V6(d)) => (1, u128::from(s), u128::from(d)),
            _ => unreachable!("one family per packet"),
        };
        let (sz, dz) = (zone(&self.src[fam], s), zone(&self.dst[fam], d));
        let pair = (sz << 16) | dz;
        let proto = u32::from(pkt.proto);
        let port = u128::from(pkt.port);
        let chain = match pkt.proto {
            6 | 17 | 132 => find(self.ports.get(&(pair, proto)), port),
            1 | 58 => find(self.icmp.get(&(pair, proto)), port),
            _ => find(self.other.get(&pair), u128::from(proto)),
        };
        (sz, dz, chain)
    }
}

/// The chain of the interval holding `v`.
fn find(ivs: Option<&Intervals>, v: u128) -> Option<&str> {
    ivs.into_iter()
        .flatten()
        .find(|iv| iv.0 <= v && v <= iv.1)
        .map(|iv| iv.2.as_str())
}

/// Does the chain the maps chose say what the evaluator decided?
fn agrees(chain: Option<&str>, d: &Decision) -> bool {
    let Some(chain) = chain else {
        return d.rule.is_none();
    };
    if chain == "intra_zone" {
        return d.verdict == Verdict::Allow && d.rule.is_none();
    }
    let Some((kind, rule)) = chain.split_once('_') else {
        return false;
    };
    let verdict = match kind {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny,
        "audit" => Verdict::Audit,
        _ => return false,
    };
    d.verdict == verdict && rule.parse().ok() == d.rule
}

/// Every rule's triples: its zones' prefixes pairwise (same family), each
/// service at its bounds and one past them.
fn triples(policy: &Policy) -> Vec<wardgate_compiler::Packet> {
    let host = |(a, _): (IpAddr, u8), n: u8| match a {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) + u32::from(n)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) + u128::from(n)).into()),
    };
    let mut out = Vec::new();
    for r in &policy.rules {
        for &sp in &policy.prefixes(r.src) {
            for &dp in &policy.prefixes(r.dst) {
                if sp.0.is_ipv4() != dp.0.is_ipv4() {
                    continue;
                }
                let (src, dst) = (host(sp, 1), host(dp, 2));
                let mut push = |proto: u8, port: u16| {
                    out.push(wardgate_compiler::Packet {
                        src,
                        dst,
                        proto,
                        port,
                    });
                };
                for s in &r.services {
                    match *s {
                        Service::Ports(p, lo, hi) => {
                            for port in [lo.saturating_sub(1), lo, hi, hi.saturating_add(1)] {
                                push(p, port);
                            }
                        }
                        Service::Icmp(p, t) if (p == 1) == src.is_ipv4() => {
                            push(p, u16::from(t));
                        }
                        Service::Icmp(..) => {}
                        Service::Proto(p) => push(p, 0),
                    }
                }
            }
        }
    }
    out
}

fn check(zones: usize, rules: usize) {
    let name = format!("nftables_at_{zones}_zones");
    if !privilege::kernel_tests_can_run(&name) || !privilege::tool_available(&name, "nft") {
        return;
    }
    let t0 = Instant::now();
    let policy = Policy::generate(Scale {
        zones,
        rules,
        ipv6: true,
        mix: Mix::Rich,
        seed: 18,
    });
    let image: PolicyImage = image(&policy.ward());
    let maps = nft::maps(&image);
    let ruleset = nft::render(&image);
    let compiled = t0.elapsed();

    let gw = Gateway::new().expect("building the gateway topology");
    gw.load(&ruleset).expect("loading the ruleset");
    let read = readback::read(&gw.gateway).expect("reading the maps back");
    let loaded = t0.elapsed();

    // 1. Every element as written.
    let diffs = readback::differences(&readback::written(&maps), &read);
    assert!(
        diffs.is_empty(),
        "{zones} zones: the kernel holds other elements than written:\n{}",
        diffs.join("\n")
    );

    // 2. Every rule's triples, read-back maps against the evaluator.
    let loaded_maps = Loaded::new(&read);
    let triples = triples(&policy);
    let mut wrong = Vec::new();
    for pkt in &triples {
        let d = decide(&image, pkt);
        let (s, t, chain) = loaded_maps.lookup(pkt);
        if (s, t) != (d.src_zone, d.dst_zone) || !agrees(chain, &d) {
            wrong.push(format!(
                "{pkt:?}: maps say zones {s} -> {t}, {chain:?}; evaluator {d:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{zones} zones: {} of {} triples disagree, first:\n{}",
        wrong.len(),
        triples.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    let decided = t0.elapsed();

    // 3. Real frames through the gateway: a spread of the triples.
    let probes: Vec<Probe> = triples
        .iter()
        .filter(|p| matches!(p.proto, 6 | 17 | 58) || (p.src.is_ipv4() && p.proto != 132))
        .step_by((triples.len() / PROBES).max(1))
        .take(PROBES)
        .map(|p| Probe {
            src: p.src,
            dst: p.dst,
            proto: p.proto,
            port: p.port,
            flags: tcp_flags::SYN,
        })
        .collect();
    let mut arrived = vec![false; probes.len()];
    let mut sent = HashSet::new();
    let mut skipped = vec![false; probes.len()];
    for (batch, chunk) in probes.chunks(250).enumerate() {
        for (j, probe) in chunk.iter().enumerate() {
            let i = batch * 250 + j;
            let sport = 20_000 + u16::try_from(i).expect("fits");
            let conn = probe.conn(sport);
            if sent.contains(&probe::reverse(conn)) {
                skipped[i] = true;
                continue;
            }
            sent.insert(conn);
            gw.send(&probe.frame(u32::try_from(i).expect("fits"), sport, gw.gw_mac))
                .expect("sending a probe");
        }
        for frame in gw.received() {
            if let Some(i) = tag(&frame).and_then(|i| usize::try_from(i).ok())
                && probes.get(i).is_some_and(|p| p.is(&frame))
            {
                arrived[i] = true;
            }
        }
    }
    let mut disagree = Vec::new();
    for (i, probe) in probes.iter().enumerate().filter(|(i, _)| !skipped[*i]) {
        let pass = expected(&image, probe).is_none_or(|d| d.verdict != Verdict::Deny);
        if arrived[i] != pass {
            disagree.push(format!(
                "{probe:?}: evaluator {}, nftables {}",
                if pass { "passes" } else { "drops" },
                if arrived[i] { "passed" } else { "dropped" }
            ));
        }
    }
    assert!(
        disagree.is_empty(),
        "{zones} zones: {} of {} probes disagree, first:\n{}",
        disagree.len(),
        probes.len(),
        disagree[..disagree.len().min(10)].join("\n")
    );
    let passed = arrived.iter().filter(|a| **a).count();
    assert!(
        passed > 0 && passed < probes.len(),
        "probes both pass and drop"
    );
    println!(
        "nftables at {zones} zones, {rules} rules: {} elements read back identical, {} triples agree, \
         {} probes ({passed} passed) agree; compile {:.1?}, load and read back {:.1?}, decide {:.1?}, probes {:.1?}",
        maps.iter().map(|m| m.elements.len()).sum::<usize>(),
        triples.len(),
        probes.len(),
        compiled,
        loaded - compiled,
        decided - loaded,
        t0.elapsed() - decided,
    );
}

/// One test for all sizes: they would only compete for the two cores.
#[test]
fn nftables_loads_exactly_at_scale() {
    for (zones, rules) in [(100, 500), (1_000, 5_000), (10_000, 50_000)] {
        check(zones, rules);
    }
}
