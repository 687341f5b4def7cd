//! Verdicts of the real program under `BPF_PROG_TEST_RUN`, one test per rule
//! of docs/language.md: intra-zone, isolated, allow, deny wins (inside zones
//! too), monitor (never over a deny), world (isolated), IPv4-mapped addresses,
//! IPv6, VLAN, ICMP types, replies, related ICMP errors, quarantine,
//! fragments, malformed and truncated packets, and reloads.

use std::net::IpAddr;

use wardgate_common::{EVENT_AUDIT, EVENT_DROP, RULE_NONE, counter, v4_mapped};
use wardgate_tests::{
    enforcer::Enforcer,
    packet::{self, L4, tcp_flags},
    privilege,
};

const POLICY: &str = r#"
service https = tcp/443
service dns   = udp/53
service ping  = icmp/echo-request, icmpv6/echo-request

zone a    { networks 10.1.0.0/16, 2001:db8:a::/48 }
zone b    { networks 10.2.0.0/16, 2001:db8:b::/48 }
zone c    { networks 10.3.0.0/16 isolated }
zone m    { networks 10.4.0.0/16 mode monitor }
zone pair { networks 10.5.0.0/16 isolated }

allow a -> b : https, dns, ping
allow a -> b : tcp/8000-8100
deny  a -> b : tcp/8080 "the debug port stays shut"
allow pair -> pair : https
allow a -> world : https
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn syn(dport: u16) -> L4 {
    L4::Tcp {
        sport: 40000,
        dport,
        flags: tcp_flags::SYN,
    }
}

fn tcp(src: &str, dst: &str, dport: u16) -> Vec<u8> {
    packet::ip(ip(src), ip(dst), syn(dport))
}

fn enforcer(test: &str) -> Option<Enforcer> {
    privilege::kernel_tests_can_run(test).then(|| Enforcer::new(POLICY))
}

#[test]
fn intra_zone_passes_unless_isolated() {
    let Some(mut e) = enforcer("intra_zone_passes_unless_isolated") else {
        return;
    };
    let moved = e.delta(counter::PASS_INTRA_ZONE, |e| {
        assert!(e.passes(&tcp("10.1.0.1", "10.1.9.9", 9999)));
    });
    assert_eq!(moved, 1);
    assert!(
        !e.passes(&tcp("10.3.0.1", "10.3.0.2", 443)),
        "isolated zone"
    );
    assert!(
        e.passes(&tcp("10.5.0.1", "10.5.0.2", 443)),
        "isolated zone, explicit allow"
    );
    assert!(
        !e.passes(&tcp("10.5.0.1", "10.5.0.2", 22)),
        "isolated zone, not allowed"
    );
}

#[test]
fn allow_rules_open_exactly_their_services_one_way() {
    let Some(mut e) = enforcer("allow_rules_open_exactly_their_services_one_way") else {
        return;
    };
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.1", 443)));
    assert!(!e.passes(&tcp("10.1.0.1", "10.2.0.1", 444)), "default deny");
    assert!(
        !e.passes(&tcp("10.2.0.1", "10.1.0.1", 443)),
        "the other direction"
    );
    let udp = |dport| {
        packet::ip(
            ip("10.1.0.1"),
            ip("10.2.0.1"),
            L4::Udp { sport: 5000, dport },
        )
    };
    assert!(e.passes(&udp(53)));
    assert!(!e.passes(&udp(443)), "tcp/443 does not open udp/443");
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.1", 8000)), "range start");
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.1", 8100)), "range end");
    assert!(
        !e.passes(&tcp("10.1.0.1", "10.2.0.1", 8101)),
        "past the range"
    );
}

