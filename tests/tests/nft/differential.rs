//! The nftables differential test: random policies and random packets, the
//! compiler's reference evaluator against the nftables ruleset compiled from
//! the same policy, in a real gateway namespace, zero disagreements.
//!
//! The policy generator is the kernel differential test's
//! (`tests/tests/kernel/differential.rs`): zones over a pool of nested
//! IPv4/IPv6 prefixes, isolated and monitor zones, allow and deny rules over
//! every selector and service form. For each policy, a batch of crafted
//! frames aimed at the policy's own addresses and port boundaries is injected
//! at the sender; whether each frame reached the receiver must match the
//! evaluator's verdict (allow and audit pass, deny drops), and the table's
//! per-rule counters must match the deciding rules the evaluator names.
//! The receiver never answers, so no probe is ever a reply: each is decided
//! by the policy alone.

use std::{collections::BTreeMap, net::IpAddr};

use etherparse::PacketBuilder;
use proptest::{prelude::*, test_runner::TestCaseError};
use wardgate_compiler::{Decision, PolicyImage, Verdict, decide, nft};
use wardgate_tests::{
    enforcer::image,
    packet::{self, tcp_flags},
    policygen::{Probe, probes, spec},
    privilege,
};

use crate::gateway::Gateway;

/// `(src, dst, proto, sport or id, dport or id)`.
type Conn = (IpAddr, IpAddr, u8, u16, u16);

fn reverse(c: Conn) -> Conn {
    (c.1, c.0, c.2, c.4, c.3)
}

/// Marks a probe's payload; the probe's index follows.
const TAG: &[u8; 4] = b"WGNF";

/// How the nftables test sends and recognises a probe.
trait NftProbe {
    fn conn(&self, sport: u16) -> Conn;
    fn frame(&self, index: u32, sport: u16, gw_mac: [u8; 6]) -> Vec<u8>;
    fn is(&self, frame: &[u8]) -> bool;
}

impl NftProbe for Probe {
    /// The connection as conntrack keys it, with the source port (or echo
    /// id) the probe is sent with.
    fn conn(&self, sport: u16) -> Conn {
        match self.proto {
            6 | 17 | 132 => (self.src, self.dst, self.proto, sport, self.port),
            1 | 58 => (self.src, self.dst, self.proto, sport, sport),
            _ => (self.src, self.dst, self.proto, 0, 0),
        }
    }

    /// The frame, from the sender to the gateway, carrying `TAG` and `index`.
    fn frame(&self, index: u32, sport: u16, gw_mac: [u8; 6]) -> Vec<u8> {
        let mut payload = TAG.to_vec();
        payload.extend_from_slice(&index.to_be_bytes());
        let eth = PacketBuilder::ethernet2(packet::SRC_MAC, gw_mac);
        let mut out = Vec::new();
        let ip = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => unreachable!("probes never mix families"),
        };
        match self.proto {
            6 => {
                let mut b = ip.tcp(sport, self.port, 1000, 64240);
                if self.flags & tcp_flags::SYN != 0 {
                    b = b.syn();
                }
                if self.flags & tcp_flags::ACK != 0 {
                    b = b.ack(1);
                }
                if self.flags & tcp_flags::RST != 0 {
                    b = b.rst();
                }
                b.write(&mut out, &payload)
            }
            17 => ip.udp(sport, self.port).write(&mut out, &payload),
            1 | 58 => {
                let rest = sport.to_be_bytes();
                let rest = [rest[0], rest[1], 0, 1];
                #[expect(clippy::cast_possible_truncation, reason = "ICMP types are < 256")]
                let ty = self.port as u8;
                if self.src.is_ipv4() {
                    ip.icmpv4_raw(ty, 0, rest).write(&mut out, &payload)
                } else {
                    ip.icmpv6_raw(ty, 0, rest).write(&mut out, &payload)
                }
            }
            p => {
                let (IpAddr::V4(s), IpAddr::V4(d)) = (self.src, self.dst) else {
                    unreachable!("probes of other protocols are IPv4")
                };
                let mut l4 = Vec::new();
                if p == 132 {
                    // SCTP common header: ports, verification tag, checksum.
                    l4.extend_from_slice(&sport.to_be_bytes());
                    l4.extend_from_slice(&self.port.to_be_bytes());
                    l4.extend_from_slice(&[0; 8]);
                } else {
                    l4.extend_from_slice(&[0; 8]);
                }
                l4.extend_from_slice(&payload);
                let mut f = packet::ipv4_proto(s.octets(), d.octets(), p, &l4);
                f[..6].copy_from_slice(&gw_mac);
                return f;
            }
        }
        .expect("writing a probe");
        out
    }

    /// Is `frame` this probe, forwarded (same addresses, same protocol)?
    /// Only the IP header is parsed: some probes are deliberately short for
    /// their ICMP type.
    fn is(&self, frame: &[u8]) -> bool {
        let ip = frame.get(packet::IP_OFFSET..).unwrap_or_default();
        if let Ok(h) = etherparse::Ipv4HeaderSlice::from_slice(ip) {
            IpAddr::from(h.source()) == self.src
                && IpAddr::from(h.destination()) == self.dst
                && h.protocol().0 == self.proto
        } else if let Ok(h) = etherparse::Ipv6HeaderSlice::from_slice(ip) {
            IpAddr::from(h.source()) == self.src && IpAddr::from(h.destination()) == self.dst
        } else {
            false
        }
    }
}

