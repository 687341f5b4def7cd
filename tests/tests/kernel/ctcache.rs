//! The per-CPU connection cache (`ebpf/xdp/src/ctcache.rs`) in the real
//! program under `BPF_PROG_TEST_RUN`: packets of established connections,
//! and of unanswered ones in their first direction, pass from it without a
//! table lookup, and it never vouches for a connection the table no longer
//! holds as it did (forgotten, decided again by a new policy, closing, or
//! not refreshed for a second; an evicted unanswered one for at most that
//! second).
//!
//! The cache is per CPU and `BPF_PROG_TEST_RUN` runs on the calling CPU, so
//! each test pins its thread first.

use std::{net::IpAddr, time::Duration};

use aya::maps::HashMap;
use wardgate_agent::conntrack;
use wardgate_common::{
    CT_CACHE_REFRESH_NS, CT_CLOSING, CT_ESTABLISHED, CT_NEW, CtEntry, CtKey, IPPROTO_TCP,
    IPPROTO_UDP, counter, ct_cache_set, maps, v4_mapped,
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

/// The client's query to the server's port 53 and the server's answer.
fn udp(from_client: bool) -> Vec<u8> {
    let (src, dst, sport, dport) = if from_client {
        (CLIENT, SERVER, 5353, 53)
    } else {
        (SERVER, CLIENT, 53, 5353)
    };
    packet::ip(ip(src), ip(dst), L4::Udp { sport, dport })
}

/// Pinned to this CPU, with the client's UDP flow started (its first
/// packet decided, its second through the unconfirmed table, which fills
/// the cache).
fn unanswered(test: &str) -> Option<Enforcer> {
    if !privilege::kernel_tests_can_run(test) {
        return None;
    }
    testrun::stay_on_this_cpu();
    let mut e = Enforcer::new(POLICY);
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        assert!(e.passes(&udp(true)));
        assert!(e.passes(&udp(true)));
    });
    assert_eq!(hits, 0, "decided, then through the table");
    Some(e)
}

#[test]
fn an_unanswered_udp_flow_is_cached_in_its_first_direction_only() {
    let Some(mut e) = unanswered("an_unanswered_udp_flow_is_cached_in_its_first_direction_only")
    else {
        return;
    };
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        for _ in 0..3 {
            assert!(e.passes(&udp(true)));
        }
    });
    assert_eq!(hits, 3, "a one-way stream passes from the cache");
    assert_eq!(
        entry(&mut e, &key(IPPROTO_UDP, 5353, 53)).map(|v| v.state),
        Some(CT_NEW),
        "still unanswered"
    );
    // The answer is not vouched for: it goes through the table, which
    // establishes the connection, then fills a slot of its own.
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        for _ in 0..3 {
            assert!(e.passes(&udp(false)));
        }
    });
    assert_eq!(hits, 2);
    assert_eq!(
        entry(&mut e, &key(IPPROTO_UDP, 5353, 53)).map(|v| v.state),
        Some(CT_ESTABLISHED)
    );
    let hits = e.delta(counter::CT_CACHE_HIT, |e| {
        for _ in 0..3 {
            assert!(e.passes(&udp(true)));
        }
    });
    assert_eq!(hits, 3, "the first direction's slot still vouches");
}

#[test]
fn a_forgotten_unanswered_flow_is_decided_again_at_once() {
    let Some(mut e) = unanswered("a_forgotten_unanswered_flow_is_decided_again_at_once") else {
        return;
    };
    e.forget(&key(IPPROTO_UDP, 5353, 53));
    let decided = e.delta(counter::PASS_RULE, |e| {
        let hits = e.delta(counter::CT_CACHE_HIT, |e| assert!(e.passes(&udp(true))));
        assert_eq!(hits, 0, "forgetting bumps the epoch");
    });
    assert_eq!(decided, 1, "a new connection again");
    // A new policy that forbids it stops it at its next packet.
    assert!(e.passes(&udp(true)));
    e.reload(CLOSED);
    assert!(!e.passes(&udp(true)));
}

