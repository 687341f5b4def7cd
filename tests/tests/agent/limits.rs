//! Bounded by design (issue 17, items 8 to 15): a full connection table and
//! oversized control lines stay cheap, the quarantine says when it is full
//! and treats IPv4-mapped forms as their IPv4 address, the event log keeps
//! its size budget, and the smaller operator-facing behaviours.

use std::{
    io::{Read as _, Write as _},
    os::unix::fs::PermissionsExt as _,
    process::Command,
    time::{Duration, Instant},
};

use wardgate_agent::{control::Request, eventlog::Clock, quarantine};
use wardgate_common::{CT_ESTABLISHED, CtEntry, CtKey, IPPROTO_TCP, maps};
use wardgate_tests::{
    agent::{Agent, Launch, METRICS, PinDir, binary},
    flows::UdpFlood,
    privilege,
};

use crate::{Started, TWO_ZONES, metric, start_on_two_hosts, two_hosts};

fn pinned_map(pins: &PinDir, name: &str) -> aya::maps::Map {
    let data = aya::maps::MapData::from_pin(pins.path.join(name)).expect("opening a pinned map");
    aya::maps::Map::from_map_data(data).expect("a map")
}

/// The agent's resident memory in KiB.
fn rss_kib(agent: &Agent) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", agent.pid()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_full_connection_table_and_oversized_lines_stay_cheap() {
    if !privilege::kernel_tests_can_run("a_full_connection_table_and_oversized_lines_stay_cheap") {
        return;
    }
    let Started {
        topo,
        dir: _dir,
        pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", TWO_ZONES, &[]);
    let mut table: aya::maps::HashMap<_, CtKey, CtEntry> =
        aya::maps::HashMap::try_from(pinned_map(&pins, maps::CONNTRACK)).unwrap();
    let now = Clock::monotonic_now();
    for i in 0..maps::MAX_CONNECTIONS {
        let mut key = CtKey {
            proto: IPPROTO_TCP,
            sport: (i % 60_000) as u16 + 1024,
            dport: 443,
            ..CtKey::default()
        };
        key.src[..4].copy_from_slice(&(i / 60_000).to_be_bytes());
        let entry = CtEntry {
            last_seen_ns: now,
            state: CT_ESTABLISHED,
            ..CtEntry::default()
        };
        let _ = table.insert(key, entry, 0);
    }
    // The walk runs on its own thread; wait for it to see the table.
    let filled = Instant::now();
    while agent.status()["summary"]["tracked_connections"].as_u64() < Some(200_000) {
        assert!(
            filled.elapsed() < Duration::from_secs(60),
            "the walk never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "first walk of the full table seen after {:?}",
        filled.elapsed()
    );
    let mut status_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let _ = agent.status();
        status_times.push(started.elapsed());
    }
    // Four scrapers at once, and an incident command among them.
    let scrapers: Vec<_> = (0..4)
        .map(|_| {
            let addr: std::net::SocketAddr = METRICS.parse().unwrap();
            topo.gateway.spawn(move || {
                let started = Instant::now();
                for _ in 0..3 {
                    let mut s = std::net::TcpStream::connect(addr)?;
                    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
                    let mut page = String::new();
                    s.read_to_string(&mut page)?;
                }
                Ok(started.elapsed())
            })
        })
        .collect();
    let started = Instant::now();
    let r = agent.request(&Request::QuarantineAdd {
        address: "10.2.0.99".into(),
        reason: None,
    });
    let add_took = started.elapsed();
    assert!(r.ok, "{r:?}");
    for s in scrapers {
        s.join().unwrap().unwrap();
    }
    let status = agent.status();
    eprintln!(
        "with {} tracked connections: status {status_times:?}; quarantine add among 4 scrapers {add_took:?}",
        status["summary"]["tracked_connections"]
    );
    status_times.sort();
    assert!(
        status_times[2] < Duration::from_millis(500),
        "status took {status_times:?}"
    );
    assert!(add_took < Duration::from_millis(500), "{add_took:?}");
    assert!(
        status["summary"]["tracked_connections"].as_u64() > Some(200_000),
        "{status}"
    );

    // Ten 100 MB lines: each is refused after 64 KiB; memory stays flat.
    let before = rss_kib(&agent);
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..10 {
        let mut s = std::os::unix::net::UnixStream::connect(&agent.socket).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..100 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib(&agent);
    eprintln!("agent RSS before ten 100 MB control lines {before} KiB, after {after} KiB");
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    assert!(agent.status()["pid"].as_u64().is_some());
}

#[test]
fn quarantine_normalises_mapped_addresses_and_says_when_it_is_full() {
    if !privilege::kernel_tests_can_run("quarantine_normalises_and_says_when_full") {
        return;
    }
    let Started {
        topo: _topo,
        dir: _dir,
        pins,
        policy: _,
        agent,
    } = start_on_two_hosts("policy.ward", TWO_ZONES, &[]);
    for bad in ["::ffff:0.0.0.0", "::ffff:127.0.0.1", "::ffff:224.0.0.1"] {
        let r = agent.request(&Request::QuarantineAdd {
            address: bad.into(),
            reason: None,
        });
        assert!(!r.ok, "{bad} was accepted");
    }
    let added = agent.ok(&Request::QuarantineAdd {
        address: "::ffff:10.2.0.10".into(),
        reason: None,
    });
    assert_eq!(added["address"], "10.2.0.10");
    let list = agent.ok(&Request::QuarantineList {});
    assert_eq!(list[0]["address"], "10.2.0.10", "{list}");
    agent.ok(&Request::QuarantineRemove {
        address: "10.2.0.10".into(),
    });

    // Fill the pinned set to its capacity, then ask for one more.
    let mut pinned = quarantine::Pinned::open(&pins.path).unwrap();
    for i in 0..maps::MAX_QUARANTINE {
        let addr = std::net::Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | (u128::from(i) + 1),
        );
        pinned.add(addr.into()).unwrap();
    }
    let r = agent.request(&Request::QuarantineAdd {
        address: "10.2.0.11".into(),
        reason: None,
    });
    assert_eq!(
        r.error.as_deref(),
        Some("quarantine is full (65536 addresses); `10.2.0.11` was not quarantined"),
        "{r:?}"
    );
}

