//! The agent under fire (issue 17): it fails closed on bad policy files,
//! never detaches by mistake, keeps its sockets bounded, and answers
//! incident commands during an event flood.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use wardgate_agent::control::{self, Request};
use wardgate_tests::{
    agent::{Agent, Launch, PinDir, TempDir},
    flows::{UdpFlood, UdpStream},
    privilege, traffic,
};

use crate::{Started, metric, start_on_two_hosts, two_hosts, xdp_attached};

/// Allows udp/5000 only; udp/6000 is the denied flow the tests watch.
const ONLY_5000: &str = r#"
zone clients { networks 10.1.0.0/24, 2001:db8:1::/64 }
zone servers { networks 10.2.0.0/24, 2001:db8:2::/64 }
allow clients -> servers : udp/5000
"#;

#[test]
fn a_policy_rewritten_in_place_by_a_slow_writer_never_opens_a_denied_flow() {
    if !privilege::kernel_tests_can_run("slow_in_place_writer") {
        return;
    }
    let Started {
        topo,
        dir: _dir,
        pins: _pins,
        policy,
        agent,
    } = start_on_two_hosts("policy.ward", ONLY_5000, &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    let denied = UdpStream::start(
        &client.ns,
        &server.ns,
        server.v4(),
        6000,
        Duration::from_millis(2),
    )
    .unwrap();
    // `(sleep 1.5; cat good.ward) > policy.ward`: truncated in place, empty
    // for 1.5 s, then written.
    {
        let mut f = std::fs::File::create(&policy).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        f.write_all(ONLY_5000.as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (sent, got) = denied.finish();
    assert!(sent > 500, "the stream hardly ran ({sent} sent)");
    assert!(
        got.is_empty(),
        "{} of {sent} denied packets passed while the file was rewritten\n{}",
        got.len(),
        agent.log_text()
    );
    let status = agent.status();
    assert!(
        status["reloads"]["failure"].as_u64() >= Some(1),
        "the empty file was not refused: {status}"
    );
    assert!(
        agent.log_text().contains("declares no zone"),
        "{}",
        agent.log_text()
    );
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5000, traffic::ALLOWED).is_ok());
}

#[test]
fn empty_device_fifo_and_zoneless_policies_are_refused_at_start() {
    if !privilege::kernel_tests_can_run("empty_device_fifo_and_zoneless_policies") {
        return;
    }
    let topo = two_hosts();
    let dir = TempDir::new();
    let pins = PinDir::new();
    let fifo = dir.path.join("policy.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let cases = [
        (dir.write("empty.ward", ""), "declares no zone"),
        (
            dir.write("comments.ward", "# nothing here yet\n"),
            "declares no zone",
        ),
        (
            dir.write("services.ward", "service web = tcp/443\n"),
            "declares no zone",
        ),
        ("/dev/null".into(), "not a regular file"),
        ("/dev/zero".into(), "not a regular file"),
        (fifo, "not a regular file"),
    ];
    for (policy, expected) in cases {
        let started = Instant::now();
        let failed = Agent::start_failing(&topo.gateway, &dir, &pins, &policy, &["gw0"], &[]);
        assert_eq!(
            failed.status.code(),
            Some(1),
            "{}: {failed:?}",
            policy.display()
        );
        assert!(
            failed.stderr.contains(expected),
            "{}: {}",
            policy.display(),
            failed.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!pins.has_maps(), "{} left pins", policy.display());
        assert!(!xdp_attached(&topo, "gw0"));
    }
}

/// 20,000 zones: compiling takes seconds in a debug build.
fn big_policy(extra_rule: &str) -> String {
    let mut text = String::from(ONLY_5000);
    for i in 0..20_000 {
        text.push_str(&format!(
            "zone z{i} {{ networks 10.{}.{}.0/24 }}\n",
            100 + i / 256,
            i % 256
        ));
    }
    text.push_str(extra_rule);
    text
}

#[test]
fn an_edit_made_during_a_slow_watched_reload_is_loaded() {
    if !privilege::kernel_tests_can_run("an_edit_made_during_a_slow_watched_reload_is_loaded") {
        return;
    }
    let Started {
        topo,
        dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", ONLY_5000, &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    let generation = agent.status()["policy"]["generation"].as_u64().unwrap();
    dir.write("policy.ward", big_policy(""));
    // The watcher notices within 500 ms, settles 200 ms, then compiles for
    // seconds: the edit lands while it compiles.
    std::thread::sleep(Duration::from_millis(1300));
    dir.write(
        "policy.ward",
        big_policy("allow clients -> servers : udp/6000\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if traffic::udp(
            &client.ns,
            &server.ns,
            server.v4(),
            6000,
            Duration::from_millis(300),
        )
        .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edit made during the reload was never loaded\n{}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(agent.status()["policy"]["generation"].as_u64().unwrap() > generation);
}

#[test]
fn a_reload_failing_on_too_many_open_files_is_retried() {
    if !privilege::kernel_tests_can_run("a_reload_failing_on_too_many_open_files_is_retried") {
        return;
    }
    let Started {
        topo,
        dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", ONLY_5000, &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    // No free descriptor: the lowest free number is the limit (again once
    // the start-up status connection is surely closed).
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        let fds = agent.open_fds();
        let lowest_free = (0..).find(|n| !fds.contains(n)).unwrap();
        agent.set_nofile_limit(lowest_free, None);
    }
    dir.write(
        "policy.ward",
        format!("{ONLY_5000}allow clients -> servers : udp/6000\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent.log_text().contains("Too many open files") {
        assert!(Instant::now() < deadline, "{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 6000, traffic::BLOCKED).is_err());
    // The file does not change again; the agent retries by itself.
    agent.set_nofile_limit(1024, None);
    agent.wait_for_status("the retried reload", |s| {
        s["reloads"]["last_error"].is_null() && s["reloads"]["success"].as_u64() >= Some(1)
    });
    assert!(
        traffic::udp(&client.ns, &server.ns, server.v4(), 6000, traffic::ALLOWED).is_ok(),
        "{}",
        agent.log_text()
    );
}

#[test]
fn detach_with_a_wrong_socket_leaves_a_running_agent_enforcing() {
    if !privilege::kernel_tests_can_run("detach_with_a_wrong_socket") {
        return;
    }
    let Started {
        topo,
        dir,
        pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", ONLY_5000, &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    let pin_path = pins.path.to_str().unwrap().to_owned();
    let typo = dir.path.join("agnet.sock");
    let not_a_socket = dir.write("plain-file", "x");
    for socket in [typo, not_a_socket] {
        let out = std::process::Command::new(wardgate_tests::agent::binary())
            .args(["detach", "--pin-path", &pin_path, "--socket"])
            .arg(&socket)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(stderr.contains("a running agent holds"), "{stderr}");
        assert!(pins.has_maps());
        assert_eq!(pins.links().len(), 2);
    }
    // SIGTERM: the agent's routine stop must leave enforcement in place.
    agent.stop();
    assert!(xdp_attached(&topo, "gw0") && xdp_attached(&topo, "gw1"));
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 6000, traffic::BLOCKED).is_err());
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5000, traffic::ALLOWED).is_ok());
}

#[test]
fn quarantine_changes_while_no_agent_runs() {
    if !privilege::kernel_tests_can_run("quarantine_changes_while_no_agent_runs") {
        return;
    }
    let Started {
        topo,
        dir,
        pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", ONLY_5000, &[]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    agent.stop();
    let gone = dir.path.join("gone.sock");
    let cli = |args: &[&str]| {
        std::process::Command::new(wardgate_tests::agent::binary())
            .args(args)
            .arg("--socket")
            .arg(&gone)
            .arg("--pin-path")
            .arg(&pins.path)
            .output()
            .unwrap()
    };
    let out = cli(&["quarantine", "add", "::ffff:10.1.0.10"]);
    assert!(out.status.success(), "{out:?}");
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5000, traffic::BLOCKED).is_err());
    let out = cli(&["quarantine", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let list: control::Value = control::parse_value(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(list[0]["address"], "10.1.0.10", "{list}");
    let out = cli(&["quarantine", "remove", "10.1.0.10"]);
    assert!(out.status.success(), "{out:?}");
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5000, traffic::ALLOWED).is_ok());
    let out = cli(&["quarantine", "remove", "10.1.0.10"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn quarantine_add_answers_within_100_ms_during_an_event_flood() {
    if !privilege::kernel_tests_can_run("quarantine_add_during_an_event_flood") {
        return;
    }
    let Started {
        topo,
        dir: _dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", ONLY_5000, &["--events-per-sec", "1000000"]);
    let server = topo.host("server");
    let floods: Vec<UdpFlood> = ["client", "client"]
        .iter()
        .map(|h| UdpFlood::start(&topo.host(h).ns, server.v4(), 6000))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let mut took = Vec::new();
    for i in 0..10 {
        let addr = format!("10.2.0.{}", 100 + i);
        let started = Instant::now();
        let r = agent.request(&Request::QuarantineAdd {
            address: addr,
            reason: None,
        });
        took.push(started.elapsed());
        assert!(r.ok, "{r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let _ = agent.status();
    let status_took = started.elapsed();
    let sent: u64 = floods.iter().map(UdpFlood::sent).sum();
    drop(floods);
    let status = agent.status();
    took.sort();
    eprintln!(
        "quarantine add under a flood of {sent} datagrams ({} events written): median {:?}, max {:?}; status {status_took:?}",
        status["summary"]["events_written"],
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert!(
        status["summary"]["events_written"].as_u64() > Some(10_000),
        "no flood: {status}"
    );
    assert!(
        took[took.len() / 2] < Duration::from_millis(100),
        "quarantine add took {took:?}"
    );
}

#[test]
fn idle_connections_leave_status_and_metrics_answering() {
    if !privilege::kernel_tests_can_run("idle_connections_leave_status_and_metrics_answering") {
        return;
    }
    raise_own_nofile(16_384);
    let Started {
        topo,
        dir: _dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", ONLY_5000, &[]);
    agent.set_nofile_limit(1024, Some(1024));
    let mut idle_control = Vec::new();
    for _ in 0..2000 {
        idle_control.push(std::os::unix::net::UnixStream::connect(&agent.socket).unwrap());
    }
    let metrics_addr: std::net::SocketAddr = wardgate_tests::agent::METRICS.parse().unwrap();
    let idle_http = topo
        .gateway
        .spawn(move || {
            let mut conns = Vec::new();
            for _ in 0..2000 {
                let mut s = std::net::TcpStream::connect(metrics_addr)?;
                // A slowloris: a request that never ends.
                let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
                conns.push(s);
            }
            Ok(conns)
        })
        .join()
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let status = agent.status();
    let status_took = started.elapsed();
    let page = agent.metrics(&topo.gateway);
    eprintln!(
        "status with 2,000 idle connections on each socket: {status_took:?}; agent fds {}",
        agent.open_fds().len()
    );
    assert!(status["pid"].as_u64().is_some());
    assert!(status_took < Duration::from_secs(2), "{status_took:?}");
    assert!(
        metric(&page, "wardgate_policy_generation", &[]) >= 1.0,
        "{page}"
    );
    assert!(agent.open_fds().len() < 1024);
    // An over-long line gets an error, and the agent stays small.
    // The agent answers after 64 KiB and closes: the rest of the write may fail.
    let mut s = std::os::unix::net::UnixStream::connect(&agent.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&vec![b'x'; 200_000]);
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut answer);
    assert!(answer.contains("at most 65536 bytes"), "{answer:?}");
    drop(idle_control);
    drop(idle_http);
}

fn raise_own_nofile(n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: a valid rlimit; the test process raises its own limit (root).
    #[allow(unsafe_code, reason = "setrlimit(2) for the test's own descriptors")]
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn a_full_event_log_disk_is_counted_as_write_errors() {
    if !privilege::kernel_tests_can_run("a_full_event_log_disk_is_counted_as_write_errors") {
        return;
    }
    let topo = two_hosts();
    let dir = TempDir::new();
    let pins = PinDir::new();
    let policy = dir.write("policy.ward", ONLY_5000);
    let disk = dir.path.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let events = disk.join("events.jsonl");
    let agent = Agent::start_with(
        &topo.gateway,
        &dir,
        &pins,
        &policy,
        &["gw0", "gw1"],
        &[],
        &Launch {
            tmpfs: Some((disk, "64k".into())),
            events: Some(events),
            ..Launch::default()
        },
    );
    let server = topo.host("server");
    let flood = UdpFlood::start(&topo.host("client").ns, server.v4(), 6000);
    std::thread::sleep(Duration::from_secs(2));
    drop(flood);
    std::thread::sleep(Duration::from_millis(500));
    let status = agent.status();
    let written = status["summary"]["events_written"].as_u64().unwrap();
    let failed = status["summary"]["events_write_failed"].as_u64().unwrap();
    assert!(failed > 0, "{status}");
    // Each line is well over 150 bytes: 64 KiB hold fewer than 450.
    assert!(
        written < 450,
        "{written} counted as written on a 64 KiB disk"
    );
    let errors = agent
        .log_text()
        .lines()
        .filter(|l| l.contains("writing the event log failed"))
        .count();
    assert!(
        (1..=2).contains(&errors),
        "{errors} error lines\n{}",
        agent.log_text()
    );
}

#[test]
fn sigusr1_reopens_the_log_without_reloading_and_sighup_reloads() {
    if !privilege::kernel_tests_can_run("sigusr1_reopens_the_log") {
        return;
    }
    let Started {
        topo,
        dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", ONLY_5000, &["--no-watch"]);
    let (client, server) = (topo.host("client"), topo.host("server"));
    let generation = agent.status()["policy"]["generation"].as_u64().unwrap();
    // A staged policy that is not meant to go live yet.
    dir.write(
        "policy.ward",
        format!("{ONLY_5000}allow clients -> servers : udp/6000\n"),
    );
    let rotated = agent.events.with_extension("jsonl.1");
    std::fs::rename(&agent.events, &rotated).unwrap_or_default();
    agent.signal(libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.events.exists(), "the event log was not reopened");
    assert_eq!(
        agent.status()["policy"]["generation"].as_u64(),
        Some(generation),
        "SIGUSR1 reloaded the policy"
    );
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 6000, traffic::BLOCKED).is_err());
    agent.signal(libc::SIGHUP);
    agent.wait_for_status("the SIGHUP reload", |s| {
        s["policy"]["generation"].as_u64() == Some(generation + 1)
    });
}

#[test]
fn an_until_rule_expires_at_utc_midnight() {
    if !privilege::kernel_tests_can_run("an_until_rule_expires_at_utc_midnight") {
        return;
    }
    let topo = two_hosts();
    let dir = TempDir::new();
    let pins = PinDir::new();
    let policy = dir.write(
        "policy.ward",
        format!("{ONLY_5000}allow clients -> servers : udp/6000 until 2026-03-31\n"),
    );
    // The agent's policy clock starts 3 s before midnight (debug builds only).
    let agent = Agent::start_with(
        &topo.gateway,
        &dir,
        &pins,
        &policy,
        &["gw0", "gw1"],
        &[],
        &Launch {
            env: vec![(
                "WARDGATE_AGENT_TEST_NOW".into(),
                "2026-03-31T23:59:57Z".into(),
            )],
            ..Launch::default()
        },
    );
    let (client, server) = (topo.host("client"), topo.host("server"));
    let generation = agent.status()["policy"]["generation"].as_u64().unwrap();
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 6000, traffic::ALLOWED).is_ok());
    agent.wait_for_status("the midnight reload", |s| {
        s["policy"]["generation"].as_u64() == Some(generation + 1)
    });
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 6000, traffic::BLOCKED).is_err());
    assert!(traffic::udp(&client.ns, &server.ns, server.v4(), 5000, traffic::ALLOWED).is_ok());
    assert!(
        agent.log_text().contains("date change"),
        "{}",
        agent.log_text()
    );
}