#[test]
fn deny_wins_over_allow_and_is_the_deciding_rule() {
    let Some(mut e) = enforcer("deny_wins_over_allow_and_is_the_deciding_rule") else {
        return;
    };
    assert!(!e.passes(&tcp("10.1.0.1", "10.2.0.1", 8080)));
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.1", 8079)));
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.1", 8081)));
    let events = e.events();
    assert_eq!(events.len(), 1, "one drop event: {events:?}");
    let deny = e
        .image
        .rules()
        .iter()
        .find(|r| r.text.contains("8080"))
        .unwrap();
    assert_eq!(events[0].rule, deny.id);
    assert_eq!(events[0].verdict, EVENT_DROP);
    assert_eq!(events[0].dport, 8080);
}

#[test]
fn monitor_mode_passes_would_be_drops_as_audits() {
    let Some(mut e) = enforcer("monitor_mode_passes_would_be_drops_as_audits") else {
        return;
    };
    let audits = e.delta(counter::AUDIT, |e| {
        assert!(
            e.passes(&tcp("10.1.0.1", "10.4.0.1", 22)),
            "into a monitor zone"
        );
        assert!(
            e.passes(&tcp("10.4.0.1", "10.2.0.1", 3389)),
            "out of a monitor zone"
        );
    });
    assert_eq!(audits, 2);
    let events = e.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|ev| ev.verdict == EVENT_AUDIT));
    let m = e.image.zone_by_name("m").unwrap();
    assert_eq!(events[0].dst_zone, m);
    assert_eq!(events[0].src, v4_mapped([10, 1, 0, 1]));
    assert_eq!(e.counter(counter::DROP_POLICY), 0);
}

#[test]
fn world_holds_every_undeclared_address() {
    let Some(mut e) = enforcer("world_holds_every_undeclared_address") else {
        return;
    };
    assert!(e.passes(&tcp("10.1.0.1", "198.51.100.7", 443)));
    assert!(!e.passes(&tcp("10.1.0.1", "198.51.100.7", 80)));
    assert!(
        !e.passes(&tcp("203.0.113.9", "10.1.0.1", 443)),
        "world -> a is not allowed"
    );
    assert!(
        e.passes(&tcp("2001:db8:a::1", "2001:db8:ffff::1", 443)),
        "IPv6 world"
    );
}

#[test]
fn ipv6_is_decided_like_ipv4() {
    let Some(mut e) = enforcer("ipv6_is_decided_like_ipv4") else {
        return;
    };
    assert!(e.passes(&tcp("2001:db8:a::1", "2001:db8:b::1", 443)));
    assert!(!e.passes(&tcp("2001:db8:a::1", "2001:db8:b::1", 444)));
    assert!(!e.passes(&tcp("2001:db8:b::1", "2001:db8:a::1", 443)));
    assert!(!e.passes(&tcp("2001:db8:a::1", "2001:db8:b::1", 8080)));
    // Neighbour discovery passes whatever the policy says.
    let ns = packet::ip(
        ip("2001:db8:b::1"),
        ip("2001:db8:a::1"),
        L4::Icmp {
            ty: 135,
            code: 0,
            id: 0,
        },
    );
    assert!(e.passes(&ns));
}

#[test]
fn vlan_tagged_frames_are_decided_on_their_ip_header() {
    let Some(mut e) = enforcer("vlan_tagged_frames_are_decided_on_their_ip_header") else {
        return;
    };
    for outer in [false, true] {
        let tag = |f: Vec<u8>| {
            let once = packet::with_vlan(&f, 20, false);
            if outer {
                packet::with_vlan(&once, 100, true)
            } else {
                once
            }
        };
        assert!(e.passes(&tag(tcp("10.1.0.1", "10.2.0.1", 443))));
        assert!(!e.passes(&tag(tcp("10.1.0.1", "10.2.0.1", 444))));
    }
}

