//! The harness itself works: topologies build and tear down, traffic helpers
//! tell a working flow from a broken one.

use wardgate_tests::{
    netns::{Netns, Topology},
    privilege, traffic,
};

#[test]
fn namespaces_are_deleted_on_drop_even_on_panic() {
    if !privilege::kernel_tests_can_run("namespaces_are_deleted_on_drop_even_on_panic") {
        return;
    }
    let name = std::panic::catch_unwind(|| {
        let ns = Netns::new("panic").unwrap();
        let name = ns.name().to_owned();
        assert!(std::path::Path::new(&format!("/run/netns/{name}")).exists());
        std::panic::panic_any(name);
    })
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    assert!(
        !std::path::Path::new(&format!("/run/netns/{name}")).exists(),
        "{name} survived the panic"
    );
}

#[test]
fn traffic_helpers_see_working_and_broken_flows() {
    if !privilege::kernel_tests_can_run("traffic_helpers_see_working_and_broken_flows")
        || !privilege::tool_available("traffic_helpers_see_working_and_broken_flows", "ping")
    {
        return;
    }
    let topo = Topology::builder()
        .host("a", &["10.99.1.10/24", "2001:db8:99:1::10/64"])
        .host("b", &["10.99.2.10/24", "2001:db8:99:2::10/64"])
        .build()
        .unwrap();
    let (a, b) = (topo.host("a"), topo.host("b"));
    for v6 in [false, true] {
        traffic::tcp(&a.ns, &b.ns, b.addr(v6), 8080, traffic::ALLOWED).unwrap();
        traffic::udp(&a.ns, &b.ns, b.addr(v6), 5353, traffic::ALLOWED).unwrap();
        traffic::ping(&a.ns, b.addr(v6), traffic::ALLOWED).unwrap();
    }
    // Break the route: every helper must now report failure, within its timeout.
    a.ns.ip(&["route", "del", "default"]).unwrap();
    let started = std::time::Instant::now();
    assert!(traffic::tcp(&a.ns, &b.ns, b.v4(), 8080, traffic::BLOCKED).is_err());
    assert!(traffic::udp(&a.ns, &b.ns, b.v4(), 5353, traffic::BLOCKED).is_err());
    assert!(traffic::ping(&a.ns, b.v4(), traffic::BLOCKED).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
