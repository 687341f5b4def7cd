//! The learning loop end to end (`docs/discovery.md`): the hospital's zones
//! with no allow rule yet, the agent in learning mode (`--monitor-all`)
//! writing a flows log, a traffic mix of several hosts per zone (a real
//! DICOM C-STORE with dcmtk, HL7 over MLLP, DNS, NTP, HTTPS and ping);
//! `wardgate suggest --write` on the flows log; then the agent enforcing
//! the written policy: the same mix passes with zero policy drops, probes
//! outside the mix are dropped. A tcpdump capture of the learning traffic
//! gives the same rules.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{OnceLock, mpsc},
    time::Duration,
};

use anyhow::{Context as _, bail};
use wardgate_tests::{
    agent::{Agent, PinDir, TempDir},
    netns::{Netns, Topology},
    privilege, traffic,
};

use crate::{metric, repo};

fn hospital() -> Topology {
    Topology::builder()
        .host("imaging1", &["10.20.0.11/24"])
        .host("imaging2", &["10.20.1.12/24"])
        .host("pacs", &["10.30.0.10/24"])
        .host("lab1", &["10.65.0.11/25"])
        .host("lab2", &["10.65.0.140/25"])
        .host("ie", &["10.51.0.10/24"])
        .host("ws1", &["10.55.0.11/24"])
        .host("ws2", &["10.55.1.12/24"])
        .host("dns", &["10.0.0.53/28"])
        .host("ntp", &["10.0.0.123/28"])
        .host("ehr", &["10.50.0.10/24"])
        .build()
        .expect("building the hospital")
}

/// A process started in a namespace, ended by its PID on drop.
struct Daemon(Child);

impl Daemon {
    fn start(ns: &Netns, program: &str, args: &[&str]) -> Self {
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        Self(child)
    }

    /// SIGTERM by PID, then wait (tcpdump closes its file on SIGTERM).
    fn stop(&mut self) {
        let pid = i32::try_from(self.0.id()).expect("pid");
        // SAFETY: a signal to our own child, by its PID.
        #[allow(unsafe_code, reason = "kill(2) of our own child")]
        unsafe {
            libc::kill(pid, libc::SIGTERM)
        };
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// The `wardgate` CLI, built into this test's target directory.
fn wardgate() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let agent = wardgate_tests::agent::binary();
        let profile_dir = agent.parent().expect("target/<profile>");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(repo(""))
            .args([
                "build",
                "--quiet",
                "-p",
                "wardgate-compiler",
                "--bin",
                "wardgate",
            ])
            .args(["--profile", &profile, "--target-dir"])
            .arg(profile_dir.parent().expect("target"))
            .status()
            .expect("running cargo to build wardgate");
        assert!(status.success(), "building wardgate failed");
        profile_dir.join("wardgate")
    })
    .clone()
}

/// One HL7 v2 message over MLLP (VT ... FS CR) and its framed ACK.
fn mllp(client: &Netns, server: &Netns, addr: IpAddr, timeout: Duration) -> Result<(), String> {
    const MSG: &[u8] =
        b"\x0bMSH|^~\\&|LAB|WARD|IE|HOSP|20260105120000||ORU^R01|42|P|2.5\rPID|1||WG0001\r\x1c\r";
    const ACK: &[u8] =
        b"\x0bMSH|^~\\&|IE|HOSP|LAB|WARD|20260105120001||ACK|43|P|2.5\rMSA|AA|42\r\x1c\r";
    let target = SocketAddr::new(addr, 2575);
    let (ready_tx, ready_rx) = mpsc::channel();
    let server_thread = server.spawn(move || {
        let listener = traffic::listen(target)?;
        ready_tx.send(()).ok();
        let mut stream = traffic::accept_one(&listener, timeout)?;
        let mut msg = vec![0u8; MSG.len()];
        stream.read_exact(&mut msg)?;
        if !(msg.starts_with(b"\x0b") && msg.ends_with(b"\x1c\r")) {
            bail!("not an MLLP frame");
        }
        stream.write_all(ACK)?;
        Ok(())
    });
    if ready_rx.recv_timeout(Duration::from_secs(5)).is_err() {
        return Err("mllp server did not start".into());
    }
    let client_result = client
        .spawn(move || {
            let mut s = TcpStream::connect_timeout(&target, timeout).context("connect")?;
            s.set_read_timeout(Some(timeout))?;
            s.write_all(MSG)?;
            let mut ack = vec![0u8; ACK.len()];
            s.read_exact(&mut ack).context("reading the ACK")?;
            if !ack.windows(6).any(|w| w == b"MSA|AA") {
                bail!("not an application accept");
            }
            Ok(())
        })
        .join()
        .map_err(|_| "client panicked".to_owned())
        .and_then(|r| r.map_err(|e| format!("{e:#}")));
    let server_result = server_thread
        .join()
        .map_err(|_| "server panicked".to_owned())
        .and_then(|r| r.map_err(|e| format!("server: {e:#}")));
    client_result.and(server_result)
}