#[test]
fn icmp_rules_match_the_icmp_type() {
    let Some(mut e) = enforcer("icmp_rules_match_the_icmp_type") else {
        return;
    };
    let icmp =
        |src: &str, dst: &str, ty| packet::ip(ip(src), ip(dst), L4::Icmp { ty, code: 0, id: 1 });
    assert!(e.passes(&icmp("10.1.0.1", "10.2.0.1", 8)), "echo request");
    assert!(
        !e.passes(&icmp("10.1.0.1", "10.2.0.1", 13)),
        "timestamp request"
    );
    assert!(
        e.passes(&icmp("2001:db8:a::1", "2001:db8:b::1", 128)),
        "ICMPv6 echo request"
    );
    assert!(
        !e.passes(&icmp("2001:db8:a::1", "2001:db8:b::1", 139)),
        "ICMPv6 node information"
    );
}

#[test]
fn replies_pass_only_for_tracked_connections() {
    let Some(mut e) = enforcer("replies_pass_only_for_tracked_connections") else {
        return;
    };
    let synack = packet::ip(
        ip("10.2.0.1"),
        ip("10.1.0.1"),
        L4::Tcp {
            sport: 443,
            dport: 40000,
            flags: tcp_flags::SYN | tcp_flags::ACK,
        },
    );
    assert!(!e.passes(&synack), "a reply without a prior SYN drops");
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.1", 443)));
    let tracked = e.delta(counter::PASS_TRACKED, |e| {
        assert!(
            e.passes(&synack),
            "the SYN-ACK of a tracked connection passes"
        );
        let ack = packet::ip(
            ip("10.1.0.1"),
            ip("10.2.0.1"),
            L4::Tcp {
                sport: 40000,
                dport: 443,
                flags: tcp_flags::ACK,
            },
        );
        assert!(e.passes(&ack));
    });
    assert_eq!(tracked, 2);
    // UDP: the reply comes from the server's port to the client's.
    let reply = packet::ip(
        ip("10.2.0.1"),
        ip("10.1.0.1"),
        L4::Udp {
            sport: 53,
            dport: 5000,
        },
    );
    assert!(!e.passes(&reply));
    assert!(e.passes(&packet::ip(
        ip("10.1.0.1"),
        ip("10.2.0.1"),
        L4::Udp {
            sport: 5000,
            dport: 53
        }
    )));
    assert!(e.passes(&reply));
    // ICMP echo: the reply carries the request's identifier.
    let echo_reply = |id| {
        packet::ip(
            ip("10.2.0.1"),
            ip("10.1.0.1"),
            L4::Icmp { ty: 0, code: 0, id },
        )
    };
    assert!(!e.passes(&echo_reply(77)));
    assert!(e.passes(&packet::ip(
        ip("10.1.0.1"),
        ip("10.2.0.1"),
        L4::Icmp {
            ty: 8,
            code: 0,
            id: 77
        }
    )));
    assert!(e.passes(&echo_reply(77)));
    assert!(
        !e.passes(&echo_reply(78)),
        "another identifier is another flow"
    );
}

#[test]
fn icmp_errors_about_tracked_connections_pass() {
    let Some(mut e) = enforcer("icmp_errors_about_tracked_connections_pass") else {
        return;
    };
    let query = packet::ip(
        ip("10.1.0.1"),
        ip("10.2.0.1"),
        L4::Udp {
            sport: 5000,
            dport: 53,
        },
    );
    let unreachable = packet::icmp_error(ip("10.2.0.1"), ip("10.1.0.1"), 3, 3, &query);
    assert!(!e.passes(&unreachable), "no connection yet");
    assert!(e.passes(&query));
    assert!(
        e.passes(&unreachable),
        "port unreachable about a tracked flow"
    );
    let other = packet::ip(
        ip("10.1.0.1"),
        ip("10.2.0.1"),
        L4::Udp {
            sport: 5001,
            dport: 53,
        },
    );
    assert!(!e.passes(&packet::icmp_error(
        ip("10.2.0.1"),
        ip("10.1.0.1"),
        3,
        3,
        &other
    )));
    // ICMPv6 packet too big about a tracked TCP connection, from a router in world.
    let syn6 = tcp("2001:db8:a::1", "2001:db8:b::1", 443);
    assert!(e.passes(&syn6));
    assert!(e.passes(&packet::icmp_error(
        ip("2001:db8:ffff::1"),
        ip("2001:db8:a::1"),
        2,
        0,
        &syn6
    )));
}

