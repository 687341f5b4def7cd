//! `kill -9` of the agent under traffic: enforcement stays (allowed flows
//! keep flowing, forbidden ones stay blocked), a restarted agent adopts the
//! pinned state without a gap, tracked connections survive; a stopped agent
//! leaves enforcement in place until `detach`.

use std::time::Duration;

use wardgate_tests::{
    agent::Agent,
    flows::{EchoSession, UdpStream},
    privilege, traffic,
};

use crate::{Started, TWO_ZONES, start_on_two_hosts, xdp_attached};

#[test]
fn kill_9_keeps_enforcing_and_a_new_agent_adopts() {
    if !privilege::kernel_tests_can_run("kill_9_keeps_enforcing_and_a_new_agent_adopts") {
        return;
    }
    let Started {
        topo,
        dir,
        pins,
        policy,
        agent,
    } = start_on_two_hosts("policy.ward", TWO_ZONES, &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));

    let mut session = EchoSession::open(&client.ns, &server.ns, server.v4(), 7000).unwrap();
    session.exchange(traffic::ALLOWED).unwrap();
    let stream = UdpStream::start(
        &client.ns,
        &server.ns,
        server.v6(),
        5000,
        Duration::from_millis(1),
    )
    .unwrap();
    let from = stream.wait_flowing(Duration::from_secs(5)).unwrap();

    agent.kill9();
    assert!(pins.has_maps(), "maps unpinned by a killed agent");
    assert_eq!(pins.links(), vec!["gw0".to_owned(), "gw1".to_owned()]);
    assert!(xdp_attached(&topo, "gw0") && xdp_attached(&topo, "gw1"));
    // Nobody runs: the tracked connection goes on, a new allowed one works,
    // a forbidden one stays blocked (both ways).
    session
        .exchange(traffic::ALLOWED)
        .expect("tracked connection while no agent runs");
    traffic::tcp(&client.ns, &server.ns, server.v4(), 7001, traffic::ALLOWED)
        .expect("allowed flow while no agent runs");
    assert!(
        traffic::tcp(&client.ns, &server.ns, server.v4(), 7002, traffic::BLOCKED).is_err(),
        "forbidden flow passed while no agent runs"
    );
    assert!(
        traffic::tcp(&server.ns, &client.ns, client.v4(), 7000, traffic::BLOCKED).is_err(),
        "reverse flow passed while no agent runs"
    );

    // A map an older release pinned and this one no longer uses: the new
    // agent unpins it once its program runs everywhere.
    let retired = pins.path.join(wardgate_common::maps::RETIRED[0]);
    aya::maps::MapData::from_pin(pins.path.join(wardgate_common::maps::COUNTERS))
        .unwrap()
        .pin(&retired)
        .unwrap();
    let agent = Agent::start(&topo.gateway, &dir, &pins, &policy, &["gw0", "gw1"], &[]);
    assert!(!retired.exists(), "a retired map is still pinned");
    let status = agent.status();
    assert_eq!(status["adopted"].as_bool(), Some(true), "{status}");
    for iface in status["interfaces"].as_array().unwrap() {
        assert_eq!(iface["adopted"].as_bool(), Some(true), "{status}");
    }
    session
        .exchange(traffic::ALLOWED)
        .expect("tracked connection after adoption");
    assert!(
        status["summary"]["tracked_connections"]
            .as_u64()
            .unwrap_or(0)
            >= 2,
        "{status}"
    );
    assert!(traffic::tcp(&client.ns, &server.ns, server.v4(), 7002, traffic::BLOCKED).is_err());
    std::thread::sleep(Duration::from_millis(50));
    let (sent, got) = stream.finish();
    let lost = missing_ranges(from, sent, &got);
    assert!(
        lost.is_empty(),
        "the UDP stream lost packets across kill -9 and adoption: {lost:?} of {from}..{sent}"
    );

    // A graceful stop leaves enforcement too; `detach` (no agent running) removes it.
    let exit = agent.stop();
    assert!(exit.success(), "{exit}");
    assert!(traffic::tcp(&client.ns, &server.ns, server.v4(), 7002, traffic::BLOCKED).is_err());
    let out = std::process::Command::new(wardgate_tests::agent::binary())
        .args(["detach", "--socket"])
        .arg(dir.path.join("nobody.sock"))
        .arg("--pin-path")
        .arg(&pins.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no agent is listening"));
    assert!(!pins.path.exists());
    assert!(!xdp_attached(&topo, "gw0") && !xdp_attached(&topo, "gw1"));
    assert!(
        traffic::tcp(&client.ns, &server.ns, server.v4(), 7002, traffic::ALLOWED).is_ok(),
        "still enforcing after detach"
    );
}

#[test]
fn detach_through_the_running_agent() {
    if !privilege::kernel_tests_can_run("detach_through_the_running_agent") {
        return;
    }
    let Started {
        topo,
        dir: _dir,
        pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", TWO_ZONES, &[]);
    let out = agent.cli(&["detach"]);
    assert!(out.status.success(), "{out:?}");
    let exit = agent.wait_exit(Duration::from_secs(10));
    assert!(exit.success());
    assert!(!pins.path.exists());
    assert!(!xdp_attached(&topo, "gw0") && !xdp_attached(&topo, "gw1"));
}

fn missing_ranges(from: u64, sent: u64, got: &std::collections::BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for s in (from..sent).filter(|s| !got.contains(s)) {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => ranges.push((s, s)),
        }
    }
    ranges
}
