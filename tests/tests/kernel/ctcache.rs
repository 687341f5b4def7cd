//! The per-CPU connection cache (`ebpf/xdp/src/ctcache.rs`) in the real
//! program under `BPF_PROG_TEST_RUN`: packets of established connections
//! pass from it without a table lookup, and it never vouches for a
//! connection the table no longer holds as it did (forgotten, decided again
//! by a new policy, closing, or not refreshed for a second).
//!
//! The cache is per CPU and `BPF_PROG_TEST_RUN` runs on the calling CPU, so
//! each test pins its thread first.

use std::{net::IpAddr, time::Duration};

use wardgate_agent::conntrack;
use wardgate_common::{
    CT_CACHE_REFRESH_NS, CT_CLOSING, CT_ESTABLISHED, CtEntry, CtKey, IPPROTO_TCP, IPPROTO_UDP,
    counter,
};
use wardgate_tests::{
    enforcer::Enforcer,
    packet::{self, L4, tcp_flags},
    privilege, testrun,
};

use crate::pair::{CLIENT, CLOSED, POLICY, SERVER, key, tcp};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ack(from_client: bool, sport: u16) -> Vec<u8> {
    tcp(from_client, sport, tcp_flags::ACK)
}

/// Pinned to this CPU, with a TCP connection from `sport` established (SYN,
/// SYN-ACK) and its first ACK passed through the table (which fills the cache).
fn established(test: &str, sport: u16) -> Option<Enforcer> {
    if !privilege::kernel_tests_can_run(test) {
        return None;
    }
    testrun::stay_on_this_cpu();
    let mut e = Enforcer::new(POLICY);
    assert!(e.passes(&tcp(true, sport, tcp_flags::SYN)));
    assert!(e.passes(&tcp(false, sport, tcp_flags::SYN | tcp_flags::ACK)));
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        assert!(e.passes(&ack(true, sport)))
    });
    assert_eq!(
        hits, 0,
        "the first packet after the handshake goes through the table"
    );
    Some(e)
}

fn entry(e: &mut Enforcer, key: &CtKey) -> Option<CtEntry> {
    conntrack::entries(e.program.ebpf_mut())
        .unwrap()
        .into_iter()
        .find_map(|(k, v)| (k == *key).then_some(v))
}

#[test]
fn established_packets_pass_from_the_cache_until_the_connection_is_forgotten() {
    let Some(mut e) = established(
        "established_packets_pass_from_the_cache_until_the_connection_is_forgotten",
        40000,
    ) else {
        return;
    };
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        for _ in 0..10 {
            assert!(e.passes(&ack(true, 40000)));
        }
    });
    assert_eq!(hits, 10, "every later packet of the client's direction");
    // The reply direction has a slot of its own: its first packet fills it.
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        for _ in 0..3 {
            assert!(e.passes(&ack(false, 40000)));
        }
    });
    assert_eq!(hits, 2);
    assert_eq!(
        entry(&mut e, &key(IPPROTO_TCP, 40000, 443)).map(|v| v.state),
        Some(CT_ESTABLISHED)
    );

    e.forget(&key(IPPROTO_TCP, 40000, 443));
    // b -> a is not allowed: a reply is a reply only while the table says so.
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        assert!(
            !e.passes(&ack(false, 40000)),
            "a forgotten connection's reply drops"
        );
    });
    assert_eq!(hits, 0);
}

#[test]
fn a_new_policy_decides_cached_connections_again() {
    let Some(mut e) = established("a_new_policy_decides_cached_connections_again", 40001) else {
        return;
    };
    assert_eq!(
        e.delta(counter::CT_CACHE_HIT, |e| assert!(
            e.passes(&ack(true, 40001))
        )),
        1
    );
    e.reload(CLOSED);
    let redecided = e.delta(counter::CT_REDECIDED, |e| {
        assert!(!e.passes(&ack(true, 40001)), "the new policy forbids it");
    });
    assert_eq!(redecided, 1);
    assert_eq!(entry(&mut e, &key(IPPROTO_TCP, 40001, 443)), None);
}

#[test]
fn packets_that_change_a_connections_state_go_through_the_table() {
    let Some(mut e) = established(
        "packets_that_change_a_connections_state_go_through_the_table",
        40002,
    ) else {
        return;
    };
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        assert!(e.passes(&tcp(true, 40002, tcp_flags::FIN | tcp_flags::ACK)));
    });
    assert_eq!(hits, 0);
    assert_eq!(
        entry(&mut e, &key(IPPROTO_TCP, 40002, 443)).map(|v| v.state),
        Some(CT_CLOSING)
    );
    // A reply through the table now finds it closing and leaves its slot empty.
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        for _ in 0..3 {
            assert!(e.passes(&ack(false, 40002)));
        }
    });
    assert_eq!(hits, 0, "a closing connection is not cached");
}

#[test]
fn a_slot_vouches_for_one_second_then_the_table_sees_the_packet() {
    let Some(mut e) = established(
        "a_slot_vouches_for_one_second_then_the_table_sees_the_packet",
        40003,
    ) else {
        return;
    };
    let k = key(IPPROTO_TCP, 40003, 443);
    let filled = entry(&mut e, &k).expect("tracked").last_seen_ns;
    assert_eq!(
        e.delta(counter::CT_CACHE_HIT, |e| assert!(
            e.passes(&ack(true, 40003))
        )),
        1
    );
    assert_eq!(
        entry(&mut e, &k).unwrap().last_seen_ns,
        filled,
        "a cache hit leaves the table alone"
    );
    std::thread::sleep(Duration::from_nanos(CT_CACHE_REFRESH_NS) + Duration::from_millis(100));
    assert_eq!(
        e.delta(counter::CT_CACHE_HIT, |e| assert!(
            e.passes(&ack(true, 40003))
        )),
        0,
        "an old slot sends the packet to the table"
    );
    let seen = entry(&mut e, &k).unwrap().last_seen_ns;
    assert!(
        seen >= filled + CT_CACHE_REFRESH_NS,
        "the table's time moved: {filled} -> {seen}"
    );
    assert_eq!(
        e.delta(counter::CT_CACHE_HIT, |e| assert!(
            e.passes(&ack(true, 40003))
        )),
        1,
        "and the slot is refilled"
    );
}

#[test]
fn udp_flows_are_cached_once_answered() {
    if !privilege::kernel_tests_can_run("udp_flows_are_cached_once_answered") {
        return;
    }
    testrun::stay_on_this_cpu();
    let mut e = Enforcer::new(POLICY);
    let query = packet::ip(
        ip(CLIENT),
        ip(SERVER),
        L4::Udp {
            sport: 5353,
            dport: 53,
        },
    );
    let answer = packet::ip(
        ip(SERVER),
        ip(CLIENT),
        L4::Udp {
            sport: 53,
            dport: 5353,
        },
    );
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        assert!(e.passes(&query));
        assert!(
            e.passes(&query),
            "unanswered: still unconfirmed, not cached"
        );
    });
    assert_eq!(hits, 0);
    assert!(e.passes(&answer));
    assert_eq!(
        entry(&mut e, &key(IPPROTO_UDP, 5353, 53)).map(|v| v.state),
        Some(CT_ESTABLISHED)
    );
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        for _ in 0..3 {
            assert!(e.passes(&query));
        }
    });
    assert_eq!(
        hits, 2,
        "the first fills the slot, the next two pass from it"
    );
}