#[test]
fn quarantine_cuts_established_connections_and_release_restores_them() {
    let Some(mut e) = enforcer("quarantine_cuts_established_connections_and_release_restores_them")
    else {
        return;
    };
    let ack = |src: &str, dst: &str, sport, dport| {
        packet::ip(
            ip(src),
            ip(dst),
            L4::Tcp {
                sport,
                dport,
                flags: tcp_flags::ACK,
            },
        )
    };
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.1", 443)));
    assert!(e.passes(&ack("10.2.0.1", "10.1.0.1", 443, 40000)));
    e.quarantine(ip("10.2.0.1"));
    let dropped = e.delta(counter::DROP_QUARANTINE, |e| {
        assert!(!e.passes(&ack("10.1.0.1", "10.2.0.1", 40000, 443)));
        assert!(!e.passes(&ack("10.2.0.1", "10.1.0.1", 443, 40000)));
        assert!(
            !e.passes(&tcp("10.1.0.1", "10.2.0.1", 443)),
            "new connections too"
        );
        assert!(
            !e.passes(&tcp("10.2.0.2", "10.2.0.1", 443)),
            "even intra-zone"
        );
    });
    assert_eq!(dropped, 4);
    assert!(
        e.passes(&tcp("10.1.0.2", "10.2.0.2", 443)),
        "other hosts are not affected"
    );
    e.release(ip("10.2.0.1"));
    assert!(
        e.passes(&ack("10.1.0.1", "10.2.0.1", 40000, 443)),
        "the tracked connection resumes"
    );
}

#[test]
fn later_fragments_follow_their_first_fragment() {
    let Some(mut e) = enforcer("later_fragments_follow_their_first_fragment") else {
        return;
    };
    let udp = |dport| {
        packet::ip(
            ip("10.1.0.1"),
            ip("10.2.0.1"),
            L4::Udp { sport: 5000, dport },
        )
    };
    let first = packet::ipv4_fragment(&udp(53), 77, true, 0);
    let later = |id| packet::ipv4_fragment(&udp(53), id, false, 185);
    assert!(!e.passes(&later(77)), "a later fragment before its first");
    assert!(e.passes(&first));
    assert!(e.passes(&later(77)));
    assert!(!e.passes(&later(78)), "another datagram");
    let denied_first = packet::ipv4_fragment(&udp(54), 79, true, 0);
    assert!(!e.passes(&denied_first));
    assert!(!e.passes(&packet::ipv4_fragment(&udp(54), 79, false, 185)));
}

#[test]
fn truncated_packets_drop_at_every_header_boundary() {
    let Some(mut e) = enforcer("truncated_packets_drop_at_every_header_boundary") else {
        return;
    };
    let frames = [
        tcp("10.1.0.1", "10.2.0.1", 443),
        tcp("2001:db8:a::1", "2001:db8:b::1", 443),
        packet::with_vlan(&tcp("10.1.0.1", "10.2.0.1", 443), 20, false),
        packet::ip(
            ip("10.1.0.1"),
            ip("10.2.0.1"),
            L4::Udp {
                sport: 1,
                dport: 53,
            },
        ),
        packet::ip(
            ip("10.1.0.1"),
            ip("10.2.0.1"),
            L4::Icmp {
                ty: 8,
                code: 0,
                id: 1,
            },
        ),
    ];
    for frame in frames {
        assert!(e.passes(&frame), "the whole frame passes");
        // From just past the Ethernet (or VLAN) header to one byte short.
        let ip_start = if frame[12] == 0x81 { 18 } else { 14 };
        for len in ip_start + 1..frame.len() {
            assert!(
                !e.passes(&frame[..len]),
                "{len} of {} bytes passed",
                frame.len()
            );
        }
    }
    assert!(e.counter(counter::DROP_TRUNCATED) > 100);
}