#[test]
fn the_event_log_is_0640_and_keeps_its_size_budget() {
    if !privilege::kernel_tests_can_run("the_event_log_keeps_its_size_budget") {
        return;
    }
    let Started {
        topo,
        dir: _dir,
        pins: _pins,
        policy: _,
        agent,
    } = start_on_two_hosts(
        "policy.ward",
        TWO_ZONES,
        &["--events-max-mib", "1", "--events-per-sec", "1000000"],
    );
    let mode = std::fs::metadata(&agent.events)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let server = topo.host("server");
    // udp/6001 is denied: every datagram is an event.
    let flood = UdpFlood::start(&topo.host("client").ns, server.v4(), 6001);
    let rotated = agent.events.with_extension("jsonl.1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rotated.exists() {
        assert!(
            Instant::now() < deadline,
            "no rotation: {}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(flood);
    for file in [&agent.events, &rotated] {
        // A rotation still under way (rename, then a new file) may leave the
        // current file missing for an instant.
        let deadline = Instant::now() + Duration::from_secs(2);
        let size = loop {
            match std::fs::metadata(file) {
                Ok(m) => break m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{}: {e}", file.display()),
            }
        };
        assert!(size <= 1 << 20, "{} is {size} bytes", file.display());
    }
}

#[test]
fn operator_facing_details() {
    if !privilege::kernel_tests_can_run("operator_facing_details") {
        return;
    }
    let Started {
        topo,
        dir,
        pins,
        policy,
        agent,
    } = start_on_two_hosts("policy.ward", TWO_ZONES, &["--no-rule-metrics"]);

    // A user who may not open the socket is told so.
    let dir_mode = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(&dir.path, dir_mode).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(binary())
        .args(["status", "--socket"])
        .arg(&agent.socket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("permission denied") && stderr.contains("run as root"),
        "{out:?}"
    );

    // A cut pipe ends the client quietly.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} status --socket {} | head -c1 >/dev/null",
            binary().display(),
            agent.socket.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");

    // `status --format json` is what `wardgate report --status FILE` reads
    // (issue 14): the policy's hash and the interfaces.
    let out = Command::new(binary())
        .args(["status", "--format", "json", "--socket"])
        .arg(&agent.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["policy"]["hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{status}"
    );
    assert!(status["interfaces"].is_array(), "{status}");

    // HEAD /metrics answers 200 without a body; no per-rule series when off.
    let addr: std::net::SocketAddr = METRICS.parse().unwrap();
    let head = topo
        .gateway
        .spawn(move || {
            let mut s = std::net::TcpStream::connect(addr)?;
            s.write_all(b"HEAD /metrics HTTP/1.0\r\n\r\n")?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .join()
        .unwrap()
        .unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let page = agent.metrics(&topo.gateway);
    assert!(!page.contains("wardgate_rule_verdicts_total{"), "{page}");
    assert!(metric(&page, "wardgate_policy_generation", &[]) >= 1.0);

    // Every start-up validation error exits 1, wherever it was found.
    let bad_config = dir.write("agent.yaml", "polcy: x\n");
    let fifo_config = dir.path.join("agent.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo_config)
            .status()
            .unwrap()
            .success()
    );
    for config in [bad_config, fifo_config, "/dev/zero".into()] {
        let started = Instant::now();
        let out = Command::new(binary())
            .args(["run", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}: {out:?}", config.display());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    let topo2 = two_hosts();
    let pins2 = PinDir::new();
    let failed = Agent::start_failing_with(
        &topo2.gateway,
        &dir,
        &pins2,
        &policy,
        &["gw0"],
        &[],
        &Launch {
            events: Some("/dev/null".into()),
            ..Launch::default()
        },
    );
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(failed.stderr.contains("not a regular file"), "{failed:?}");
    drop(pins);
}
