//! The connection filters (`ebpf/xdp/src/ctfilter.rs`) in the real
//! program. The established filter counts every entry of the established
//! table by bucket, never below the truth (colliding keys, removals by the
//! program and by the agent); the unconfirmed horizon stays ahead of every
//! unconfirmed entry (new, closing, or left established by a zone's
//! limit). Packets whose bucket says no skip the table, and
//! `trust_filter` covers what an older program left before the program
//! relies on them.

use aya::maps::HashMap;
use wardgate_agent::{
    Program,
    conntrack::{self, Filter, Horizon},
    programmer,
};
use wardgate_common::{
    CONFIG_CT_FILTER, CT_ESTABLISHED, CT_HORIZON_LONG_NS, CT_HORIZON_SHORT_NS, CT_NEW, CtEntry,
    CtHorizon, CtKey, IPPROTO_TCP, RULE_NONE, maps,
};
use wardgate_tests::{
    enforcer::{Enforcer, image},
    packet::tcp_flags,
    privilege,
};

use crate::pair::{CLOSED, POLICY, tcp};

/// The key of the client's TCP connection from `sport`.
fn key(sport: u16) -> CtKey {
    crate::pair::key(IPPROTO_TCP, sport, 443)
}

fn establish(e: &mut Enforcer, sport: u16) {
    assert!(e.passes(&tcp(true, sport, tcp_flags::SYN)));
    assert!(e.passes(&tcp(false, sport, tcp_flags::SYN | tcp_flags::ACK)));
}

/// A reply that passes only as part of a tracked connection (b -> a is not allowed).
fn reply_passes(e: &mut Enforcer, sport: u16) -> bool {
    e.passes(&tcp(false, sport, tcp_flags::ACK))
}

/// A reply the connection cache never passes (a SYN changes state): it
/// always goes to the table, or past it.
fn uncached_reply_passes(e: &mut Enforcer, sport: u16) -> bool {
    e.passes(&tcp(false, sport, tcp_flags::SYN | tcp_flags::ACK))
}

/// Two client ports, above `from`, whose keys share a filter bucket.
fn colliding_ports(from: u16) -> (u16, u16) {
    let mut seen = std::collections::HashMap::new();
    for port in from..=u16::MAX {
        if let Some(&other) = seen.get(&key(port).filter_bucket()) {
            return (other, port);
        }
        seen.insert(key(port).filter_bucket(), port);
    }
    panic!("no two ports collide")
}

#[test]
fn the_filter_counts_established_entries_through_collisions_and_removals() {
    if !privilege::kernel_tests_can_run(
        "the_filter_counts_established_entries_through_collisions_and_removals",
    ) {
        return;
    }
    let mut e = Enforcer::new(POLICY);
    let filter = Filter::of(e.program.ebpf()).unwrap();
    let count = |port: u16| filter.count(key(port).filter_bucket());
    let (p, q) = colliding_ports(20000);
    for port in [p, q, 40000] {
        establish(&mut e, port);
    }
    assert_eq!(count(p), 2, "two established entries in one bucket");
    assert_eq!(count(40000), 1);
    // An unanswered connection is not in the established table: not counted.
    assert!(e.passes(&tcp(true, 40001, tcp_flags::SYN)));
    assert_eq!(count(40001), 0);

    // Removed by the agent: the bucket keeps the other entry, whose reply passes.
    e.forget(&key(p));
    assert_eq!(count(q), 1);
    assert!(reply_passes(&mut e, q));
    assert!(
        !reply_passes(&mut e, p),
        "the forgotten one is decided again"
    );

    // Removed by the program (a new policy forbids it): the bucket empties.
    e.reload(CLOSED);
    assert!(!e.passes(&tcp(true, 40000, tcp_flags::ACK)));
    assert_eq!(count(40000), 0);
    assert!(!e.passes(&tcp(true, q, tcp_flags::ACK)));
    assert_eq!(count(q), 0);
}

