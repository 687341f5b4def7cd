//! End to end on a namespace hospital running `examples/hospital.ward`:
//! allowed flows connect (their replies pass), forbidden ones do not, over
//! IPv4 and IPv6; the failsafe lets SSH reach the gateway itself whatever the
//! policy says.

use std::{net::IpAddr, time::Duration};

use wardgate_tests::{
    agent::{Agent, PinDir, TempDir},
    enforcer::ready_hosts_for_redirects,
    netns::{Netns, Topology},
    privilege, traffic,
};

use crate::{metric, repo, xdp_attached};

fn hospital() -> Topology {
    Topology::builder()
        .host("imaging", &["10.20.0.11/23", "2001:db8:20::11/64"])
        .host("pacs", &["10.30.0.10/24", "2001:db8:30::10/64"])
        .host("ehr", &["10.50.0.10/24", "2001:db8:50::10/64"])
        .host("guest", &["192.168.100.10/22"])
        .host("internet", &["198.51.100.10/24", "2001:db8:ffff::10/64"])
        .build()
        .expect("building the hospital")
}

struct Case {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    v6: bool,
    port: u16,
    allowed: bool,
}

const fn case(
    what: &'static str,
    from: &'static str,
    to: &'static str,
    v6: bool,
    port: u16,
    allowed: bool,
) -> Case {
    Case {
        what,
        from,
        to,
        v6,
        port,
        allowed,
    }
}

const CASES: &[Case] = &[
    case(
        "modality stores a study",
        "imaging",
        "pacs",
        false,
        104,
        true,
    ),
    case(
        "modality stores a study (v6)",
        "imaging",
        "pacs",
        true,
        104,
        true,
    ),
    case("viewer in the record", "ehr", "pacs", false, 443, true),
    case("viewer in the record (v6)", "ehr", "pacs", true, 443, true),
    case("guest internet", "guest", "internet", false, 443, true),
    case("ssh to pacs", "imaging", "pacs", false, 22, false),
    case("ssh to pacs (v6)", "imaging", "pacs", true, 22, false),
    case(
        "pacs opens to a modality",
        "pacs",
        "imaging",
        false,
        104,
        false,
    ),
    case("guest to a modality", "guest", "imaging", false, 104, false),
    case(
        "medical device to the internet",
        "imaging",
        "internet",
        false,
        443,
        false,
    ),
    case(
        "medical device to the internet (v6)",
        "imaging",
        "internet",
        true,
        443,
        false,
    ),
    case("internet to pacs", "internet", "pacs", false, 443, false),
    case(
        "internet to the record (v6)",
        "internet",
        "ehr",
        true,
        443,
        false,
    ),
];

type Flow<'a> = (String, &'a Netns, &'a Netns, IpAddr, u16, bool);

/// Runs flows in parallel waves (no two in a wave share a server socket);
/// returns the failures as text.
fn check(mut flows: Vec<Flow<'_>>) -> Vec<String> {
    let mut failures = Vec::new();
    while !flows.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let (wave, rest): (Vec<_>, Vec<_>) =
            flows.into_iter().partition(|f| seen.insert((f.3, f.4)));
        failures.extend(check_wave(wave));
        flows = rest;
    }
    failures
}

