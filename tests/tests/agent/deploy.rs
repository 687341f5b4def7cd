//! What the Debian package relies on: the agent runs with exactly the
//! capabilities its systemd unit grants (`agent/debian/wardgate-agent.service`)
//! and with none of them fewer, and it mounts bpffs itself when it is missing.

use std::{path::Path, process::Command, time::Duration};

use wardgate_tests::{
    agent::{Agent, Launch, PinDir, TempDir},
    privilege, traffic,
};

use crate::{TWO_ZONES, repo, two_hosts};

/// The unit's `CapabilityBoundingSet`, checked equal to its `AmbientCapabilities`.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(repo("agent/debian/wardgate-agent.service")).unwrap();
    let value = |key: &str| -> Vec<String> {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the unit"))
            .split_whitespace()
            .map(str::to_lowercase)
            .collect()
    };
    let bounding = value("CapabilityBoundingSet=");
    assert_eq!(bounding, value("AmbientCapabilities="));
    bounding
}

/// `capsh` dropping every capability of this process's bounding set but `keep`.
fn keeping_only(keep: &[String]) -> Vec<String> {
    let print = Command::new("capsh").arg("--print").output().unwrap();
    let text = String::from_utf8_lossy(&print.stdout);
    let all = text
        .lines()
        .find_map(|l| l.strip_prefix("Bounding set ="))
        .expect("capsh --print shows the bounding set");
    let drop: Vec<&str> = all
        .split(',')
        .filter(|c| !keep.iter().any(|k| k == c))
        .collect();
    vec![
        "capsh".into(),
        format!("--drop={}", drop.join(",")),
        "--".into(),
        "-c".into(),
        r#"exec "$0" "$@""#.into(),
    ]
}

#[test]
fn agent_runs_with_only_the_units_capabilities() {
    if !privilege::kernel_tests_can_run("agent_runs_with_only_the_units_capabilities")
        || !privilege::tool_available("agent_runs_with_only_the_units_capabilities", "capsh")
    {
        return;
    }
    let caps = unit_capabilities();
    assert_eq!(caps, ["cap_bpf", "cap_net_admin", "cap_perfmon"]);
    let topo = two_hosts();
    let dir = TempDir::new();
    let pins = PinDir::new();
    let policy = dir.write("policy.ward", TWO_ZONES);
    // Each capability is needed: without it the agent refuses to start.
    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let failed = Agent::start_failing_with(
            &topo.gateway,
            &dir,
            &pins,
            &policy,
            &["gw0", "gw1"],
            &["--metrics", "off"],
            &Launch {
                wrapper: keeping_only(&fewer),
                ..Launch::default()
            },
        );
        assert_eq!(
            failed.status.code(),
            Some(1),
            "without {missing}: {failed:?}"
        );
        assert!(!pins.has_maps(), "without {missing}: maps left pinned");
    }
    // With exactly these it enforces, serves status and metrics, and a
    // second agent adopts the pinned state.
    for round in ["first start", "adoption"] {
        let agent = Agent::start_with(
            &topo.gateway,
            &dir,
            &pins,
            &policy,
            &["gw0", "gw1"],
            &[],
            &Launch {
                wrapper: keeping_only(&caps),
                ..Launch::default()
            },
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).unwrap();
        let eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        // CAP_NET_ADMIN (12), CAP_PERFMON (38), CAP_BPF (39).
        assert_eq!(
            eff.split_whitespace().nth(1),
            Some("000000c000001000"),
            "{round}: {eff}"
        );
        let (client, server) = (topo.host("client"), topo.host("server"));
        traffic::udp(
            &client.ns,
            &server.ns,
            server.v4(),
            5000,
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("{round}: udp/5000: {e}"));
        assert!(
            traffic::udp(
                &client.ns,
                &server.ns,
                server.v4(),
                5999,
                Duration::from_millis(500)
            )
            .is_err(),
            "{round}: udp/5999 passes"
        );
        assert_eq!(agent.status()["interfaces"].as_array().unwrap().len(), 2);
        assert!(
            agent
                .metrics(&topo.gateway)
                .contains("wardgate_policy_generation")
        );
        agent.stop();
    }
}

#[test]
fn agent_mounts_bpffs_when_missing() {
    if !privilege::kernel_tests_can_run("agent_mounts_bpffs_when_missing") {
        return;
    }
    let topo = two_hosts();
    let dir = TempDir::new();
    // The pin path is under /sys/fs/bpf, where the agent's private mount
    // namespace has a tmpfs instead of bpffs.
    let pins = PinDir::new();
    let policy = dir.write("policy.ward", TWO_ZONES);
    let agent = Agent::start_with(
        &topo.gateway,
        &dir,
        &pins,
        &policy,
        &["gw0", "gw1"],
        &[],
        &Launch {
            tmpfs: Some((Path::new("/sys/fs/bpf").to_path_buf(), "1m".into())),
            ..Launch::default()
        },
    );
    let log = agent.log_text();
    assert!(log.contains("mounted bpffs on /sys/fs/bpf"), "{log}");
    let (client, server) = (topo.host("client"), topo.host("server"));
    traffic::udp(
        &client.ns,
        &server.ns,
        server.v4(),
        5000,
        Duration::from_secs(2),
    )
    .expect("udp/5000 passes");
    assert!(
        traffic::udp(
            &client.ns,
            &server.ns,
            server.v4(),
            5999,
            Duration::from_millis(500)
        )
        .is_err(),
        "udp/5999 passes: not enforcing"
    );
    // The pins live in the agent's mount namespace: not in ours.
    assert!(!pins.has_maps());
}