#[test]
fn malformed_ip_headers_drop_and_non_ip_passes() {
    let Some(mut e) = enforcer("malformed_ip_headers_drop_and_non_ip_passes") else {
        return;
    };
    let good = tcp("10.1.0.1", "10.2.0.1", 443);
    let mut short_ihl = good.clone();
    short_ihl[14] = 0x44;
    let mut bad_version = good.clone();
    bad_version[14] = 0x65;
    let mut bad_length = good.clone();
    bad_length[16..18].copy_from_slice(&10u16.to_be_bytes());
    let malformed = e.delta(counter::DROP_MALFORMED, |e| {
        for frame in [&short_ihl, &bad_version, &bad_length] {
            assert!(!e.passes(frame));
        }
    });
    assert_eq!(malformed, 3);
    assert!(e.passes(&packet::arp()));
    assert!(
        e.passes(&packet::arp()[..14]),
        "a bare Ethernet header is not IP"
    );
    // IPv4 options: IHL 6 with a 4-byte NOP option, decided normally.
    let mut with_options = good[..34].to_vec();
    with_options.extend_from_slice(&[1, 1, 1, 1]);
    with_options.extend_from_slice(&good[34..]);
    with_options[14] = 0x46;
    let total = u16::from_be_bytes([with_options[16], with_options[17]]) + 4;
    with_options[16..18].copy_from_slice(&total.to_be_bytes());
    packet::fix_ipv4_checksum(&mut with_options);
    assert!(e.passes(&with_options));
    let mut denied_with_options = with_options.clone();
    denied_with_options[40..42].copy_from_slice(&444u16.to_be_bytes());
    assert!(!e.passes(&denied_with_options));
}

#[test]
fn other_protocols_are_decided_by_number() {
    if !privilege::kernel_tests_can_run("other_protocols_are_decided_by_number") {
        return;
    }
    let mut e = Enforcer::new(
        r#"
        zone a { networks 10.1.0.0/16 }
        zone b { networks 10.2.0.0/16 }
        allow a -> b : proto/50, sctp/3868
        "#,
    );
    assert!(e.passes(&packet::ipv4_proto(
        [10, 1, 0, 1],
        [10, 2, 0, 1],
        50,
        &[0; 16]
    )));
    assert!(!e.passes(&packet::ipv4_proto(
        [10, 1, 0, 1],
        [10, 2, 0, 1],
        51,
        &[0; 16]
    )));
    let sctp = |dport: u16| {
        let mut hdr = [0u8; 12];
        hdr[0..2].copy_from_slice(&1234u16.to_be_bytes());
        hdr[2..4].copy_from_slice(&dport.to_be_bytes());
        packet::ipv4_proto([10, 1, 0, 1], [10, 2, 0, 1], 132, &hdr)
    };
    assert!(e.passes(&sctp(3868)));
    assert!(!e.passes(&sctp(3869)));
}

#[test]
fn a_reload_redecides_tracked_connections() {
    let Some(mut e) = enforcer("a_reload_redecides_tracked_connections") else {
        return;
    };
    let ack = |sport| {
        packet::ip(
            ip("10.1.0.1"),
            ip("10.2.0.1"),
            L4::Tcp {
                sport,
                dport: 443,
                flags: tcp_flags::ACK,
            },
        )
    };
    let dns = packet::ip(
        ip("10.1.0.1"),
        ip("10.2.0.1"),
        L4::Udp {
            sport: 5000,
            dport: 53,
        },
    );
    assert!(e.passes(&tcp("10.1.0.1", "10.2.0.1", 443)));
    assert!(e.passes(&dns));
    // The new policy keeps https and drops dns.
    e.reload(&POLICY.replace("https, dns, ping", "https, ping"));
    let redecided = e.delta(counter::CT_REDECIDED, |e| {
        assert!(e.passes(&ack(40000)), "still allowed: never notices");
        assert!(!e.passes(&dns), "no longer allowed: stops at once");
    });
    assert_eq!(redecided, 2);
    assert!(e.passes(&ack(40000)), "re-decided once, tracked again");
    assert!(!e.passes(&dns), "the entry is gone");
}

