//! A fleet pulling signed bundles, with real parts: Debian's nginx serves
//! bundles over HTTPS (a test CA made here with rcgen) from its own
//! namespace; three gateway namespaces run an agent each, pulling the same
//! URL; Debian's Prometheus scrapes the three agents.
//!
//! Revision 1: all three enforce it. Revision 2: all converge within two
//! poll intervals, with no packet lost on the flow both revisions allow. A
//! tampered bundle, one signed by an unknown key, an older revision and an
//! expired one are each refused (reason in the log, metrics and status)
//! while revision 2 stays. With the server down a restarted agent enforces
//! the persisted bundle; a first start with neither fails with nothing
//! attached.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use wardgate_bundle::SigningKey;
use wardgate_tests::{
    agent::{Agent, PinDir, TempDir},
    flows::UdpStream,
    netns::Netns,
    privilege, traffic,
};

use crate::{metric, two_hosts};

/// Revision 1: udp/5000 and udp/6000.
const REV1: &str = r#"
zone clients { networks 10.1.0.0/24, 2001:db8:1::/64 }
zone servers { networks 10.2.0.0/24, 2001:db8:2::/64 }
allow clients -> servers : udp/5000, udp/6000
"#;

/// Revision 2: udp/6000 removed, tcp/7000 added.
const REV2: &str = r#"
zone clients { networks 10.1.0.0/24, 2001:db8:1::/64 }
zone servers { networks 10.2.0.0/24, 2001:db8:2::/64 }
allow clients -> servers : udp/5000, tcp/7000
"#;

/// The bundle server's address (on a bridge every gateway is linked to).
const SERVER: &str = "203.0.113.1";
const POLL: Duration = Duration::from_secs(2);

/// A child process killed (by its PID) and reaped on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `nsenter --net` into `ns`, then `program args`.
fn in_ns(ns: &Netns, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", ns.name()))
        .arg(program);
    cmd
}

/// The test CA's certificate (PEM) and the server's certificate and key for `SERVER`.
fn test_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "wardgate fleet test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(Vec::<String>::new()).unwrap();
    server.subject_alt_names = vec![SanType::IpAddress(SERVER.parse().unwrap())];
    let cert = server.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// nginx in `ns` on `SERVER:8443` serving `dir/www`, `POST /status/...` answered 204.
fn nginx(ns: &Netns, dir: &Path, cert: &str, key: &str) -> Running {
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("server.crt"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let d = dir.display();
    let conf = format!(
        r#"
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {SERVER}:8443 ssl;
        ssl_certificate {d}/server.crt;
        ssl_certificate_key {d}/server.key;
        root {d}/www;
        location /status/ {{ return 204; }}
    }}
}}
"#
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = in_ns(ns, "nginx")
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx");
    let running = Running(child);
    wait_listening(ns, SocketAddr::new(SERVER.parse().unwrap(), 8443), dir);
    running
}

