//! Connection tracking under flood (issue 13, item 3), in the real program
//! under `BPF_PROG_TEST_RUN`, with small tables so that a test can fill them:
//! unconfirmed connections are kept apart from established ones and a flood
//! evicts only them; a zone's `conntrack-limit` drops its new connections
//! with their own reason, counter and event; zones without a limit share a
//! pool; life-critical zones keep a reserve.

use std::net::IpAddr;

use wardgate_common::{CtKey, EVENT_DROP, IPPROTO_TCP, counter};
use wardgate_tests::{
    enforcer::Enforcer,
    packet::{self, tcp_flags},
    privilege,
};

const POLICY: &str = r#"
zone guest  { networks 192.168.100.0/22 conntrack-limit 3 }
zone staff  { networks 10.10.0.0/16 }
zone pumps  { networks 10.40.0.0/22 criticality life-critical }
zone server { networks 10.41.0.0/24 }

allow guest, staff, pumps -> server : tcp/443
allow guest -> world : tcp/443
"#;

/// Established capacity 64: a reserve of 8 for life-critical zones, guest's
/// 3, and a pool of 64 - 8 - 3 = 53 for staff and world.
const ESTABLISHED: u32 = 64;
const UNCONFIRMED: u32 = 256;
const POOL: u16 = 53;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    packet::tcp(src, dst, sport, dport, flags)
}

fn syn(src: &str, sport: u16) -> Vec<u8> {
    tcp(src, "10.41.0.1", sport, 443, tcp_flags::SYN)
}

fn synack(dst: &str, dport: u16) -> Vec<u8> {
    tcp(
        "10.41.0.1",
        dst,
        443,
        dport,
        tcp_flags::SYN | tcp_flags::ACK,
    )
}

fn data_reply(dst: &str, dport: u16) -> Vec<u8> {
    tcp("10.41.0.1", dst, 443, dport, tcp_flags::ACK)
}

/// A SYN and its SYN-ACK: the connection is established.
fn establish(e: &mut Enforcer, src: &str, sport: u16) -> bool {
    e.passes(&syn(src, sport)) && e.passes(&synack(src, sport))
}

fn enforcer(test: &str) -> Option<Enforcer> {
    privilege::kernel_tests_can_run(test)
        .then(|| Enforcer::with_conntrack(POLICY, ESTABLISHED, UNCONFIRMED))
}

#[test]
fn a_flood_of_unanswered_connections_never_evicts_established_ones() {
    let Some(mut e) = enforcer("a_flood_of_unanswered_connections_never_evicts_established_ones")
    else {
        return;
    };
    for port in 0..20 {
        assert!(establish(&mut e, "10.40.0.7", 30000 + port));
    }
    // Forty times the unconfirmed table's size in allowed SYNs from staff (a
    // zone without a limit), each refused with a reset, as a scanned host
    // does: they fill and evict that table. The reset touches the entry, so
    // the kernel's LRU sees every flood entry as recently used, while the
    // established connections sit idle.
    let created = e.delta(counter::CT_UNCONFIRMED_CREATED, |e| {
        for i in 0..(40 * UNCONFIRMED) {
            let src = format!("10.10.{}.{}", (i >> 8) & 0xff, i & 0xff);
            assert!(e.passes(&syn(&src, 50000)), "flood SYN {i} is allowed");
            let reset = tcp(
                "10.41.0.1",
                &src,
                443,
                50000,
                tcp_flags::RST | tcp_flags::ACK,
            );
            assert!(e.passes(&reset), "the reset of flood SYN {i} passes");
        }
    });
    assert_eq!(created, u64::from(40 * UNCONFIRMED));
    // Every established pump connection still takes replies.
    for port in 0..20 {
        assert!(
            e.passes(&data_reply("10.40.0.7", 30000 + port)),
            "the reply of established connection {port} passes after the flood"
        );
    }
    // An early flood connection was evicted: its reset is a reply of nothing.
    let reset = tcp("10.41.0.1", "10.10.0.0", 443, 50000, tcp_flags::RST);
    assert!(!e.passes(&reset));
}

#[test]
fn a_zone_at_its_limit_drops_new_connections_with_its_own_reason() {
    let Some(mut e) = enforcer("a_zone_at_its_limit_drops_new_connections_with_its_own_reason")
    else {
        return;
    };
    for port in 0..3 {
        assert!(establish(&mut e, "192.168.100.5", 40000 + port));
    }
    e.events();
    let dropped = e.delta(counter::DROP_CT_LIMIT, |e| {
        assert!(
            !e.passes(&syn("192.168.100.5", 40003)),
            "guest's fourth connection is over its limit of 3"
        );
    });
    assert_eq!(dropped, 1);
    let events = e.events();
    assert!(
        events
            .iter()
            .any(|ev| ev.verdict == EVENT_DROP && ev.reason == counter::DROP_CT_LIMIT),
        "{events:?}"
    );
    // Guest's established connections keep working, and other zones are not limited by it.
    assert!(e.passes(&data_reply("192.168.100.5", 40000)));
    assert!(establish(&mut e, "10.10.0.1", 40000));
    // Unanswered connections do not count against the limit...
    // ...but once one of guest's connections is gone, a new one fits.
    let key = CtKey::new(
        v4("192.168.100.5"),
        v4("10.41.0.1"),
        IPPROTO_TCP,
        40001,
        443,
        0,
    );
    e.forget(&key);
    assert!(establish(&mut e, "192.168.100.5", 40004));
    assert!(!e.passes(&syn("192.168.100.5", 40005)));
}

