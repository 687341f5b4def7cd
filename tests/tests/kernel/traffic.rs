//! Real traffic through a gateway namespace enforcing a three-zone policy:
//! allowed TCP connects, denied does not, UDP replies come back, ping follows
//! the `icmp/echo-request` rules, and the same holds over IPv6.

use wardgate_common::counter;
use wardgate_tests::{
    enforcer::{attach_to_gateway, image},
    netns::Topology,
    privilege, traffic,
};

const POLICY: &str = r#"
service https = tcp/443
service dns   = udp/53
service ping  = icmp/echo-request, icmpv6/echo-request

zone clinic  { networks 10.71.1.0/24, 2001:db8:71:1::/64 }
zone servers { networks 10.71.2.0/24, 2001:db8:71:2::/64 }
zone guest   { networks 10.71.3.0/24, 2001:db8:71:3::/64 }

allow clinic -> servers : https, dns, ping
allow guest  -> servers : dns
"#;

#[test]
fn gateway_enforces_a_three_zone_policy_on_real_traffic() {
    let test = "gateway_enforces_a_three_zone_policy_on_real_traffic";
    if !privilege::kernel_tests_can_run(test) || !privilege::tool_available(test, "ping") {
        return;
    }
    let topo = Topology::builder()
        .host("clinic", &["10.71.1.10/24", "2001:db8:71:1::10/64"])
        .host("servers", &["10.71.2.10/24", "2001:db8:71:2::10/64"])
        .host("guest", &["10.71.3.10/24", "2001:db8:71:3::10/64"])
        .build()
        .unwrap();
    let program = attach_to_gateway(&topo, image(POLICY), 0);
    let (clinic, servers, guest) = (
        topo.host("clinic"),
        topo.host("servers"),
        topo.host("guest"),
    );
    let (ok, blocked) = (traffic::ALLOWED, traffic::BLOCKED);
    for v6 in [false, true] {
        let server = servers.addr(v6);
        let family = if v6 { "IPv6" } else { "IPv4" };
        traffic::tcp(&clinic.ns, &servers.ns, server, 443, ok)
            .unwrap_or_else(|e| panic!("{family} clinic -> servers https: {e}"));
        assert!(
            traffic::tcp(&clinic.ns, &servers.ns, server, 22, blocked).is_err(),
            "{family} ssh"
        );
        assert!(
            traffic::tcp(&guest.ns, &servers.ns, server, 443, blocked).is_err(),
            "{family} guest https"
        );
        traffic::udp(&guest.ns, &servers.ns, server, 53, ok)
            .unwrap_or_else(|e| panic!("{family} guest dns and its reply: {e}"));
        assert!(
            traffic::udp(&servers.ns, &guest.ns, guest.addr(v6), 53, blocked).is_err(),
            "{family} servers -> guest"
        );
        traffic::ping(&clinic.ns, server, ok)
            .unwrap_or_else(|e| panic!("{family} clinic ping: {e}"));
        assert!(
            traffic::ping(&guest.ns, server, blocked).is_err(),
            "{family} guest ping"
        );
        assert!(
            traffic::ping(&servers.ns, clinic.addr(v6), blocked).is_err(),
            "{family} reverse ping"
        );
    }
    let counters = program.counters().unwrap();
    assert!(
        counters[counter::DROP_POLICY as usize] >= 10,
        "drops: {}",
        counters[counter::DROP_POLICY as usize]
    );
    assert!(counters[counter::PASS_TRACKED as usize] > 0);
    assert!(
        counters[counter::NEIGHBOR_DISCOVERY as usize] > 0,
        "IPv6 neighbour discovery crossed"
    );
}