fn check_wave(flows: Vec<Flow<'_>>) -> Vec<String> {
    std::thread::scope(|s| {
        let handles: Vec<_> = flows
            .into_iter()
            .map(|(what, client, server, addr, port, allowed)| {
                s.spawn(move || {
                    let timeout = if allowed {
                        traffic::ALLOWED
                    } else {
                        traffic::BLOCKED
                    };
                    let result = traffic::tcp(client, server, addr, port, timeout);
                    if let Err(e) = &result {
                        assert!(!e.starts_with("server did not start"), "{what}: {e}");
                    }
                    match (allowed, result) {
                        (true, Err(e)) => Some(format!("{what}: expected to connect: {e}")),
                        (false, Ok(())) => Some(format!("{what}: expected to be blocked")),
                        _ => None,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("flow thread"))
            .collect()
    })
}

#[test]
fn hospital_end_to_end_ipv4_and_ipv6() {
    if !privilege::kernel_tests_can_run("hospital_end_to_end_ipv4_and_ipv6") {
        return;
    }
    hospital_end_to_end(false);
}

/// The same flows with `--fast-path`: verdicts do not change, and allowed
/// traffic is forwarded by XDP itself.
#[test]
fn hospital_end_to_end_with_the_fast_path() {
    let test = "hospital_end_to_end_with_the_fast_path";
    if !privilege::kernel_tests_can_run(test) || !privilege::tool_available(test, "ethtool") {
        return;
    }
    hospital_end_to_end(true);
}

fn hospital_end_to_end(fast_path: bool) {
    let topo = hospital();
    let _host_programs = if fast_path {
        ready_hosts_for_redirects(&topo)
    } else {
        Vec::new()
    };
    let dir = TempDir::new();
    let pins = PinDir::new();
    let ifaces = topo.gateway_ifaces();
    let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
    let agent = Agent::start(
        &topo.gateway,
        &dir,
        &pins,
        &repo("examples/hospital.ward"),
        &ifaces,
        if fast_path { &["--fast-path"] } else { &[] },
    );
    for iface in &ifaces {
        assert!(xdp_attached(&topo, iface), "{iface}: no XDP program");
    }
    let status = agent.status();
    assert_eq!(
        status["interfaces"].as_array().map(Vec::len),
        Some(ifaces.len())
    );

    let mut flows = Vec::new();
    for c in CASES {
        let (from, to) = (topo.host(c.from), topo.host(c.to));
        flows.push((
            c.what.to_owned(),
            &from.ns,
            &to.ns,
            to.addr(c.v6),
            c.port,
            c.allowed,
        ));
    }
    // The failsafe: SSH to the gateway's own address on the PACS link passes
    // although guest -> pacs is forbidden; another port to it does not.
    let pacs_gw_v4 = topo.host("pacs").gw_addrs[0];
    let pacs_gw_v6 = topo.host("pacs").gw_addrs[1];
    let guest = &topo.host("guest").ns;
    let imaging = &topo.host("imaging").ns;
    flows.push((
        "failsafe ssh to the gateway".into(),
        guest,
        &topo.gateway,
        pacs_gw_v4,
        22,
        true,
    ));
    flows.push((
        "failsafe ssh to the gateway (v6)".into(),
        imaging,
        &topo.gateway,
        pacs_gw_v6,
        22,
        true,
    ));
    flows.push((
        "telnet to the gateway".into(),
        guest,
        &topo.gateway,
        pacs_gw_v4,
        23,
        false,
    ));
    let failures = check(flows);
    assert!(
        failures.is_empty(),
        "{}\n--- agent log ---\n{}",
        failures.join("\n"),
        agent.log_text()
    );
    let status = agent.status();
    assert_eq!(status["fast_path"].as_bool(), Some(fast_path), "{status}");
    let forwarded = metric(
        &agent.metrics(&topo.gateway),
        "wardgate_datapath_total",
        &[("counter", "fast_forwarded")],
    );
    if fast_path {
        assert!(
            forwarded >= 20.0,
            "only {forwarded} packets took the fast path"
        );
    } else {
        assert_eq!(forwarded, 0.0);
    }
    assert!(status["failsafe"]["entries"].as_u64().unwrap_or(0) >= 2 * ifaces.len() as u64);
    assert!(status["summary"]["passed"].as_u64().unwrap_or(0) > 0);
    assert!(
        status["summary"]["dropped"].as_u64().unwrap_or(0) >= 9,
        "{status}"
    );
    drop(agent);
    // Killing the agent leaves enforcement; the pin directory goes on drop.
    assert!(pins.has_maps());
    drop(pins);
    std::thread::sleep(Duration::from_millis(50));
    for iface in &ifaces {
        assert!(
            !xdp_attached(&topo, iface),
            "{iface}: still attached after cleanup"
        );
    }
}

#[test]
fn failsafe_can_be_turned_off_and_moved() {
    if !privilege::kernel_tests_can_run("failsafe_can_be_turned_off_and_moved") {
        return;
    }
    let topo = crate::two_hosts();
    let dir = TempDir::new();
    let policy = dir.write("p.ward", crate::TWO_ZONES);
    let gw_addr = topo.host("client").gw_addrs[0];
    // servers -> clients is forbidden; the gateway's client-side address is in `clients`.
    let server = &topo.host("server").ns;
    {
        let pins = PinDir::new();
        let _agent = Agent::start(
            &topo.gateway,
            &dir,
            &pins,
            &policy,
            &["gw0", "gw1"],
            &["--failsafe-port", "tcp/2222"],
        );
        assert!(traffic::tcp(server, &topo.gateway, gw_addr, 2222, traffic::ALLOWED).is_ok());
        assert!(traffic::tcp(server, &topo.gateway, gw_addr, 22, traffic::BLOCKED).is_err());
    }
    {
        let pins = PinDir::new();
        let _agent = Agent::start(
            &topo.gateway,
            &dir,
            &pins,
            &policy,
            &["gw0", "gw1"],
            &["--no-failsafe"],
        );
        assert!(traffic::tcp(server, &topo.gateway, gw_addr, 22, traffic::BLOCKED).is_err());
    }
}