#[test]
fn an_evicted_unanswered_flow_passes_from_its_slot_for_at_most_a_second() {
    let Some(mut e) =
        unanswered("an_evicted_unanswered_flow_passes_from_its_slot_for_at_most_a_second")
    else {
        return;
    };
    // What the LRU table does under a flood: the entry goes, nobody is told.
    let k = key(IPPROTO_UDP, 5353, 53);
    let mut table: HashMap<_, CtKey, CtEntry> =
        HashMap::try_from(e.program.ebpf_mut().map_mut(maps::CT_UNCONFIRMED).unwrap()).unwrap();
    table.remove(&k).unwrap();
    let hits = e.delta(counter::CT_CACHE_HIT, |e| assert!(e.passes(&udp(true))));
    assert_eq!(hits, 1, "the slot still vouches");
    assert_eq!(entry(&mut e, &k), None);
    std::thread::sleep(Duration::from_nanos(CT_CACHE_REFRESH_NS) + Duration::from_millis(100));
    let decided = e.delta(counter::PASS_RULE, |e| {
        let hits = e.delta(counter::CT_CACHE_HIT, |e| assert!(e.passes(&udp(true))));
        assert_eq!(hits, 0, "a second later the table decides");
    });
    assert_eq!(decided, 1, "as a new connection, tracked again");
    assert_eq!(entry(&mut e, &k).map(|v| v.state), Some(CT_NEW));
}

/// The cache set (its first slot) of the client's query from `sport`,
/// computed as the program does.
fn cache_set(sport: u16) -> u32 {
    let v4 = |s: &str| v4_mapped(s.parse::<std::net::Ipv4Addr>().unwrap().octets());
    let words = |a: [u8; 16]| {
        [
            u64::from_le_bytes(a[..8].try_into().unwrap()),
            u64::from_le_bytes(a[8..].try_into().unwrap()),
        ]
    };
    let (src, dst) = (words(v4(CLIENT)), words(v4(SERVER)));
    let ports = u64::from(sport) | 53 << 16 | u64::from(IPPROTO_UDP) << 32 | 1 << 40;
    ct_cache_set(&[src[0], src[1], dst[0], dst[1], ports])
}

#[test]
fn two_flows_that_hash_alike_are_both_cached_and_a_third_waits_for_a_stale_slot() {
    if !privilege::kernel_tests_can_run(
        "two_flows_that_hash_alike_are_both_cached_and_a_third_waits_for_a_stale_slot",
    ) {
        return;
    }
    testrun::stay_on_this_cpu();
    let mut e = Enforcer::new(POLICY);
    // Three client ports whose queries share a set.
    let mut by_set = std::collections::HashMap::<u32, Vec<u16>>::new();
    let ports = (20000..u16::MAX)
        .find_map(|port| {
            let same = by_set.entry(cache_set(port)).or_default();
            same.push(port);
            (same.len() == 3).then(|| same.clone())
        })
        .expect("three ports share a set");
    let query = |sport| packet::ip(ip(CLIENT), ip(SERVER), L4::Udp { sport, dport: 53 });
    // Each decided, then through the table (which fills a slot if it may).
    for &port in &ports {
        assert!(e.passes(&query(port)));
        assert!(e.passes(&query(port)));
    }
    let hits = |e: &mut Enforcer, port| {
        e.delta(counter::CT_CACHE_HIT, |e| assert!(e.passes(&query(port))))
    };
    assert_eq!(hits(&mut e, ports[0]), 1, "the first flow of the set");
    assert_eq!(
        hits(&mut e, ports[1]),
        1,
        "and the second, in the other way"
    );
    assert_eq!(hits(&mut e, ports[2]), 0, "the third evicts neither");
    assert_eq!(hits(&mut e, ports[0]), 1, "still cached");
    std::thread::sleep(Duration::from_nanos(CT_CACHE_REFRESH_NS) + Duration::from_millis(100));
    // A second on, every slot is stale: the third's next packet takes one.
    assert_eq!(hits(&mut e, ports[2]), 0);
    assert_eq!(hits(&mut e, ports[2]), 1);
}