#[test]
fn entries_an_older_program_left_are_counted_before_the_filter_is_trusted() {
    if !privilege::kernel_tests_can_run(
        "entries_an_older_program_left_are_counted_before_the_filter_is_trusted",
    ) {
        return;
    }
    let mut program = Program::load().unwrap();
    let image = image(POLICY);
    programmer::load(program.ebpf_mut(), &image, 0).unwrap();
    // A connection tracked by a program that did not count it (as an older
    // version's, adopted from the pinned table by an upgrade).
    let k = key(30000);
    let entry = CtEntry {
        last_seen_ns: wardgate_agent::eventlog::Clock::monotonic_now(),
        generation: programmer::config(program.ebpf_mut()).unwrap().generation,
        state: CT_ESTABLISHED,
        src_zone: 1,
        dst_zone: 2,
        rule: RULE_NONE,
        ..CtEntry::default()
    };
    let mut table: HashMap<_, CtKey, CtEntry> =
        HashMap::try_from(program.ebpf_mut().map_mut(maps::CONNTRACK).unwrap()).unwrap();
    table.insert(k, entry, 0).unwrap();
    let mut e = Enforcer::from_program(program, image);
    assert!(
        uncached_reply_passes(&mut e, 30000),
        "untrusted: the table is looked up"
    );

    // Trusting the filter as it is would lose the connection: the reply
    // finds its bucket empty and skips the table.
    programmer::update_config(e.program.ebpf_mut(), |c| c.flags |= CONFIG_CT_FILTER).unwrap();
    assert!(!uncached_reply_passes(&mut e, 30000));

    programmer::update_config(e.program.ebpf_mut(), |c| c.flags &= !CONFIG_CT_FILTER).unwrap();
    assert_eq!(
        conntrack::trust_filter(e.program.ebpf_mut()).unwrap(),
        Some(1),
        "counts the entry it found"
    );
    assert!(uncached_reply_passes(&mut e, 30000));
    assert_eq!(
        conntrack::trust_filter(e.program.ebpf_mut()).unwrap(),
        None,
        "once"
    );
    let flags = programmer::config(e.program.ebpf_mut()).unwrap().flags;
    programmer::load(e.program.ebpf_mut(), &e.image.clone(), 0).unwrap();
    assert_eq!(
        programmer::config(e.program.ebpf_mut()).unwrap().flags & CONFIG_CT_FILTER,
        flags & CONFIG_CT_FILTER,
        "a policy load keeps the flag"
    );
}

fn now() -> u64 {
    wardgate_agent::eventlog::Clock::monotonic_now()
}

#[test]
fn unconfirmed_connections_are_looked_up_until_their_horizon() {
    if !privilege::kernel_tests_can_run("unconfirmed_connections_are_looked_up_until_their_horizon")
    {
        return;
    }
    let mut e = Enforcer::new(POLICY);
    let horizon = Horizon::of(e.program.ebpf()).unwrap();
    let bucket = key(31000).horizon_bucket();
    assert_eq!(horizon.get(bucket), CtHorizon::default(), "a fresh start");
    let before = now();
    assert!(e.passes(&tcp(true, 31000, tcp_flags::SYN)));
    let h = horizon.get(bucket);
    assert!(
        h.short >= before + CT_HORIZON_SHORT_NS - 1_000_000_000 && h.long == 0,
        "a new entry moves the short horizon: {h:?}"
    );
    assert!(
        uncached_reply_passes(&mut e, 31000),
        "found: it is promoted"
    );
    assert_eq!(count_established(&mut e, 31000), 1);

    // A bucket past its horizon is not looked up: a reply to a live
    // unconfirmed connection whose horizon is (made) past drops.
    assert!(e.passes(&tcp(true, 31001, tcp_flags::SYN)));
    let bucket = key(31001).horizon_bucket();
    horizon.set(bucket, CtHorizon::default());
    assert!(!uncached_reply_passes(&mut e, 31001));
    // The SYN's retransmission moves it again, and the answer passes.
    assert!(e.passes(&tcp(true, 31001, tcp_flags::SYN)));
    assert!(horizon.get(bucket).short > now());
    assert!(uncached_reply_passes(&mut e, 31001));
}

