//! The XDP program loads and passes the verifier; with no policy loaded yet
//! it passes every kind of packet and counts it, and attached on a gateway
//! real TCP still flows.

use std::net::IpAddr;

use wardgate_agent::Program;
use wardgate_common::counter;
use wardgate_tests::{
    netns::Topology,
    packet::{self, L4, tcp_flags},
    privilege,
    testrun::{self, XDP_PASS},
    traffic,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn program_loads_and_passes_the_verifier() {
    if !privilege::kernel_tests_can_run("program_loads_and_passes_the_verifier") {
        return;
    }
    let program = Program::load().expect("the verifier accepts the program");
    assert!(program.counters().unwrap().iter().all(|&c| c == 0));
}

#[test]
fn test_run_passes_and_counts_each_protocol() {
    if !privilege::kernel_tests_can_run("test_run_passes_and_counts_each_protocol") {
        return;
    }
    let mut program = Program::load().unwrap();
    let v4 = (ip("10.0.0.1"), ip("10.0.0.2"));
    let v6 = (ip("2001:db8::1"), ip("2001:db8::2"));
    let syn = L4::Tcp {
        sport: 40000,
        dport: 443,
        flags: tcp_flags::SYN,
    };
    let udp = L4::Udp {
        sport: 40000,
        dport: 53,
    };
    let echo = L4::Icmp {
        ty: 8,
        code: 0,
        id: 7,
    };
    let echo6 = L4::Icmp {
        ty: 128,
        code: 0,
        id: 7,
    };
    let cases: Vec<(&str, Vec<u8>, &[u32])> = vec![
        (
            "tcp",
            packet::ip(v4.0, v4.1, syn),
            &[counter::IPV4, counter::TCP],
        ),
        (
            "udp",
            packet::ip(v4.0, v4.1, udp),
            &[counter::IPV4, counter::UDP],
        ),
        (
            "icmp",
            packet::ip(v4.0, v4.1, echo),
            &[counter::IPV4, counter::ICMP],
        ),
        ("arp", packet::arp(), &[counter::NON_IP]),
        (
            "ipv6 tcp",
            packet::ip(v6.0, v6.1, syn),
            &[counter::IPV6, counter::TCP],
        ),
        (
            "ipv6 udp",
            packet::ip(v6.0, v6.1, udp),
            &[counter::IPV6, counter::UDP],
        ),
        (
            "icmpv6",
            packet::ip(v6.0, v6.1, echo6),
            &[counter::IPV6, counter::ICMPV6],
        ),
        (
            "vlan tcp",
            packet::with_vlan(&packet::ip(v4.0, v4.1, syn), 20, false),
            &[counter::IPV4, counter::TCP, counter::VLAN],
        ),
        (
            "q-in-q udp",
            packet::with_vlan(
                &packet::with_vlan(&packet::ip(v4.0, v4.1, udp), 20, false),
                300,
                true,
            ),
            &[counter::IPV4, counter::UDP, counter::VLAN],
        ),
    ];
    for (name, frame, expect) in cases {
        let before = program.counters().unwrap();
        let result = testrun::run(program.xdp(), &frame).unwrap();
        assert_eq!(
            result.action,
            XDP_PASS,
            "{name}: got {}",
            testrun::action_name(result.action)
        );
        let after = program.counters().unwrap();
        let moved: Vec<u32> = (0..counter::COUNT)
            .filter(|&i| after[i as usize] != before[i as usize])
            .collect();
        let mut want = vec![counter::PACKETS];
        want.extend_from_slice(expect);
        want.sort_unstable();
        assert_eq!(moved, want, "{name}: counters that moved");
        for i in want {
            assert_eq!(
                after[i as usize],
                before[i as usize] + 1,
                "{name}: counter {i}"
            );
        }
    }
}

#[test]
fn gateway_with_program_attached_forwards_tcp() {
    if !privilege::kernel_tests_can_run("gateway_with_program_attached_forwards_tcp") {
        return;
    }
    let topo = Topology::builder()
        .host("client", &["10.98.1.10/24", "2001:db8:98:1::10/64"])
        .host("server", &["10.98.2.10/24", "2001:db8:98:2::10/64"])
        .build()
        .unwrap();
    let (client, server) = (topo.host("client"), topo.host("server"));
    let gateway = topo.gateway.spawn({
        let ifaces = topo.gateway_ifaces();
        move || {
            let mut program = Program::load()?;
            let modes = ifaces
                .iter()
                .map(|iface| program.attach(iface).map(|a| a.mode))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((program, modes))
        }
    });
    let (program, modes) = gateway.join().unwrap().unwrap();
    assert!(
        modes
            .iter()
            .all(|m| *m == wardgate_agent::AttachMode::Driver),
        "veth supports driver mode: {modes:?}"
    );
    let before = program.counters().unwrap();
    traffic::tcp(&client.ns, &server.ns, server.v4(), 8080, traffic::ALLOWED).unwrap();
    traffic::tcp(&client.ns, &server.ns, server.v6(), 8080, traffic::ALLOWED).unwrap();
    let after = program.counters().unwrap();
    let tcp = (after[counter::TCP as usize] - before[counter::TCP as usize]) as usize;
    // Both directions of two handshakes, data and teardown cross the gateway.
    assert!(tcp >= 12, "the program saw {tcp} TCP packets");
    drop(program);
}