/// The probe index a forwarded frame carries, if any.
fn tag(frame: &[u8]) -> Option<u32> {
    let at = frame.windows(4).position(|w| w == TAG)?;
    let n = frame.get(at + 4..at + 8)?;
    Some(u32::from_be_bytes(n.try_into().ok()?))
}

fn expected(image: &PolicyImage, p: &Probe) -> Option<Decision> {
    let pkt = wardgate_compiler::Packet {
        src: p.src,
        dst: p.dst,
        proto: p.proto,
        port: p.port,
    };
    let link_control = u8::try_from(p.port).is_ok_and(wardgate_common::is_link_control_icmpv6);
    if p.proto == 58 && link_control && !pkt.is_malformed() {
        return None;
    }
    Some(decide(image, &pkt))
}

/// The table counter a decision is counted in.
fn counter_of(d: &Decision) -> String {
    match (d.verdict, d.rule) {
        (_, Some(r)) => format!("rule_{r}"),
        (Verdict::Allow, None) => "intra_zone".to_owned(),
        (Verdict::Deny, None) => "default_deny".to_owned(),
        (Verdict::Audit, None) => "default_audit".to_owned(),
    }
}

const CASES: u32 = 48;
const PROBES_PER_CASE: usize = 250;

#[test]
fn nftables_agrees_with_the_reference_evaluator() {
    let name = "nftables_agrees_with_the_reference_evaluator";
    if !privilege::kernel_tests_can_run(name) || !privilege::tool_available(name, "nft") {
        return;
    }
    let started = std::time::Instant::now();
    let gw = Gateway::new().expect("building the gateway topology");
    let checked = std::cell::Cell::new(0usize);
    // Every connection sent so far, and a sequence number for source ports
    // and echo ids: conntrack entries outlive a case, and a probe that is the
    // reverse of an earlier one would be a reply (`ct state established`),
    // which is not what this test asks about.
    let sent = std::cell::RefCell::new(std::collections::HashSet::<Conn>::new());
    let seq = std::cell::Cell::new(0u32);
    let strategy = spec().prop_flat_map(|s| {
        let ports = s.ports();
        (Just(s), probes(ports, PROBES_PER_CASE))
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |(spec, probes)| {
        let source = spec.source();
        let image = image(&source);
        let ruleset = nft::render(&image);
        gw.load(&ruleset)
            .map_err(|e| TestCaseError::fail(format!("{e:#}\npolicy:\n{source}")))?;
        let fail = |msg: String| {
            TestCaseError::fail(format!("{msg}\npolicy:\n{source}\nruleset:\n{ruleset}"))
        };
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut arrived = vec![false; probes.len()];
        let mut skipped = vec![false; probes.len()];
        let mut sent = sent.borrow_mut();
        for (i, probe) in probes.iter().enumerate() {
            let sport = 20_000 + u16::try_from(seq.get() % 40_000).expect("fits");
            seq.set(seq.get() + 1);
            let conn = probe.conn(sport);
            if sent.contains(&reverse(conn)) {
                skipped[i] = true;
                continue;
            }
            sent.insert(conn);
            gw.send(&probe.frame(u32::try_from(i).expect("fits"), sport, gw.gw_mac))
                .map_err(|e| fail(format!("{e:#}")))?;
            // Mapped addresses: the kernel's IPv6 input drops a mapped
            // source before any hook, so only the verdict is compared.
            if let Some(d) = expected(&image, probe).filter(|d| !d.malformed) {
                *counts.entry(counter_of(&d)).or_default() += 1;
            }
        }
        for frame in gw.received() {
            if let Some(i) = tag(&frame).and_then(|i| usize::try_from(i).ok())
                && probes.get(i).is_some_and(|p| p.is(&frame))
            {
                arrived[i] = true;
            }
        }
        for (i, probe) in probes.iter().enumerate().filter(|(i, _)| !skipped[*i]) {
            let want = expected(&image, probe);
            let pass = want.is_none_or(|d| d.verdict != Verdict::Deny);
            if arrived[i] != pass {
                return Err(fail(format!(
                    "disagreement on {probe:?}\n  evaluator: {}\n  nftables:  {}",
                    want.map_or_else(
                        || "pass (neighbour discovery)".to_owned(),
                        |d| format!("{:?} (rule {:?})", d.verdict, d.rule)
                    ),
                    if arrived[i] { "passed" } else { "dropped" },
                )));
            }
            checked.set(checked.get() + 1);
        }
        let got = gw.counters().map_err(|e| fail(format!("{e:#}")))?;
        let got: BTreeMap<String, u64> = got
            .into_iter()
            .filter(|(name, n)| *n > 0 && name != "drop_mapped")
            .collect();
        if got != counts {
            return Err(fail(format!(
                "per-rule counters disagree\n  evaluator: {counts:?}\n  nftables:  {got:?}"
            )));
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    let checked = checked.get();
    println!(
        "nftables differential: {checked} packets over {CASES} policies in {:.1?}, zero disagreements",
        started.elapsed()
    );
    assert!(checked >= 10_000, "only {checked} packets checked");
}