/// A DICOM C-STORE with dcmtk's `storescu` to the PACS's `storescp`.
fn c_store(client: &Netns, pacs: IpAddr, file: &Path) -> Result<(), String> {
    let out = client
        .exec(
            "storescu",
            &[
                "-to",
                "3",
                "-aec",
                "PACS",
                &pacs.to_string(),
                "11112",
                &file.to_string_lossy(),
            ],
        )
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "storescu: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The mix: every flow with its result.
fn mix(topo: &Topology, dicom: &Path) -> Vec<(String, Result<(), String>)> {
    let h = |n: &str| topo.host(n);
    let t = traffic::ALLOWED;
    let mut out = Vec::new();
    for m in ["imaging1", "imaging2"] {
        out.push((
            format!("{m} c-store"),
            c_store(&h(m).ns, h("pacs").v4(), dicom),
        ));
        out.push((
            format!("{m} ntp"),
            traffic::udp(&h(m).ns, &h("ntp").ns, h("ntp").v4(), 123, t),
        ));
    }
    for l in ["lab1", "lab2"] {
        out.push((
            format!("{l} hl7"),
            mllp(&h(l).ns, &h("ie").ns, h("ie").v4(), t),
        ));
    }
    for w in ["ws1", "ws2"] {
        let ws = &h(w).ns;
        out.push((
            format!("{w} dns"),
            traffic::udp(ws, &h("dns").ns, h("dns").v4(), 53, t),
        ));
        out.push((
            format!("{w} ntp"),
            traffic::udp(ws, &h("ntp").ns, h("ntp").v4(), 123, t),
        ));
        out.push((
            format!("{w} https"),
            traffic::tcp(ws, &h("ehr").ns, h("ehr").v4(), 443, t),
        ));
        out.push((format!("{w} ping"), traffic::ping(ws, h("pacs").v4(), t)));
    }
    out
}

fn failures(results: &[(String, Result<(), String>)]) -> Vec<String> {
    results
        .iter()
        .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("{what}: {e}")))
        .collect()
}

/// The rules `suggest` proposes (JSON), sorted.
fn suggested(dir: &Path, input: &[&str]) -> Vec<String> {
    let mut args = vec!["suggest", "policy.ward", "--format", "json"];
    args.extend_from_slice(input);
    let out = Command::new(wardgate())
        .current_dir(dir)
        .args(&args)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "suggest {input:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut rules: Vec<String> = json["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rule"].as_str().unwrap().to_owned())
        .collect();
    rules.sort();
    rules
}

