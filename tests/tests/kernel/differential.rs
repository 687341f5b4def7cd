//! The differential test: random policies and random packets, the kernel
//! program against the compiler's reference evaluator, zero disagreements.
//!
//! Each case is a policy and a batch of packets from `policygen` (zones over
//! a pool of nested IPv4/IPv6 prefixes, isolated and monitor zones, allow and
//! deny rules over every selector and service form, intra-zone and `world ->
//! world` rules; packets aimed at the policy's own addresses and port
//! boundaries, between `world` addresses, and with IPv4-mapped IPv6
//! addresses). Every packet is decided alone: the connection it may have
//! started is forgotten after it. Every other case runs with the fast path
//! on, which must not change a verdict. The verdict (pass, audit, drop), for
//! drops and audits the deciding rule (from the event), and the mapped-address
//! drop reason must match the evaluator's; the test also counts that intra-zone
//! denies, `world -> world` traffic, denies in monitor zones, mapped
//! addresses and IPv4 blocks with a directory were all met (and counts the
//! probes through a port directory).

use std::net::IpAddr;

use proptest::{prelude::*, test_runner::TestCaseError};
use wardgate_agent::{programmer, quarantine::key};
use wardgate_common::{
    CONFIG_FAST_PATH, CtKey, EVENT_AUDIT, PROTO_ANY, RULE_NONE, ZONE_MONITOR, counter,
};
use wardgate_compiler::{Verdict, decide, portdir::PortDirs, v4table::V4Table};
use wardgate_tests::{
    enforcer::{Enforcer, image},
    packet::{self, L4},
    policygen::{Probe, probes, spec},
    privilege,
};

/// How the kernel test builds and forgets a probe.
trait KernelProbe {
    fn ct_key(&self) -> CtKey;
    fn frame(&self) -> Vec<u8>;
}

impl KernelProbe for Probe {
    /// The connection key the program tracks this probe under, if it passes. the program tracks this probe under, if it passes.
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

/// The evaluator's verdict, deciding rule, and whether the packet is
/// malformed (an IPv4-mapped IPv6 address).
fn expected(e: &Enforcer, p: &Probe) -> (Verdict, u32, bool) {
    let pkt = wardgate_compiler::Packet {
        src: p.src,
        dst: p.dst,
        proto: p.proto,
        port: p.port,
    };
    let link_control = u8::try_from(p.port).is_ok_and(wardgate_common::is_link_control_icmpv6);
    if p.proto == 58 && link_control && !pkt.is_malformed() {
        // Neighbour discovery passes whatever the policy says (docs/language.md, semantics 6).
        return (Verdict::Allow, RULE_NONE, false);
    }
    let d = decide(&e.image, &pkt);
    (d.verdict, d.rule.unwrap_or(RULE_NONE), d.malformed)
}

/// Runs one probe; returns the kernel's verdict, for drops and audits the
/// rule in the event, and whether it dropped as a mapped address.
fn observed(e: &mut Enforcer, p: &Probe) -> (Verdict, Option<u32>, bool) {
    let audits = e.counter(counter::AUDIT);
    let mapped = e.counter(counter::DROP_MAPPED);
    let passed = e.passes(&p.frame());
    let events = e.events();
    e.forget(&p.ct_key());
    let mapped = e.counter(counter::DROP_MAPPED) > mapped;
    let rule = events.first().map(|ev| ev.rule);
    let verdict = match (passed, e.counter(counter::AUDIT) > audits) {
        (false, _) => Verdict::Deny,
        (true, true) => {
            assert!(events.iter().all(|ev| ev.verdict == EVENT_AUDIT));
            Verdict::Audit
        }
        (true, false) => Verdict::Allow,
    };
    (verdict, rule, mapped)
}

/// How often the differential met each case the language singles out, so
/// that a generator change cannot silently stop covering one.
/// The directories the agent lowers a case's image with.
struct Dirs {
    v4: V4Table,
    ports: PortDirs,
}

#[derive(Debug, Default)]
struct Coverage {
    intra_zone_deny: usize,
    world_to_world: usize,
    monitor_deny: usize,
    mapped: usize,
    /// Probes from or to an IPv4 block with a directory (`v4table`).
    directory: usize,
    /// Probes decided by a span with a port directory (`portdir`): counted,
    /// not required (random policies seldom give one pair more than 16
    /// intervals; `directories.rs` covers them on a fixed policy).
    port_directory: usize,
}

impl Coverage {
    fn note(
        &mut self,
        p: &Probe,
        verdict: Verdict,
        rule: u32,
        malformed: bool,
        image: &wardgate_compiler::PolicyImage,
        Dirs { v4, ports }: &Dirs,
    ) {
        let directory = |a: IpAddr| match a {
            IpAddr::V4(a) => v4.blocks[(u32::from(a) >> 16) as usize].end == 0,
            IpAddr::V6(_) => false,
        };
        if directory(p.src) || directory(p.dst) {
            self.directory += 1;
        }
        if malformed {
            self.mapped += 1;
            return;
        }
        let d = decide(
            image,
            &wardgate_compiler::Packet {
                src: p.src,
                dst: p.dst,
                proto: p.proto,
                port: p.port,
            },
        );
        let spans = image.pairs().iter().filter(|(k, _)| {
            k.src_zone == d.src_zone
                && k.dst_zone == d.dst_zone
                && (k.proto == u32::from(p.proto) || k.proto == PROTO_ANY)
        });
        if spans
            .into_iter()
            .any(|(_, s)| ports.marks.iter().any(|m| m.0 == s.first))
        {
            self.port_directory += 1;
        }
        let explicit_deny = verdict == Verdict::Deny && rule != RULE_NONE;
        if explicit_deny && d.src_zone == d.dst_zone {
            self.intra_zone_deny += 1;
        }
        if d.src_zone == 0 && d.dst_zone == 0 {
            self.world_to_world += 1;
        }
        let monitor = |z: u32| image.zones()[z as usize].flags & ZONE_MONITOR != 0;
        if explicit_deny && (monitor(d.src_zone) || monitor(d.dst_zone)) {
            self.monitor_deny += 1;
        }
    }
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
    let seen = std::cell::RefCell::new(Coverage::default());
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
        let dirs = Dirs {
            v4: V4Table::build(&e.image),
            ports: PortDirs::build(&e.image),
        };
        for probe in &probes {
            let (want, want_rule, want_mapped) = expected(e, probe);
            let (got, got_rule, got_mapped) = observed(e, probe);
            // A mapped address drops before the policy: no event, no rule.
            let rule_ok =
                got == Verdict::Allow || got_mapped || got_rule == Some(want_rule);
            if got != want || !rule_ok || got_mapped != want_mapped {
                return Err(TestCaseError::fail(format!(
                    "disagreement on {probe:?}\n  evaluator: {want:?} (rule {want_rule}, malformed {want_mapped})\n  kernel:    {got:?} (rule {got_rule:?}, malformed {got_mapped})\npolicy:\n{source}"
                )));
            }
            seen.borrow_mut()
                .note(probe, want, want_rule, want_mapped, &e.image, &dirs);
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
    let seen = seen.into_inner();
    println!("differential: {checked} packets over {CASES} policies, zero disagreements; {seen:?}");
    assert!(
        seen.intra_zone_deny > 0
            && seen.world_to_world > 0
            && seen.monitor_deny > 0
            && seen.mapped > 0
            && seen.directory > 0,
        "a case the language singles out was never probed: {seen:?}"
    );
    assert!(checked >= 100_000, "only {checked} packets checked");
}
