//! Metrics and the event log reflect the traffic sent: counts, not presence.

use std::time::Duration;

use wardgate_tests::{
    agent::{Agent, PinDir, TempDir},
    flows::udp_flows,
    privilege,
};

use crate::{metric, two_hosts};

const POLICY: &str = r#"
zone clients { networks 10.1.0.0/24, 2001:db8:1::/64 }
zone servers { networks 10.2.0.0/24, 2001:db8:2::/64 }
allow clients -> servers : udp/5000
deny clients -> servers : udp/6000 "no syslog"
"#;

#[test]
fn metrics_and_events_count_the_traffic() {
    if !privilege::kernel_tests_can_run("metrics_and_events_count_the_traffic") {
        return;
    }
    let topo = two_hosts();
    let dir = TempDir::new();
    let pins = PinDir::new();
    let policy = dir.write("policy.ward", POLICY);
    let agent = Agent::start(&topo.gateway, &dir, &pins, &policy, &["gw0", "gw1"], &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    let allow_at = format!("{}:4", policy.display());
    let deny_at = format!("{}:5", policy.display());
    let before = agent.metrics(&topo.gateway);

    const ALLOWED: usize = 7;
    const DENIED: usize = 5;
    const DEFAULT: usize = 3;
    assert_eq!(
        udp_flows(&client.ns, &server.ns, server.v4(), 5000, ALLOWED).unwrap(),
        ALLOWED
    );
    assert_eq!(
        udp_flows(&client.ns, &server.ns, server.v6(), 6000, DENIED).unwrap(),
        0
    );
    assert_eq!(
        udp_flows(&client.ns, &server.ns, server.v4(), 6001, DEFAULT).unwrap(),
        0
    );

    let events = agent.events(Duration::from_millis(600));
    let after = agent.metrics(&topo.gateway);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };

    assert_eq!(
        delta(
            "wardgate_rule_verdicts_total",
            &[("location", &allow_at), ("action", "allow")]
        ),
        ALLOWED as f64,
        "{after}"
    );
    assert_eq!(
        delta(
            "wardgate_rule_verdicts_total",
            &[
                ("location", &deny_at),
                ("action", "deny"),
                ("from", "clients"),
                ("to", "servers")
            ]
        ),
        DENIED as f64,
        "{after}"
    );
    assert_eq!(
        delta("wardgate_drops_total", &[("reason", "policy")]),
        (DENIED + DEFAULT) as f64,
        "{after}"
    );
    assert_eq!(
        delta("wardgate_passes_total", &[("reason", "rule")]),
        ALLOWED as f64,
        "{after}"
    );
    assert_eq!(
        delta("wardgate_events_written_total", &[("verdict", "drop")]),
        (DENIED + DEFAULT) as f64,
        "{after}"
    );
    assert_eq!(
        delta("wardgate_tracked_connections", &[("state", "new")]),
        ALLOWED as f64,
        "{after}"
    );
    assert_eq!(metric(&after, "wardgate_events_lost_total", &[]), 0.0);
    assert_eq!(
        metric(
            &after,
            "wardgate_interface_attached",
            &[("interface", "gw0"), ("mode", "driver")]
        ),
        1.0,
        "{after}"
    );
    let status = agent.status();
    assert_eq!(
        metric(&after, "wardgate_policy_generation", &[]),
        status["policy"]["generation"].as_f64().unwrap()
    );
    let hash = status["policy"]["hash"].as_str().unwrap();
    assert_eq!(
        metric(&after, "wardgate_policy_info", &[("hash", hash)]),
        1.0,
        "{after}"
    );

    let denied: Vec<_> = events.iter().filter(|e| e["dst_port"] == 6000).collect();
    assert_eq!(denied.len(), DENIED, "{events:#?}");
    for e in &denied {
        assert_eq!(e["verdict"], "drop");
        assert_eq!(e["reason"], "policy");
        assert_eq!(e["protocol"], "udp");
        assert_eq!(e["src"], client.v6().to_string());
        assert_eq!(e["dst"], server.v6().to_string());
        assert_eq!(e["src_zone"], "clients");
        assert_eq!(e["dst_zone"], "servers");
        assert_eq!(e["interface"], "gw0");
        assert_eq!(e["rule"]["action"], "deny");
        assert_eq!(e["rule"]["line"], 5);
        assert!(e["rule"]["text"].as_str().unwrap().contains("no syslog"));
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    let defaulted: Vec<_> = events.iter().filter(|e| e["dst_port"] == 6001).collect();
    assert_eq!(defaulted.len(), DEFAULT, "{events:#?}");
    assert!(
        defaulted
            .iter()
            .all(|e| e["rule"].is_null() && e["src"] == client.v4().to_string())
    );
    assert_eq!(
        events.len(),
        DENIED + DEFAULT,
        "unexpected events: {events:#?}"
    );
}
