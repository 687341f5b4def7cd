//! The differential test: random policies and random packets, the kernel
//! program against the compiler's reference evaluator, zero disagreements.
//!
//! Each case is a policy and a batch of packets from `policygen` (zones over
//! a pool of nested IPv4/IPv6 prefixes, isolated and monitor zones, allow and
//! deny rules over every selector and service form; packets aimed at the
//! policy's own addresses and port boundaries). Every packet is decided
//! alone: the connection it may have started is forgotten after it. Every
//! other case runs with the fast path on, which must not change a verdict. The verdict (pass, audit, drop) and, for drops and
//! audits, the deciding rule (from the event) must match the evaluator's.

use std::net::IpAddr;

use proptest::{prelude::*, test_runner::TestCaseError};
use wardgate_agent::{programmer, quarantine::key};
use wardgate_common::{CONFIG_FAST_PATH, CtKey, EVENT_AUDIT, RULE_NONE, counter};
use wardgate_compiler::{Verdict, decide};
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