fn wait_listening(ns: &Netns, addr: SocketAddr, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = ns
            .spawn(move || {
                Ok(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
            })
            .join()
            .unwrap()
            .unwrap();
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr}: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The bundle of `policy`, revision `revision`, signed with `key`.
fn bundle(policy: &str, revision: u64, expires: Option<&str>, key: &SigningKey) -> Vec<u8> {
    let image = wardgate_tests::enforcer::image(policy).to_bytes();
    let manifest = wardgate_bundle::manifest_for(
        &image,
        revision,
        expires.map(|e| wardgate_bundle::parse_expires(e).unwrap()),
    );
    wardgate_bundle::build(
        &manifest,
        &image,
        &[("policy.ward".into(), policy.as_bytes().to_vec())],
        key,
    )
    .unwrap()
}

/// `bytes` with one byte of `policy.img` changed, re-packed (valid gzip and
/// tar: only the signed content differs).
fn tampered(bytes: &[u8]) -> Vec<u8> {
    let mut files = wardgate_bundle::unpack(bytes).unwrap();
    files.get_mut(wardgate_bundle::IMAGE).unwrap()[40] ^= 1;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in &files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, name, &data[..]).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Publishes `bytes` as the bundle (write, then rename: never half a file).
fn publish(www: &Path, bytes: &[u8]) {
    let tmp = www.join(".policy.tar.gz.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, www.join("policy.tar.gz")).unwrap();
}

/// One gateway: its topology, management link address, pins and agent.
struct Gateway {
    agent: Option<Agent>,
    id: String,
    mgmt: String,
    state: PathBuf,
    pins: PinDir,
    topo: wardgate_tests::netns::Topology,
}

impl Gateway {
    fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("the agent runs")
    }

    fn bundle_status(&self) -> serde_json::Value {
        self.agent().status()["bundle"].clone()
    }

    fn udp(&self, port: u16) -> Result<(), String> {
        let (client, server) = (self.topo.host("client"), self.topo.host("server"));
        traffic::udp(
            &client.ns,
            &server.ns,
            server.v4(),
            port,
            Duration::from_millis(500),
        )
    }

    fn args(&self, ca: &Path, trusted: &Path) -> Vec<String> {
        [
            "--bundle-url",
            &format!("https://{SERVER}:8443/policy.tar.gz"),
            "--trusted-key",
            &trusted.display().to_string(),
            "--ca-file",
            &ca.display().to_string(),
            "--poll",
            &format!("{}ms", POLL.as_millis()),
            "--gateway-id",
            &self.id,
            "--label",
            "site=north",
            "--status-url",
            &format!("https://{SERVER}:8443/status/{{site}}/{{gateway}}"),
            "--state-dir",
            &self.state.display().to_string(),
            "--metrics",
            &format!("{}:9750", self.mgmt),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn start(&mut self, dir: &TempDir, ca: &Path, trusted: &Path) {
        let args = self.args(ca, trusted);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.agent = Some(Agent::start(
            &self.topo.gateway,
            dir,
            &self.pins,
            Path::new(""),
            &["gw0", "gw1"],
            &args,
        ));
    }
}

/// Waits until `done` holds for every gateway's bundle status; returns how long it took.
fn converge(
    gateways: &[Gateway],
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let start = Instant::now();
    let deadline = start + 2 * POLL;
    loop {
        if gateways.iter().all(|g| done(&g.bundle_status())) {
            return start.elapsed();
        }
        if Instant::now() > deadline {
            let states: Vec<String> = gateways
                .iter()
                .map(|g| format!("{}: {}\n{}", g.id, g.bundle_status(), g.agent().log_text()))
                .collect();
            panic!(
                "{what}: not within two poll intervals:\n{}",
                states.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET `path` from `addr` in `ns` (HTTP/1.0); the body.
fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> String {
    let path = path.to_owned();
    ns.spawn(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default())
    })
    .join()
    .unwrap()
    .unwrap_or_default()
}

/// Prometheus in `ns` scraping `targets` every second.
fn prometheus(ns: &Netns, dir: &Path, targets: &[String]) -> Running {
    let list = targets
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let rules = crate::repo("examples/prometheus/wardgate-alerts.yml");
    let conf = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: wardgate\n    static_configs:\n      - targets: [{list}]\n",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), conf).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = in_ns(ns, "prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg("--web.listen-address=127.0.0.1:9090")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting prometheus");
    Running(child)
}

/// Prometheus's answer to an instant query: (instance, value) pairs.
fn query(ns: &Netns, expr: &str) -> Vec<(String, String)> {
    let addr: SocketAddr = "127.0.0.1:9090".parse().unwrap();
    let body = http_get(ns, addr, &format!("/api/v1/query?query={expr}"));
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["metric"]["instance"].as_str().unwrap_or("").to_owned(),
                r["value"][1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_fleet_follows_one_bundle_url() {
    if !privilege::kernel_tests_can_run("a_fleet_follows_one_bundle_url")
        || !privilege::tool_available("a_fleet_follows_one_bundle_url", "nginx")
        || !privilege::tool_available("a_fleet_follows_one_bundle_url", "prometheus")
    {
        return;
    }
    let dir = TempDir::new();
    let key = wardgate_bundle::generate_key().unwrap();
    let (_, trusted) = wardgate_bundle::write_key_pair(&dir.path.join("site"), &key).unwrap();
    let (ca_pem, cert, cert_key) = test_ca();
    let ca = dir.write("ca.pem", ca_pem);

    // The bundle server's namespace: a bridge every gateway links to.
    let bundles = Netns::new("bundles").unwrap();
    bundles
        .ip(&["link", "add", "br0", "type", "bridge"])
        .unwrap();
    bundles
        .ip(&["addr", "add", &format!("{SERVER}/24"), "dev", "br0"])
        .unwrap();
    bundles.ip(&["link", "set", "br0", "up"]).unwrap();
    let mut gateways: Vec<Gateway> = (1..=3)
        .map(|i| {
            let topo = two_hosts();
            let port = format!("p{i}");
            wardgate_tests::netns::ip(&[
                "link",
                "add",
                "mgmt",
                "netns",
                topo.gateway.name(),
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                bundles.name(),
            ])
            .unwrap();
            let mgmt = format!("203.0.113.1{i}");
            topo.gateway
                .ip(&["addr", "add", &format!("{mgmt}/24"), "dev", "mgmt"])
                .unwrap();
            topo.gateway.ip(&["link", "set", "mgmt", "up"]).unwrap();
            bundles
                .ip(&["link", "set", &port, "master", "br0", "up"])
                .unwrap();
            Gateway {
                agent: None,
                id: format!("gw-{i}"),
                mgmt,
                state: dir.path.join(format!("state-{i}")),
                pins: PinDir::new(),
                topo,
            }
        })
        .collect();

    let www_dir = dir.path.join("nginx");
    let server = nginx(&bundles, &www_dir, &cert, &cert_key);
    let www = www_dir.join("www");

    // Revision 1: every agent downloads it at start and enforces it.
    publish(&www, &bundle(REV1, 1, None, &key));
    for g in &mut gateways {
        g.start(&dir, &ca, &trusted);
    }
    for g in &gateways {
        assert_eq!(g.bundle_status()["active_revision"], 1, "{}", g.id);
        g.udp(5000)
            .unwrap_or_else(|e| panic!("{}: udp/5000 under revision 1: {e}", g.id));
        g.udp(6000)
            .unwrap_or_else(|e| panic!("{}: udp/6000 under revision 1: {e}", g.id));
    }

    // Revision 2 under load: all converge, the flow both allow loses nothing.
    let streams: Vec<UdpStream> = gateways
        .iter()
        .map(|g| {
            let (c, s) = (g.topo.host("client"), g.topo.host("server"));
            UdpStream::start(&c.ns, &s.ns, s.v4(), 5000, Duration::from_millis(1)).unwrap()
        })
        .collect();
    let firsts: Vec<u64> = streams
        .iter()
        .map(|s| s.wait_flowing(Duration::from_secs(5)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime: a new ETag
    publish(&www, &bundle(REV2, 2, None, &key));
    let took = converge(&gateways, "revision 2", |b| b["active_revision"] == 2);
    eprintln!("fleet: three gateways converged on revision 2 in {took:?} (poll {POLL:?})");
    std::thread::sleep(Duration::from_millis(300));
    for ((g, stream), first) in gateways.iter().zip(streams).zip(firsts) {
        let (sent, got) = stream.finish();
        let lost: Vec<u64> = (first..sent).filter(|s| !got.contains(s)).collect();
        assert!(
            lost.is_empty(),
            "{}: the flow both revisions allow lost {} of {} packets",
            g.id,
            lost.len(),
            sent - first
        );
        assert!(
            g.udp(6000).is_err(),
            "{}: udp/6000 passes under revision 2",
            g.id
        );
    }

    // Prometheus scrapes the three agents: its API shows their generations.
    let prom_dir = dir.path.join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let targets: Vec<String> = gateways
        .iter()
        .map(|g| format!("{}:9750", g.mgmt))
        .collect();
    let _prom = prometheus(&bundles, &prom_dir, &targets);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (revisions, generations) = loop {
        let revisions = query(&bundles, "wardgate_bundle_active_revision");
        let generations = query(&bundles, "wardgate_policy_generation");
        if revisions.len() == 3 && generations.len() == 3 {
            break (revisions, generations);
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not show three agents: {revisions:?} {generations:?}\n{}",
            std::fs::read_to_string(prom_dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let instances: Vec<&str> = revisions.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        instances,
        targets.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(revisions.iter().all(|(_, v)| v == "2"), "{revisions:?}");
    for (g, (_, generation)) in gateways.iter().zip(&generations) {
        let own = g.agent().status()["policy"]["generation"].to_string();
        assert_eq!(generation, &own, "{}: prometheus {generations:?}", g.id);
    }

    // Bad bundles: each refused, revision 2 stays, the reason everywhere.
    let rev2 = std::fs::read(www.join("policy.tar.gz")).unwrap();
    let stranger = wardgate_bundle::generate_key().unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("tampered", tampered(&rev2), "hash"),
        (
            "unknown key",
            bundle(REV1, 3, None, &stranger),
            "unknown_key",
        ),
        ("older revision", bundle(REV1, 1, None, &key), "rollback"),
        (
            "expired",
            bundle(REV1, 4, Some("2020-01-01"), &key),
            "expired",
        ),
    ];
    for (what, bytes, reason) in cases {
        std::thread::sleep(Duration::from_millis(1100));
        publish(&www, &bytes);
        converge(&gateways, what, |b| b["last_error_reason"] == reason);
        for g in &gateways {
            let b = g.bundle_status();
            assert_eq!(b["active_revision"], 2, "{what}: {}: {b}", g.id);
            let log = g.agent().log_text();
            assert!(
                log.contains(&format!("[{reason}]")),
                "{what}: {}: {log}",
                g.id
            );
            assert!(
                g.udp(6000).is_err(),
                "{what}: {}: revision 1 came back",
                g.id
            );
            g.udp(5000)
                .unwrap_or_else(|e| panic!("{what}: {}: udp/5000: {e}", g.id));
        }
        let page = http_get(
            &bundles,
            format!("{}:9750", gateways[0].mgmt).parse().unwrap(),
            "/metrics",
        );
        assert!(
            metric(
                &page,
                "wardgate_bundle_failures_total",
                &[("reason", reason)]
            ) >= 1.0,
            "{what}: {page}"
        );
        assert_eq!(metric(&page, "wardgate_bundle_active_revision", &[]), 2.0);
    }
    // The example alert rules, loaded by the real Prometheus, fire for the refusals.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = http_get(
            &bundles,
            "127.0.0.1:9090".parse().unwrap(),
            "/api/v1/alerts",
        );
        if alerts.contains("WardgateBundleFailures") && alerts.contains("\"firing\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "WardgateBundleFailures did not fire: {alerts}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Each agent reported its status to the server after its attempts.
    let access = std::fs::read_to_string(www_dir.join("access.log")).unwrap();
    for g in &gateways {
        assert!(
            access.contains(&format!("POST /status/north/{} ", g.id)),
            "{}: no status post in\n{access}",
            g.id
        );
    }

    // Server down, an agent restarted: it enforces the persisted revision 2.
    drop(server);
    let g = &mut gateways[0];
    g.agent.take().unwrap().stop();
    g.start(&dir, &ca, &trusted);
    assert_eq!(
        g.bundle_status()["active_revision"],
        2,
        "{}",
        g.agent().log_text()
    );
    assert!(g.agent().log_text().contains("persisted revision 2"));
    g.udp(5000).expect("udp/5000 after the restart");
    assert!(g.udp(6000).is_err(), "udp/6000 passes after the restart");

    // A first start with neither a server nor a persisted bundle: a clear
    // error, nothing attached.
    let fresh = PinDir::new();
    let mut args = gateways[1].args(&ca, &trusted);
    let state_at = args.iter().position(|a| a == "--state-dir").unwrap() + 1;
    args[state_at] = dir.path.join("state-empty").display().to_string();
    let metrics_at = args.iter().position(|a| a == "--metrics").unwrap() + 1;
    args[metrics_at] = "off".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let failed = Agent::start_failing(
        &gateways[1].topo.gateway,
        &dir,
        &fresh,
        Path::new(""),
        &["gw0", "gw1"],
        &args,
    );
    assert_eq!(failed.status.code(), Some(1), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("no policy: no bundle from"),
        "{}",
        failed.stderr
    );
    assert!(!fresh.has_maps(), "a failed first start left maps pinned");
}
