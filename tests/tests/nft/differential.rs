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

use std::collections::BTreeMap;

use proptest::{prelude::*, test_runner::TestCaseError};
use wardgate_compiler::{Verdict, nft};
use wardgate_tests::{
    enforcer::image,
    policygen::{probes, spec},
    privilege,
};

use crate::gateway::Gateway;
use crate::probe::{Conn, NftProbe as _, counter_of, expected, reverse, tag};

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
