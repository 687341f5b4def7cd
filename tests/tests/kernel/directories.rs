//! The search directories the agent adds when it loads an image (IPv4 block
//! directories, `compiler/src/v4table.rs`; port directories,
//! `compiler/src/portdir.rs`) against the reference evaluator, on a policy
//! that has both: a `/16` cut into 80 ranges and more, and a zone pair with
//! 300 allowed ports and a range. Every probe is a TCP reset (decided in
//! full, never tracked) from an address at or next to a subnet's edge to a
//! port at or next to a rule's edge. The differential test covers random
//! policies too, where directories are rarer.

use std::net::{IpAddr, Ipv4Addr};

use wardgate_common::IPPROTO_TCP;
use wardgate_compiler::{Packet, Verdict, decide, portdir::PortDirs, v4table::V4Table};
use wardgate_tests::{
    enforcer::Enforcer,
    packet::{self, L4, tcp_flags},
    privilege,
};

/// The scattered allowed ports.
fn ports() -> Vec<u16> {
    (0..300).map(|k| 1000 + (k * 97 % 60_000) as u16).collect()
}

fn policy() -> String {
    let subnets: Vec<String> = (0..40)
        .map(|k| format!("10.1.{k}.{}/28", 16 * (k % 16)))
        .collect();
    let allowed: Vec<String> = ports().iter().map(|p| format!("tcp/{p}")).collect();
    format!(
        "zone subnets {{ networks {} }}\n\
         zone rest {{ networks 10.1.0.0/16 }}\n\
         zone server {{ hosts 10.2.0.1 }}\n\
         allow subnets -> server : {}, tcp/20000-20999\n\
         deny subnets -> server : tcp/20500\n\
         allow rest -> server : tcp/22\n",
        subnets.join(", "),
        allowed.join(", ")
    )
}

#[test]
fn directories_decide_like_the_reference_evaluator() {
    if !privilege::kernel_tests_can_run("directories_decide_like_the_reference_evaluator") {
        return;
    }
    let mut e = Enforcer::new(&policy());
    let v4 = V4Table::build(&e.image);
    assert_eq!(
        v4.blocks[(10 << 8) | 1].end,
        0,
        "10.1.0.0/16 has a directory"
    );
    assert!(
        !PortDirs::build(&e.image).marks.is_empty(),
        "a span has a port directory"
    );

    // Sources at and next to each subnet's edges (in `subnets` or `rest`).
    let mut sources = Vec::new();
    for k in 0u32..40 {
        let first = (10 << 24) | (1 << 16) | (k << 8) | (16 * (k % 16));
        sources.extend([first - 1, first, first + 15, first + 16]);
    }
    // Ports at and next to each rule's edges, every fifth allowed port.
    let mut probe_ports = vec![
        0, 21, 22, 23, 19_999, 20_000, 20_499, 20_500, 20_501, 20_999, 21_000, 65_535,
    ];
    for p in ports().into_iter().step_by(5) {
        probe_ports.extend([p - 1, p, p + 1]);
    }
    let server = IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1));
    let (mut allowed, mut denied) = (0, 0);
    for &src in &sources {
        let src = IpAddr::V4(Ipv4Addr::from(src));
        for &port in &probe_ports {
            let want = decide(
                &e.image,
                &Packet {
                    src,
                    dst: server,
                    proto: IPPROTO_TCP,
                    port,
                },
            )
            .verdict;
            let frame = packet::ip(
                src,
                server,
                L4::Tcp {
                    sport: 40000,
                    dport: port,
                    flags: tcp_flags::RST | tcp_flags::ACK,
                },
            );
            let got = if e.passes(&frame) {
                Verdict::Allow
            } else {
                Verdict::Deny
            };
            assert_eq!(got, want, "{src} -> {server} tcp/{port}");
            if want == Verdict::Allow {
                allowed += 1;
            } else {
                denied += 1;
            }
        }
    }
    assert!(
        allowed > 1_000 && denied > 1_000,
        "{allowed} allowed, {denied} denied"
    );
}
