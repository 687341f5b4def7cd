//! The fast path forwards allowed traffic itself (TTL and checksum right),
//! hands everything it cannot forward to the kernel stack, and decides
//! exactly as without it (the differential test runs half its cases with it).

use wardgate_common::{CONFIG_FAST_PATH, counter};
use wardgate_tests::{
    enforcer::{attach_to_gateway, image, ready_hosts_for_redirects},
    netns::Topology,
    privilege, traffic,
};

const POLICY: &str = r#"
service https = tcp/443
service dns   = udp/53
service ping  = icmp/echo-request, icmpv6/echo-request

zone clinic  { networks 10.72.1.0/24, 2001:db8:72:1::/64 }
zone servers { networks 10.72.2.0/24, 2001:db8:72:2::/64 }

allow clinic -> servers : https, dns, ping
"#;

fn ping_output(ns: &wardgate_tests::netns::Netns, args: &[&str]) -> (bool, String) {
    let out = ns.exec("ping", args).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn fast_path_forwards_allowed_traffic_with_ttl_and_checksum_right() {
    let test = "fast_path_forwards_allowed_traffic_with_ttl_and_checksum_right";
    if !privilege::kernel_tests_can_run(test)
        || !privilege::tool_available(test, "ping")
        || !privilege::tool_available(test, "ethtool")
    {
        return;
    }
    let topo = Topology::builder()
        .host("clinic", &["10.72.1.10/24", "2001:db8:72:1::10/64"])
        .host("servers", &["10.72.2.10/24", "2001:db8:72:2::10/64"])
        .build()
        .unwrap();
    let gateway = attach_to_gateway(&topo, image(POLICY), CONFIG_FAST_PATH);
    let host_programs = ready_hosts_for_redirects(&topo);
    let (clinic, servers) = (topo.host("clinic"), topo.host("servers"));
    for v6 in [false, true] {
        let server = servers.addr(v6).to_string();
        // The first echo may go through the stack (no neighbour entry yet).
        let (ok, out) = ping_output(
            &clinic.ns,
            &["-n", "-c", "3", "-i", "0.2", "-W", "2", &server],
        );
        assert!(ok, "ping {server}: {out}");
        // Sent with TTL 64, one hop: 63. A wrong IPv4 checksum would have been dropped.
        assert!(out.contains("ttl=63"), "ping {server}: {out}");
        traffic::tcp(
            &clinic.ns,
            &servers.ns,
            servers.addr(v6),
            443,
            traffic::ALLOWED,
        )
        .unwrap_or_else(|e| panic!("https to {server}: {e}"));
        traffic::udp(
            &clinic.ns,
            &servers.ns,
            servers.addr(v6),
            53,
            traffic::ALLOWED,
        )
        .unwrap_or_else(|e| panic!("dns to {server}: {e}"));
        assert!(
            traffic::tcp(
                &clinic.ns,
                &servers.ns,
                servers.addr(v6),
                22,
                traffic::BLOCKED
            )
            .is_err(),
            "ssh to {server} is not allowed"
        );
    }
    let forwarded = gateway.counter(counter::FAST_FORWARDED).unwrap();
    assert!(
        forwarded >= 20,
        "only {forwarded} packets took the fast path"
    );
    // Fallbacks: TTL 1 goes to the stack, which answers time exceeded...
    let (_, out) = ping_output(
        &clinic.ns,
        &[
            "-n",
            "-c",
            "1",
            "-t",
            "1",
            "-W",
            "2",
            &servers.v4().to_string(),
        ],
    );
    assert!(out.contains("Time to live exceeded"), "ping -t 1: {out}");
    // ...and the gateway's own address is delivered locally.
    let gw = clinic.gw_addrs[0].to_string();
    let (ok, out) = ping_output(&clinic.ns, &["-n", "-c", "1", "-W", "2", &gw]);
    assert!(ok, "ping the gateway {gw}: {out}");
    assert!(gateway.counter(counter::FAST_TO_STACK).unwrap() > 0);
    drop(host_programs);
}