#[test]
fn zones_without_a_limit_share_the_pool_and_life_critical_zones_keep_the_reserve() {
    let Some(mut e) =
        enforcer("zones_without_a_limit_share_the_pool_and_life_critical_zones_keep_the_reserve")
    else {
        return;
    };
    for port in 0..POOL {
        assert!(
            establish(&mut e, "10.10.0.1", 20000 + port),
            "pool entry {port}"
        );
    }
    let dropped = e.delta(counter::DROP_CT_LIMIT, |e| {
        assert!(
            !e.passes(&syn("10.10.0.1", 20000 + POOL)),
            "the pool is full"
        );
    });
    assert_eq!(dropped, 1);
    // The reserve and guest's own limit are untouched by the full pool.
    for port in 0..8 {
        assert!(
            establish(&mut e, "10.40.0.7", 30000 + port),
            "reserve entry {port}"
        );
    }
    for port in 0..3 {
        assert!(establish(&mut e, "192.168.100.5", 40000 + port));
    }
    // Every one of them is established: replies pass.
    for port in 0..POOL {
        assert!(e.passes(&data_reply("10.10.0.1", 20000 + port)));
    }
    assert!(e.passes(&data_reply("10.40.0.7", 30007)));
}

fn v4(s: &str) -> [u8; 16] {
    let IpAddr::V4(a) = ip(s) else {
        panic!("not IPv4: {s}")
    };
    wardgate_common::v4_mapped(a.octets())
}

/// The program's unconfirmed table.
fn unconfirmed_table(
    e: &mut Enforcer,
) -> aya::maps::HashMap<&mut aya::maps::MapData, CtKey, wardgate_common::CtEntry> {
    aya::maps::HashMap::try_from(
        e.program
            .ebpf_mut()
            .map_mut(wardgate_common::maps::CT_UNCONFIRMED)
            .unwrap(),
    )
    .unwrap()
}

/// The unconfirmed entry of `src:sport -> server:443`, if any.
fn unconfirmed(e: &mut Enforcer, src: &str, sport: u16) -> Option<wardgate_common::CtEntry> {
    let key = CtKey::new(v4(src), v4("10.41.0.1"), IPPROTO_TCP, sport, 443, 0);
    unconfirmed_table(e).get(&key, 0).ok()
}

#[test]
fn a_syn_retried_after_its_entry_idled_out_or_closed_starts_afresh() {
    let Some(mut e) = enforcer("a_syn_retried_after_its_entry_idled_out_or_closed_starts_afresh")
    else {
        return;
    };
    // A SYN, unanswered past the unconfirmed timeout (aged by hand: the
    // agent's sweep has not run), then retried on the same port (Linux
    // retries a SYN at 1, 3, 7, 15, 31 and 63 s).
    assert!(e.passes(&syn("10.10.0.1", 41000)));
    let key = CtKey::new(v4("10.10.0.1"), v4("10.41.0.1"), IPPROTO_TCP, 41000, 443, 0);
    let mut entry = unconfirmed(&mut e, "10.10.0.1", 41000).expect("tracked");
    entry.last_seen_ns -= wardgate_common::CT_TIMEOUT_NEW_NS + 1_000_000_000;
    unconfirmed_table(&mut e).insert(key, entry, 0).unwrap();
    let created = e.delta(counter::CT_UNCONFIRMED_CREATED, |e| {
        assert!(e.passes(&syn("10.10.0.1", 41000)));
    });
    assert_eq!(created, 1, "the idled-out entry is replaced");
    assert!(
        e.passes(&synack("10.10.0.1", 41000)),
        "the retried SYN's answer passes"
    );

    // A retransmission of a live SYN keeps its entry and moves its time.
    assert!(e.passes(&syn("10.10.0.1", 41001)));
    let first = unconfirmed(&mut e, "10.10.0.1", 41001)
        .unwrap()
        .last_seen_ns;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let created = e.delta(counter::CT_UNCONFIRMED_CREATED, |e| {
        assert!(e.passes(&syn("10.10.0.1", 41001)));
    });
    assert_eq!(created, 0);
    assert!(
        unconfirmed(&mut e, "10.10.0.1", 41001)
            .unwrap()
            .last_seen_ns
            > first
    );

    // A tuple reused after the client reset its attempt: a new connection,
    // promoted by its answer like any other.
    assert!(e.passes(&syn("10.10.0.1", 41002)));
    assert!(e.passes(&tcp("10.10.0.1", "10.41.0.1", 41002, 443, tcp_flags::RST)));
    assert!(e.passes(&syn("10.10.0.1", 41002)));
    let promoted = e.delta(counter::CT_PROMOTED, |e| {
        assert!(e.passes(&synack("10.10.0.1", 41002)));
    });
    assert_eq!(promoted, 1, "the reused tuple's connection is established");
}