/// The policy of the rules that explicit denies, `world` and monitor mode
/// follow everywhere: inside zones, between undeclared addresses, during a
/// monitor-mode rollout.
const GUARDRAILS: &str = r#"
zone a { networks 10.1.0.0/16, 2001:db8:a::/48 }
zone b { networks 10.2.0.0/16 }
zone m { networks 10.4.0.0/16 mode monitor }

deny  any -> any : tcp/23 "no telnet anywhere"
deny  m -> b : tcp/3389   "no remote desktop into b, rollout or not"
allow a -> b : tcp/443
"#;

fn guardrails(test: &str) -> Option<Enforcer> {
    privilege::kernel_tests_can_run(test).then(|| Enforcer::new(GUARDRAILS))
}

fn rule_id(e: &Enforcer, text: &str) -> u32 {
    e.image
        .rules()
        .iter()
        .find(|r| r.text.contains(text))
        .unwrap_or_else(|| panic!("no rule with `{text}`"))
        .id
}

#[test]
fn explicit_denies_apply_inside_zones() {
    let Some(mut e) = guardrails("explicit_denies_apply_inside_zones") else {
        return;
    };
    let dropped = e.delta(counter::DROP_POLICY, |e| {
        assert!(
            !e.passes(&tcp("10.1.0.1", "10.1.9.9", 23)),
            "telnet inside a"
        );
        assert!(
            !e.passes(&tcp("2001:db8:a::1", "2001:db8:a::2", 23)),
            "telnet inside a, IPv6"
        );
    });
    assert_eq!(dropped, 2);
    let events = e.events();
    let telnet = rule_id(&e, "tcp/23");
    assert!(
        events
            .iter()
            .all(|ev| ev.rule == telnet && ev.verdict == EVENT_DROP),
        "{events:?}"
    );
    let intra = e.delta(counter::PASS_INTRA_ZONE, |e| {
        assert!(
            e.passes(&tcp("10.1.0.1", "10.1.9.9", 22)),
            "other tcp ports"
        );
        assert!(e.passes(&tcp("10.1.0.1", "10.1.9.9", 24)), "the next port");
        assert!(
            e.passes(&packet::ip(
                ip("10.1.0.1"),
                ip("10.1.9.9"),
                L4::Udp {
                    sport: 5000,
                    dport: 23
                }
            )),
            "udp/23 (no table for udp)"
        );
    });
    assert_eq!(intra, 3, "intra-zone traffic no deny covers is intra-zone");
}

#[test]
fn world_is_isolated_unless_a_rule_allows_world_to_world() {
    if !privilege::kernel_tests_can_run("world_is_isolated_unless_a_rule_allows_world_to_world") {
        return;
    }
    let mut e = Enforcer::new(GUARDRAILS);
    assert!(!e.passes(&tcp("198.51.100.7", "203.0.113.1", 80)));
    assert!(!e.passes(&tcp("2001:db8:ffff::1", "2001:db8:4::9", 80)));
    let events = e.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|ev| ev.src_zone == 0 && ev.dst_zone == 0 && ev.rule == RULE_NONE)
    );

    // Link control stays on the link and passes: ND and the MLD it relies on.
    let link = e.delta(counter::NEIGHBOR_DISCOVERY, |e| {
        for ty in [143, 131, 135] {
            assert!(
                e.passes(&packet::ip(
                    ip("fe80::1"),
                    ip("ff02::16"),
                    L4::Icmp { ty, code: 0, id: 0 }
                )),
                "icmpv6 type {ty} on the link"
            );
        }
    });
    assert_eq!(link, 3);
    assert!(
        !e.passes(&packet::ip(
            ip("fe80::1"),
            ip("ff02::1"),
            L4::Icmp {
                ty: 128,
                code: 0,
                id: 1
            }
        )),
        "other link-local traffic is world -> world"
    );

    let mut e = Enforcer::new(&format!(
        "{GUARDRAILS}\nallow world -> world : tcp/80 \"the legacy web proxy\"\n"
    ));
    let allowed = e.delta(counter::PASS_RULE, |e| {
        assert!(e.passes(&tcp("198.51.100.7", "203.0.113.1", 80)));
        assert!(e.passes(&tcp("2001:db8:ffff::1", "2001:db8:4::9", 80)));
    });
    assert_eq!(allowed, 2, "allowed by the rule, not as intra-zone");
    assert!(!e.passes(&tcp("198.51.100.7", "203.0.113.1", 81)));
    assert!(!e.passes(&tcp("198.51.100.7", "203.0.113.1", 23)));
}

