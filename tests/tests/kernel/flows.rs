//! Flow records (`WG_FLOWS`) under `BPF_PROG_TEST_RUN`: one count per new
//! connection decision, keyed by destination port (never the client's),
//! none on the established path, read-and-cleared by the agent's drain, and
//! a full table counted instead of evicting.

use std::collections::BTreeMap;
use std::net::IpAddr;

use wardgate_agent::flowlog::FlowTable;
use wardgate_common::{FLOW_ALLOW, FLOW_AUDIT, FLOW_DROP, FLOW_SLOTS, v4_mapped};
use wardgate_tests::{
    enforcer::Enforcer,
    packet::{self, L4, tcp_flags},
    privilege, testrun,
};

const POLICY: &str = r"
zone a { networks 10.1.0.0/16 }
zone b { networks 10.2.0.0/16 }
zone m { networks 10.4.0.0/16 mode monitor }
allow a -> b : tcp/443, icmp/echo-request
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    packet::tcp(src, dst, sport, dport, flags)
}

/// Drained records as (dst last octet, port, proto, verdict) -> connections.
fn drained(t: &mut FlowTable) -> BTreeMap<(u8, u16, u8, u8), u64> {
    t.drain()
        .unwrap()
        .into_iter()
        .map(|(k, v)| ((k.dst[15], k.port, k.proto, k.verdict), v.connections))
        .collect()
}

#[test]
fn each_new_connection_is_counted_once_by_destination_port_and_verdict() {
    if !privilege::kernel_tests_can_run(
        "each_new_connection_is_counted_once_by_destination_port_and_verdict",
    ) {
        return;
    }
    let mut e = Enforcer::new(POLICY);
    let mut table = FlowTable::take(e.program.ebpf_mut()).unwrap();
    let syn = tcp_flags::SYN;
    // Two connections from two client ports: one key.
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.9", 40000, 443, syn)));
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.9", 40001, 443, syn)));
    // The established path: reply and data of a tracked connection.
    assert!(e.passes(&tcp(
        "10.2.0.9",
        "10.1.0.1",
        443,
        40000,
        syn | tcp_flags::ACK
    )));
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.9", 40000, 443, tcp_flags::ACK)));
    // A drop and an audit.
    assert!(!e.passes(&tcp("10.1.0.1", "10.2.0.9", 40002, 22, syn)));
    assert!(e.passes(&tcp("10.1.0.1", "10.4.0.7", 40003, 22, syn)));
    // Ping: the ICMP type is the key's port.
    assert!(e.passes(&packet::ip(
        ip("10.1.0.1"),
        ip("10.2.0.9"),
        L4::Icmp {
            ty: 8,
            code: 0,
            id: 7
        }
    )));

    let records = table.drain().unwrap();
    let first = records.iter().find(|(k, _)| k.port == 443).unwrap();
    assert_eq!(first.0.src, v4_mapped([10, 1, 0, 1]));
    assert_eq!(first.1.rule, e.image.rules()[0].id, "the deciding rule");
    assert!(first.1.first_ns <= first.1.last_ns && first.1.first_ns > 0);
    let got: BTreeMap<_, _> = records
        .into_iter()
        .map(|(k, v)| ((k.dst[15], k.port, k.proto, k.verdict), v.connections))
        .collect();
    let want = BTreeMap::from([
        ((9, 443, 6, FLOW_ALLOW), 2),
        ((9, 22, 6, FLOW_DROP), 1),
        ((7, 22, 6, FLOW_AUDIT), 1),
        ((9, 8, 1, FLOW_ALLOW), 1),
    ]);
    assert_eq!(got, want);
    // Drained means deleted: nothing twice.
    assert!(drained(&mut table).is_empty());
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.9", 40009, 443, syn)));
    assert_eq!(
        drained(&mut table),
        BTreeMap::from([((9, 443, 6, FLOW_ALLOW), 1)])
    );
}

#[test]
fn a_full_table_refuses_new_keys_and_counts_them() {
    if !privilege::kernel_tests_can_run("a_full_table_refuses_new_keys_and_counts_them") {
        return;
    }
    // Every test run then writes the same CPU's region of the table.
    testrun::stay_on_this_cpu();
    let mut e = Enforcer::new(POLICY);
    let mut table = FlowTable::take(e.program.ebpf_mut()).unwrap();
    // Twice the region of one CPU, distinct keys: destination port and
    // address vary (drops: nothing tracked).
    let sent = 2 * FLOW_SLOTS;
    for i in 0..sent {
        let dst = format!("10.2.{}.{}", 1 + i / 60_000, 1);
        let port = u16::try_from(1000 + i % 60_000).unwrap();
        assert!(!e.passes(&tcp("10.1.0.1", &dst, 40000, port, tcp_flags::SYN)));
    }
    let refused = table.refused().unwrap();
    let kept = table.drain().unwrap().len() as u64;
    // Nothing lost: every key is either kept or counted as refused.
    assert_eq!(kept + refused, u64::from(sent));
    assert!(refused >= u64::from(FLOW_SLOTS), "{refused} refused");
    // The region fills before it refuses (probing finds the free slots).
    assert!(
        kept * 10 >= u64::from(FLOW_SLOTS) * 9,
        "{kept} kept of {FLOW_SLOTS} slots"
    );
    // Drained, the table takes new keys again.
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.9", 40000, 443, tcp_flags::SYN)));
    assert_eq!(drained(&mut table).len(), 1);
}
