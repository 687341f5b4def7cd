//! Bad input gets a clear error and changes nothing: a missing interface, a
//! corrupt image, a pin path off bpffs, a policy over the datapath's
//! capacity (at start and at reload), bad control requests.

use std::path::Path;

use wardgate_tests::{
    agent::{Agent, PinDir, TempDir},
    enforcer, privilege, traffic,
};

use crate::{Started, TWO_ZONES, start_on_two_hosts, two_hosts, xdp_attached};

/// An image of `TWO_ZONES` whose body has one byte changed.
fn corrupt_image() -> Vec<u8> {
    let mut bytes = enforcer::image(TWO_ZONES).to_bytes();
    let at = bytes
        .iter()
        .rposition(|b| *b == b'7')
        .expect("a 7 in the image");
    bytes[at] = b'8';
    bytes
}

/// An image with a correct content hash but more zones than the datapath holds.
fn over_capacity_image(dir: &TempDir) -> Vec<u8> {
    let bytes = enforcer::image(TWO_ZONES).to_bytes();
    let text = String::from_utf8(bytes).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    let extra = "{\"id\":0,\"name\":\"x\",\"flags\":0,\"criticality\":null,\"tags\":[]},\n"
        .repeat(wardgate_common::maps::MAX_ZONES as usize);
    let body = body.replacen("\"zones\":[\n", &format!("\"zones\":[\n{extra}"), 1);
    assert!(body.len() > text.len(), "the image layout changed: {text}");
    let body_path = dir.write("body", &body);
    let sum = std::process::Command::new("sha256sum")
        .arg(&body_path)
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&sum.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let version = wardgate_compiler::image::IMAGE_VERSION;
    format!("wardgate-image {version} sha256:{hex}\n{body}").into_bytes()
}

fn assert_untouched(pins: &PinDir, topo: &wardgate_tests::netns::Topology) {
    assert!(
        !Path::new(&pins.path).exists(),
        "a failed start left `{}`",
        pins.path.display()
    );
    assert!(
        !xdp_attached(topo, "gw0") && !xdp_attached(topo, "gw1"),
        "a failed start attached XDP"
    );
}

#[test]
fn bad_input_at_start_changes_nothing() {
    if !privilege::kernel_tests_can_run("bad_input_at_start_changes_nothing") {
        return;
    }
    let topo = two_hosts();
    let dir = TempDir::new();
    let good = dir.write("good.ward", TWO_ZONES);
    let pins = PinDir::new();
    let cases: Vec<(&str, std::path::PathBuf, Vec<&str>, &str)> = vec![
        (
            "missing interface",
            good.clone(),
            vec!["gw0", "nope0"],
            "interface `nope0` does not exist",
        ),
        (
            "corrupt image",
            dir.write("corrupt.img", corrupt_image()),
            vec!["gw0", "gw1"],
            "policy image is corrupt",
        ),
        (
            "over capacity",
            dir.write("big.img", over_capacity_image(&dir)),
            vec!["gw0", "gw1"],
            "more than the datapath holds (65536)",
        ),
        (
            "broken source",
            dir.write("broken.ward", "zone { }"),
            vec!["gw0", "gw1"],
            "does not compile",
        ),
        (
            "missing policy",
            dir.path.join("absent.ward"),
            vec!["gw0", "gw1"],
            "cannot read",
        ),
    ];
    for (what, policy, ifaces, expected) in cases {
        let failed = Agent::start_failing(&topo.gateway, &dir, &pins, &policy, &ifaces, &[]);
        assert!(!failed.status.success(), "{what}: started");
        assert!(
            failed.stderr.contains(expected),
            "{what}: expected `{expected}` in:\n{}",
            failed.stderr
        );
        assert!(
            failed.stderr.lines().all(|l| l.len() < 400),
            "{what}: unreadable error:\n{}",
            failed.stderr
        );
        assert_untouched(&pins, &topo);
    }
    let off_bpffs = PinDir {
        path: dir.path.join("pins"),
    };
    let failed = Agent::start_failing(&topo.gateway, &dir, &off_bpffs, &good, &["gw0", "gw1"], &[]);
    assert!(
        failed.stderr.contains("is not on bpffs"),
        "{}",
        failed.stderr
    );
    assert!(!off_bpffs.path.exists());
    assert_untouched(&pins, &topo);
    // Traffic is not filtered: nothing was attached.
    let (client, server) = (topo.host("client"), topo.host("server"));
    assert!(traffic::udp(&server.ns, &client.ns, client.v4(), 9999, traffic::ALLOWED).is_ok());
}

#[test]
fn bad_reloads_and_requests_change_nothing() {
    if !privilege::kernel_tests_can_run("bad_reloads_and_requests_change_nothing") {
        return;
    }
    let Started {
        topo,
        dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts(
        "policy.img",
        enforcer::image(TWO_ZONES).to_bytes(),
        &["--no-watch"],
    );
    let before = agent.status();

    for (what, bytes, expected) in [
        ("corrupt image", corrupt_image(), "policy image is corrupt"),
        (
            "over capacity",
            over_capacity_image(&dir),
            "more than the datapath holds",
        ),
    ] {
        dir.write("policy.img", bytes);
        let out = agent.cli(&["reload"]);
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{what}: {stderr}");
    }
    let answers = agent.raw(&[
        "not json",
        r#"{"command":"frobnicate"}"#,
        r#"{"command":"status","verbose":true}"#,
        r#"{"command":"quarantine-add"}"#,
        r#"{"command":"quarantine-add","address":"10.0.0.0/8"}"#,
        r#"{"command":"quarantine-add","address":"224.0.0.1"}"#,
        r#"{"command":"quarantine-remove","address":"10.2.0.10"}"#,
    ]);
    let expected = [
        "bad request",
        "unknown variant `frobnicate`",
        "unknown field `verbose`",
        "missing field `address`",
        "not an IP address",
        "is not a host address",
        "is not quarantined",
    ];
    for (answer, want) in answers.iter().zip(expected) {
        assert!(
            answer.contains("\"ok\":false") && answer.contains(want),
            "expected `{want}` in {answer}"
        );
    }
    let out = agent.cli(&["quarantine", "add", "banana"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`banana` is not an IP address"));

    let after = agent.status();
    assert_eq!(after["policy"]["hash"], before["policy"]["hash"]);
    assert_eq!(
        after["policy"]["generation"],
        before["policy"]["generation"]
    );
    assert_eq!(after["summary"]["quarantined"].as_u64(), Some(0));
    assert_eq!(after["reloads"]["failure"].as_u64(), Some(2));
    let (client, server) = (topo.host("client"), topo.host("server"));
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5000, traffic::ALLOWED).is_ok());
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5001, traffic::BLOCKED).is_err());
}