#[test]
fn monitor_mode_never_overrides_an_explicit_deny() {
    let Some(mut e) = guardrails("monitor_mode_never_overrides_an_explicit_deny") else {
        return;
    };
    let audits = e.delta(counter::AUDIT, |e| {
        let dropped = e.delta(counter::DROP_POLICY, |e| {
            assert!(
                !e.passes(&tcp("10.4.0.1", "10.2.0.1", 3389)),
                "denied m -> b"
            );
            assert!(!e.passes(&tcp("10.1.0.1", "10.4.0.1", 23)), "telnet into m");
            assert!(
                !e.passes(&tcp("10.4.0.1", "10.4.0.2", 23)),
                "telnet inside m"
            );
        });
        assert_eq!(dropped, 3);
        assert!(
            e.passes(&tcp("10.4.0.1", "10.2.0.1", 22)),
            "default deny: audit"
        );
    });
    assert_eq!(audits, 1);
    let events = e.events();
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0].rule, rule_id(&e, "tcp/3389"));
    assert!(events[..3].iter().all(|ev| ev.verdict == EVENT_DROP));
    assert_eq!(
        (events[3].verdict, events[3].rule),
        (EVENT_AUDIT, RULE_NONE)
    );
}

#[test]
fn ipv4_mapped_ipv6_addresses_drop_as_malformed() {
    let Some(mut e) = guardrails("ipv4_mapped_ipv6_addresses_drop_as_malformed") else {
        return;
    };
    // Would be allowed (a -> b : tcp/443, or intra-zone) if classified as IPv4.
    let mapped = e.delta(counter::DROP_MAPPED, |e| {
        let policy = e.delta(counter::DROP_POLICY, |e| {
            assert!(!e.passes(&tcp("::ffff:10.1.0.1", "::ffff:10.2.0.1", 443)));
            assert!(
                !e.passes(&tcp("::ffff:10.1.0.1", "2001:db8:a::1", 22)),
                "source"
            );
            assert!(
                !e.passes(&tcp("2001:db8:a::1", "::ffff:10.1.0.1", 22)),
                "destination"
            );
            assert!(
                !e.passes(&packet::ip(
                    ip("::ffff:10.1.0.1"),
                    ip("2001:db8:a::1"),
                    L4::Icmp {
                        ty: 135,
                        code: 0,
                        id: 0
                    }
                )),
                "neighbour discovery from a mapped address"
            );
        });
        assert_eq!(policy, 0, "dropped before the policy");
    });
    assert_eq!(mapped, 4);
    assert!(e.events().is_empty(), "no policy event");
    // The edges of the block are ordinary IPv6 addresses (world).
    assert!(!e.passes(&tcp("::fffe:10.1.0.1", "2001:db8:a::1", 22)));
    assert!(e.passes(&tcp("2001:db8:a::1", "2001:db8:a::2", 22)));
    assert_eq!(e.counter(counter::DROP_MAPPED), 4);
}