fn count_established(e: &mut Enforcer, sport: u16) -> u64 {
    Filter::of(e.program.ebpf())
        .unwrap()
        .count(key(sport).filter_bucket())
}

#[test]
fn a_connection_left_unconfirmed_by_its_zones_limit_keeps_a_long_horizon() {
    if !privilege::kernel_tests_can_run(
        "a_connection_left_unconfirmed_by_its_zones_limit_keeps_a_long_horizon",
    ) {
        return;
    }
    let mut e = Enforcer::new(
        r#"
zone a { networks 10.1.0.0/16 conntrack-limit 1 }
zone b { networks 10.2.0.0/16 }

allow a -> b : tcp/443
"#,
    );
    let horizon = Horizon::of(e.program.ebpf()).unwrap();
    // Both admitted (nothing established yet); the second answer finds the
    // zone at its limit and leaves its connection unconfirmed, established.
    for port in [32000, 32001] {
        assert!(e.passes(&tcp(true, port, tcp_flags::SYN)));
    }
    let before = now();
    for port in [32000, 32001] {
        assert!(e.passes(&tcp(false, port, tcp_flags::SYN | tcp_flags::ACK)));
    }
    assert_eq!(count_established(&mut e, 32000), 1);
    assert_eq!(count_established(&mut e, 32001), 0);
    let h = horizon.get(key(32001).horizon_bucket());
    assert!(
        h.long >= before + CT_HORIZON_LONG_NS - 1_000_000_000,
        "established in the unconfirmed table: the longest timeout ahead ({h:?})"
    );
    assert_eq!(
        horizon.get(key(32000).horizon_bucket()).long,
        0,
        "a promoted connection leaves no long horizon"
    );
    assert!(uncached_reply_passes(&mut e, 32001));
}

#[test]
fn unconfirmed_entries_an_older_program_left_are_covered_before_the_filter_is_trusted() {
    if !privilege::kernel_tests_can_run(
        "unconfirmed_entries_an_older_program_left_are_covered_before_the_filter_is_trusted",
    ) {
        return;
    }
    let mut program = Program::load().unwrap();
    let image = image(POLICY);
    programmer::load(program.ebpf_mut(), &image, 0).unwrap();
    let k = key(33000);
    let entry = CtEntry {
        last_seen_ns: now(),
        generation: programmer::config(program.ebpf_mut()).unwrap().generation,
        state: CT_NEW,
        src_zone: 1,
        dst_zone: 2,
        rule: 0,
        ..CtEntry::default()
    };
    let mut table: HashMap<_, CtKey, CtEntry> =
        HashMap::try_from(program.ebpf_mut().map_mut(maps::CT_UNCONFIRMED).unwrap()).unwrap();
    table.insert(k, entry, 0).unwrap();
    let mut e = Enforcer::from_program(program, image);
    programmer::update_config(e.program.ebpf_mut(), |c| c.flags |= CONFIG_CT_FILTER).unwrap();
    assert!(
        !uncached_reply_passes(&mut e, 33000),
        "trusted as it is, the horizon hides the entry"
    );
    programmer::update_config(e.program.ebpf_mut(), |c| c.flags &= !CONFIG_CT_FILTER).unwrap();
    conntrack::trust_filter(e.program.ebpf_mut()).unwrap();
    assert!(
        Horizon::of(e.program.ebpf())
            .unwrap()
            .get(k.horizon_bucket())
            .long
            > now() + CT_HORIZON_LONG_NS / 2
    );
    assert!(uncached_reply_passes(&mut e, 33000));
}
