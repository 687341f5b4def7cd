//! Quarantine cuts a host's established TCP connection and new ones at the
//! next packet; lifting it restores both.

use std::time::Duration;

use wardgate_tests::{flows::EchoSession, privilege, traffic};

use crate::{Started, TWO_ZONES, start_on_two_hosts};

#[test]
fn quarantine_cuts_established_and_new_connections() {
    if !privilege::kernel_tests_can_run("quarantine_cuts_established_and_new_connections") {
        return;
    }
    let Started {
        topo,
        dir: _dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", TWO_ZONES, &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    let mut session = EchoSession::open(&client.ns, &server.ns, server.v4(), 7000).unwrap();
    session.exchange(traffic::ALLOWED).unwrap();

    let target = client.v4().to_string();
    let out = agent.cli(&[
        "quarantine",
        "add",
        &target,
        "--reason",
        "ransomware beacon",
    ]);
    assert!(out.status.success(), "{out:?}");
    // The very next packet drops: established and new, IPv4; the host's
    // other address (IPv6) is not quarantined.
    assert!(
        session.exchange(Duration::from_millis(800)).is_err(),
        "established connection survived quarantine"
    );
    assert!(
        traffic::tcp(&client.ns, &server.ns, server.v4(), 7001, traffic::BLOCKED).is_err(),
        "new connection from a quarantined host"
    );
    assert!(traffic::tcp(&client.ns, &server.ns, server.v6(), 7001, traffic::ALLOWED).is_ok());

    let list = agent.cli(&["quarantine", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(&target) && text.contains("ransomware beacon"),
        "{text}"
    );
    let status = agent.status();
    assert_eq!(status["summary"]["quarantined"].as_u64(), Some(1));
    assert!(status["counters"]["drop_quarantine"].as_u64().unwrap_or(0) >= 3);

    let out = agent.cli(&["quarantine", "remove", &target]);
    assert!(out.status.success(), "{out:?}");
    // TCP retransmits what was cut off; the connection carries on.
    session
        .wait_echoes(Duration::from_secs(10))
        .expect("the connection did not recover");
    session
        .exchange(traffic::ALLOWED)
        .expect("the connection did not recover");
    traffic::tcp(&client.ns, &server.ns, server.v4(), 7001, traffic::ALLOWED)
        .expect("new connection after release");
    let list = agent.cli(&["quarantine", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("no address is quarantined"));
}