#[test]
fn learn_suggest_enforce_the_hospital() {
    let test = "learn_suggest_enforce_the_hospital";
    if !privilege::kernel_tests_can_run(test)
        || !privilege::tool_available(test, "storescu")
        || !privilege::tool_available(test, "tcpdump")
    {
        return;
    }
    let topo = hospital();
    let dir = TempDir::new();
    let pins = PinDir::new();
    // The hospital's zones, services, denies and requirements, no allow yet.
    let hospital = std::fs::read_to_string(repo("examples/hospital.ward")).unwrap();
    let zones_only: String = hospital
        .lines()
        .filter(|l| !l.starts_with("allow "))
        .map(|l| format!("{l}\n"))
        .collect();
    let policy = dir.write("policy.ward", &zones_only);
    dir.write(
        "hospital-assets.yaml",
        std::fs::read(repo("examples/hospital-assets.yaml")).unwrap(),
    );
    let dump = dir.write(
        "ct.dump",
        "(0008,0016) UI =SecondaryCaptureImageStorage\n\
         (0008,0018) UI [1.2.826.0.1.3680043.2.1125.1.1]\n\
         (0008,0060) CS [OT]\n(0010,0010) PN [Test^Patient]\n(0010,0020) LO [WG0001]\n\
         (0020,000d) UI [1.2.826.0.1.3680043.2.1125.1]\n\
         (0020,000e) UI [1.2.826.0.1.3680043.2.1125.1.2]\n",
    );
    let dicom = dir.path.join("ct.dcm");
    wardgate_tests::netns::run(
        "dump2dcm",
        &["+te", &dump.to_string_lossy(), &dicom.to_string_lossy()],
    )
    .expect("dump2dcm");
    let store = dir.path.join("store");
    std::fs::create_dir_all(&store).unwrap();
    let pacs_ns = &topo.host("pacs").ns;
    // -dhl: no reverse DNS lookups, which hang in a namespace.
    let _storescp = Daemon::start(
        pacs_ns,
        "storescp",
        &["-dhl", "-od", &store.to_string_lossy(), "11112"],
    );
    let flows = dir.path.join("flows.jsonl");
    let capture = dir.path.join("learning.pcap");
    let ifaces = topo.gateway_ifaces();
    let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();

    // 1. Learning mode: everything passes, as audit, and is recorded.
    let agent = Agent::start(
        &topo.gateway,
        &dir,
        &pins,
        &policy,
        &ifaces,
        &["--monitor-all", "--flows-log", &flows.to_string_lossy()],
    );
    let mut tcpdump = Daemon::start(
        &topo.gateway,
        "tcpdump",
        &["-i", "any", "-U", "-n", "-w", &capture.to_string_lossy()],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let learned = mix(&topo, &dicom);
    assert!(
        failures(&learned).is_empty(),
        "learning mode must pass everything: {:?}",
        failures(&learned)
    );
    assert!(
        store.join("SC.1.2.826.0.1.3680043.2.1125.1.1").is_file(),
        "the PACS stored the study (both modalities send the same instance)"
    );
    std::thread::sleep(Duration::from_millis(300));
    tcpdump.stop();
    // Stopping drains the flow table once more.
    assert!(agent.stop().success());
    let log = std::fs::read_to_string(&flows).unwrap();
    assert!(
        log.contains("\"dst_port\":11112") && log.contains("\"verdict\":\"audit\""),
        "{log}"
    );

    // 2. Suggest from the flows log, and from the capture: the same rules.
    let from_log = suggested(&dir.path, &["--flows", "flows.jsonl"]);
    let from_pcap = suggested(&dir.path, &["--pcap", "learning.pcap"]);
    assert_eq!(
        from_log,
        [
            "allow clinical-workstations -> dns-servers : dns",
            "allow clinical-workstations -> ehr : https",
            "allow clinical-workstations -> ntp-servers : ntp",
            "allow clinical-workstations -> pacs : ping",
            "allow imaging -> ntp-servers : ntp",
            "allow imaging -> pacs : dicom",
            "allow lab -> interface-engine : hl7-mllp",
        ]
    );
    assert_eq!(
        from_pcap, from_log,
        "the capture suggests what the flows log does"
    );
    let write = Command::new(wardgate())
        .current_dir(&dir.path)
        .args([
            "suggest",
            "policy.ward",
            "--flows",
            "flows.jsonl",
            "--write",
        ])
        .output()
        .unwrap();
    assert!(
        write.status.code() == Some(0),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );
    let check = Command::new(wardgate())
        .current_dir(&dir.path)
        .args(["check", "policy.ward"])
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // 3. Enforce the written policy: the mix passes with no policy drop;
    // probes outside it are dropped.
    let agent = Agent::start(&topo.gateway, &dir, &pins, &policy, &ifaces, &[]);
    let before = agent.metrics(&topo.gateway);
    let enforced = mix(&topo, &dicom);
    assert!(
        failures(&enforced).is_empty(),
        "the learned mix must pass: {:?}",
        failures(&enforced)
    );
    let after = agent.metrics(&topo.gateway);
    let drops = |page: &str| metric(page, "wardgate_drops_total", &[("reason", "policy")]);
    let audits = |page: &str| metric(page, "wardgate_audits_total", &[]);
    assert_eq!(drops(&after) - drops(&before), 0.0, "{after}");
    assert_eq!(
        audits(&after) - audits(&before),
        0.0,
        "nothing passes as audit any more"
    );
    let h = |n: &str| topo.host(n);
    let b = traffic::BLOCKED;
    let probes = [
        (
            "imaging ssh to pacs",
            traffic::tcp(&h("imaging1").ns, &h("pacs").ns, h("pacs").v4(), 22, b),
        ),
        (
            "workstation dicom (104) to pacs",
            traffic::tcp(&h("ws1").ns, pacs_ns, h("pacs").v4(), 104, b),
        ),
        (
            "lab dns",
            traffic::udp(&h("lab1").ns, &h("dns").ns, h("dns").v4(), 53, b),
        ),
        (
            "imaging https to ehr",
            traffic::tcp(&h("imaging2").ns, &h("ehr").ns, h("ehr").v4(), 443, b),
        ),
        (
            "lab ping pacs",
            traffic::ping(&h("lab2").ns, h("pacs").v4(), b),
        ),
    ];
    for (what, r) in &probes {
        assert!(r.is_err(), "{what}: outside the mix, must be dropped");
    }
    let last = agent.metrics(&topo.gateway);
    assert!(
        drops(&last) - drops(&after) >= probes.len() as f64,
        "{last}"
    );
    assert!(agent.stop().success());
}
