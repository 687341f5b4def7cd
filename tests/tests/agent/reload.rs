//! Reloads under load: a flow both policies allow loses no packet across 20
//! switches; a flow the new policy removes stops within one packet; a broken
//! policy changes nothing (reported by `reload`'s exit status, the status and
//! the metrics), whether asked for or noticed by the file watcher.

use std::time::Duration;

use wardgate_agent::control::Request;
use wardgate_tests::{flows::UdpStream, privilege, traffic};

use crate::{Started, TWO_ZONES, metric, start_on_two_hosts};

const POLICY_A: &str = r#"
zone clients { networks 10.1.0.0/24, 2001:db8:1::/64 }
zone servers { networks 10.2.0.0/24, 2001:db8:2::/64 }
allow clients -> servers : udp/5000, udp/6000
"#;

/// 6000 removed; 7000 added so that the images differ in more than one place.
const POLICY_B: &str = r#"
zone clients { networks 10.1.0.0/24, 2001:db8:1::/64 }
zone servers { networks 10.2.0.0/24, 2001:db8:2::/64 }
allow clients -> servers : udp/5000, tcp/7000
"#;

const BROKEN: &str = "zone clients { networks 10.1.0.0/24 \nallow clients -> : udp/5000\n";

#[test]
fn reload_under_load_is_hitless_and_immediate() {
    if !privilege::kernel_tests_can_run("reload_under_load_is_hitless_and_immediate") {
        return;
    }
    let Started {
        topo,
        dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", POLICY_A, &["--no-watch"]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    let interval = Duration::from_micros(500);
    let kept = UdpStream::start(&client.ns, &server.ns, server.v4(), 5000, interval).unwrap();
    let removed = UdpStream::start(&client.ns, &server.ns, server.v4(), 6000, interval).unwrap();
    let from = kept.wait_flowing(Duration::from_secs(5)).unwrap();
    removed.wait_flowing(Duration::from_secs(5)).unwrap();
    let generation = agent.status()["policy"]["generation"].as_u64().unwrap();

    // (to B?, last seq sent before the request, last seq sent when it returned)
    let mut switches = Vec::new();
    for i in 0..20 {
        let to_b = i % 2 == 0;
        dir.write("policy.ward", if to_b { POLICY_B } else { POLICY_A });
        let before = removed.last_sent();
        let result = agent.ok(&Request::Reload {});
        let after = removed.last_sent();
        assert_eq!(
            result["changed"].as_bool(),
            Some(true),
            "reload {i}: {result}"
        );
        switches.push((to_b, before, after));
        std::thread::sleep(Duration::from_millis(40));
    }
    // The last policy is A again: let the removed flow come back, then stop.
    std::thread::sleep(Duration::from_millis(50));
    let (sent_kept, got_kept) = kept.finish();
    let (_, got_removed) = removed.finish();

    let lost: Vec<u64> = (from..sent_kept)
        .filter(|s| !got_kept.contains(s))
        .collect();
    assert!(
        lost.is_empty(),
        "the flow both policies allow lost {} of {sent_kept} packets across 20 reloads (first: {:?})",
        lost.len(),
        lost.iter().take(10).collect::<Vec<_>>()
    );
    // While B is in force (from its reload's return to the next reload's
    // request), no packet of the removed flow passes but the one in flight.
    for pair in switches.windows(2) {
        let ((to_b, _, after_b), (_, before_a, _)) = (pair[0], pair[1]);
        if !to_b {
            continue;
        }
        assert!(
            before_a > after_b + 5,
            "B was in force too briefly to judge"
        );
        let leaked: Vec<u64> = got_removed.range(after_b + 2..=before_a).copied().collect();
        assert!(
            leaked.is_empty(),
            "the removed flow passed after the switch (switch returned at seq {after_b}): {leaked:?}"
        );
    }
    // ... and A lets it through again.
    let (_, _, last_a) = switches[switches.len() - 1];
    assert!(
        got_removed.range(last_a + 2..).next().is_some(),
        "the flow did not come back under policy A"
    );
    let status = agent.status();
    assert_eq!(
        status["policy"]["generation"].as_u64(),
        Some(generation + 20)
    );
    assert_eq!(status["reloads"]["success"].as_u64(), Some(20));
    assert_eq!(status["reloads"]["failure"].as_u64(), Some(0));

    // A broken policy changes nothing and `reload` says so with exit status 1.
    let hash = status["policy"]["hash"].clone();
    dir.write("policy.ward", BROKEN);
    let out = agent.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not compile"), "{stderr}");
    let status = agent.status();
    assert_eq!(status["policy"]["hash"], hash);
    assert_eq!(
        status["policy"]["generation"].as_u64(),
        Some(generation + 20)
    );
    assert_eq!(status["reloads"]["failure"].as_u64(), Some(1));
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 6000, traffic::ALLOWED).is_ok());
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 6001, traffic::BLOCKED).is_err());
}

#[test]
fn watched_file_reloads_and_a_broken_edit_changes_nothing() {
    if !privilege::kernel_tests_can_run("watched_file_reloads_and_a_broken_edit_changes_nothing") {
        return;
    }
    let Started {
        topo,
        dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", TWO_ZONES, &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    let status = agent.status();
    let (hash, generation) = (
        status["policy"]["hash"].clone(),
        status["policy"]["generation"].as_u64().unwrap(),
    );

    dir.write("policy.ward", BROKEN);
    agent.wait_for_status("the failed reload", |s| {
        s["reloads"]["failure"].as_u64() == Some(1)
    });
    let status = agent.status();
    assert_eq!(status["policy"]["hash"], hash);
    assert_eq!(status["policy"]["generation"].as_u64(), Some(generation));
    assert!(
        status["reloads"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("does not compile")
    );
    let page = agent.metrics(&topo.gateway);
    assert_eq!(
        metric(&page, "wardgate_reloads_total", &[("result", "failure")]),
        1.0,
        "{page}"
    );
    assert_eq!(metric(&page, "wardgate_last_reload_success", &[]), 0.0);
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5000, traffic::ALLOWED).is_ok());
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5001, traffic::BLOCKED).is_err());

    // A good edit is picked up without asking.
    dir.write("policy.ward", POLICY_B);
    agent.wait_for_status("the watched reload", |s| {
        s["policy"]["generation"].as_u64() == Some(generation + 1)
    });
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 6000, traffic::BLOCKED).is_err());
    assert!(traffic::tcp(&client.ns, &server.ns, server.v4(), 7000, traffic::ALLOWED).is_ok());
    let page = agent.metrics(&topo.gateway);
    assert_eq!(metric(&page, "wardgate_last_reload_success", &[]), 1.0);
}
