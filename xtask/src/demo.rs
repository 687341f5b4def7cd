//! `cargo xtask demo`: build everything and show wardgate's main job on a
//! simulated hospital.
//!
//! It builds the release binaries, builds a hospital out of network
//! namespaces (a gateway between hosts in imaging, PACS, infusion, the pump
//! server, EHR, guest Wi-Fi and an internet stand-in), starts
//! `wardgate-agent` on `examples/hospital.ward`, tries allowed and forbidden
//! connections and prints what passed with the rule that decided
//! (`wardgate query`), then shows the event log, metrics and a quarantine,
//! writes the hospital's evidence pack (`wardgate report --format html`, with
//! the agent's status) to `target/wardgate-demo/hospital-report.html`, and
//! cleans up. Cleanup also happens on Ctrl-C or an error: a guardian
//! process (in its own session) waits for this one to end and removes
//! whatever is left (it only touches the demo's own namespaces, pin
//! directory and files).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{setup, sh};

const GATEWAY: &str = "wgdemo-gw";
const PIN_DIR: &str = "/sys/fs/bpf/wardgate-demo";
const WORK: &str = "/tmp/wardgate-demo";
const POLICY: &str = "examples/hospital.ward";

/// A host: namespace suffix, gateway interface, addresses (CIDR), zone as the policy names it.
struct Host {
    name: &'static str,
    iface: &'static str,
    addrs: &'static [&'static str],
    zone: &'static str,
}

const HOSTS: &[Host] = &[
    Host {
        name: "ct-scanner",
        iface: "imaging0",
        addrs: &["10.20.0.11/23", "2001:db8:20::11/64"],
        zone: "imaging",
    },
    Host {
        name: "pacs",
        iface: "pacs0",
        addrs: &["10.30.0.10/24", "2001:db8:30::10/64"],
        zone: "pacs",
    },
    Host {
        name: "pump",
        iface: "infusion0",
        addrs: &["10.40.1.1/22", "2001:db8:40::11/64"],
        zone: "infusion",
    },
    Host {
        name: "pump-server",
        iface: "pumpsrv0",
        addrs: &["10.41.0.10/24"],
        zone: "pump-server",
    },
    Host {
        name: "ehr",
        iface: "ehr0",
        addrs: &["10.50.0.10/24", "2001:db8:50::10/64"],
        zone: "ehr",
    },
    Host {
        name: "guest",
        iface: "guest0",
        addrs: &["192.168.100.10/22"],
        zone: "guest",
    },
    Host {
        name: "internet",
        iface: "world0",
        addrs: &["198.51.100.10/24", "2001:db8:ffff::10/64"],
        zone: "world",
    },
];

/// A connection to try: from host, to host (v6?), TCP port, service name, expected to pass.
struct Flow {
    from: &'static str,
    to: &'static str,
    v6: bool,
    port: u16,
    service: &'static str,
    allowed: bool,
}

const fn flow(
    from: &'static str,
    to: &'static str,
    v6: bool,
    port: u16,
    service: &'static str,
    allowed: bool,
) -> Flow {
    Flow {
        from,
        to,
        v6,
        port,
        service,
        allowed,
    }
}

const FLOWS: &[Flow] = &[
    flow("ct-scanner", "pacs", false, 104, "dicom", true),
    flow("ct-scanner", "pacs", true, 11112, "dicom", true),
    flow("ehr", "pacs", false, 443, "https", true),
    flow("pump", "pump-server", false, 443, "https", true),
    flow("pump", "pump-server", false, 2575, "hl7-mllp", true),
    flow("guest", "internet", false, 443, "https", true),
    flow("ct-scanner", "internet", false, 443, "https", false),
    flow("pump", "internet", true, 80, "http", false),
    flow("guest", "ct-scanner", false, 104, "dicom", false),
    flow("guest", "pump", false, 443, "https", false),
    flow("internet", "ehr", true, 443, "https", false),
    flow("pacs", "ct-scanner", false, 22, "ssh", false),
];

fn ns(host: &str) -> String {
    format!("wgdemo-{host}")
}

fn host(name: &str) -> &'static Host {
    HOSTS.iter().find(|h| h.name == name).expect("a demo host")
}

/// The host's address of a family, without the prefix length.
fn addr(host: &Host, v6: bool) -> &'static str {
    host.addrs
        .iter()
        .map(|a| a.split('/').next().unwrap_or(a))
        .find(|a| a.contains(':') == v6)
        .expect("the host has an address of that family")
}

/// The gateway's address on a host's subnet: the first host address.
fn gateway_addr(cidr: &str) -> String {
    let (a, len) = cidr.split_once('/').expect("CIDR");
    if a.contains(':') {
        let net: std::net::Ipv6Addr = a.parse().expect("IPv6");
        let len: u32 = len.parse().expect("length");
        let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
        format!(
            "{}/{len}",
            std::net::Ipv6Addr::from((u128::from(net) & mask) + 1)
        )
    } else {
        let net: std::net::Ipv4Addr = a.parse().expect("IPv4");
        let len: u32 = len.parse().expect("length");
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        format!(
            "{}/{len}",
            std::net::Ipv4Addr::from((u32::from(net) & mask) + 1)
        )
    }
}

/// Runs a command quietly; fails with its stderr.
fn quiet(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running `{program}`"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn in_ns(netns: &str, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, program]).args(args);
    cmd
}

/// Removes everything a demo may have left: shell code shared by the normal
/// cleanup and the guardian.
fn cleanup_script(agent: &Path) -> String {
    let mut namespaces = vec![GATEWAY.to_owned()];
    namespaces.extend(HOSTS.iter().map(|h| ns(h.name)));
    format!(
        "{agent} detach --socket {WORK}/agent.sock --pin-path {PIN_DIR} >/dev/null 2>&1; \
         for n in {nss}; do \
           for p in $(ip netns pids $n 2>/dev/null); do kill -9 $p 2>/dev/null; done; \
           ip netns del $n 2>/dev/null; \
         done; rm -rf {WORK}",
        agent = agent.display(),
        nss = namespaces.join(" ")
    )
}

/// The demo's state; dropping it cleans up.
struct Demo {
    agent_bin: PathBuf,
    agent: Option<Child>,
    servers: Vec<Child>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for mut child in self.servers.drain(..).chain(self.agent.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("sh")
            .args(["-c", &cleanup_script(&self.agent_bin)])
            .status();
    }
}

pub fn run() -> anyhow::Result<()> {
    if !sh::is_root() {
        bail!(
            "the demo needs root: it creates network namespaces and loads an XDP program; \
             run `sudo -E cargo xtask demo`"
        );
    }
    setup::all()?;
    sh::cargo(&["build", "--release"])?;
    let root = sh::root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |t| root.join(t));
    let agent_bin = target.join("release/wardgate-agent");
    let wardgate = target.join("release/wardgate");
    for bin in [&agent_bin, &wardgate] {
        if !bin.exists() {
            bail!("`{}` was not built", bin.display());
        }
    }
    println!("\n== wardgate demo: St. Example General Hospital ==\n");
    let started = Instant::now();
    // Leftovers of an interrupted run go first.
    let _ = Command::new("sh")
        .args(["-c", &cleanup_script(&agent_bin)])
        .status();
    std::fs::create_dir_all(WORK)?;
    guardian(&agent_bin)?;
    let mut demo = Demo {
        agent_bin: agent_bin.clone(),
        agent: None,
        servers: Vec::new(),
    };
    build_hospital()?;
    start_servers(&mut demo)?;
    start_agent(&mut demo, &root)?;

    println!("connections through the gateway (policy {POLICY}):\n");
    let results = try_flows();
    print_table(&wardgate, &root, &results)?;

    println!("\nlast lines of the event log ({WORK}/events.jsonl, one JSON object per drop):\n");
    std::thread::sleep(Duration::from_millis(600));
    let events = std::fs::read_to_string(format!("{WORK}/events.jsonl")).unwrap_or_default();
    for line in events
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        println!("  {line}");
    }

    println!("\nsome metrics (http://127.0.0.1:9750/metrics in the gateway):\n");
    let page = metrics()?;
    for line in page.lines().filter(|l| {
        !l.starts_with('#')
            && !l.ends_with(" 0")
            && (l.starts_with("wardgate_drops_total")
                || l.starts_with("wardgate_rule_verdicts_total")
                || l.starts_with("wardgate_policy_generation")
                || l.starts_with("wardgate_tracked_connections")
                || l.starts_with("wardgate_interface_attached{interface=\"imaging0\""))
    }) {
        println!("  {line}");
    }

    quarantine(&agent_bin)?;

    println!("\nagent status (`wardgate-agent status`):\n");
    let status = quiet(
        agent_bin.to_str().unwrap_or("wardgate-agent"),
        &["status", "--socket", &format!("{WORK}/agent.sock")],
    )?;
    for line in status.lines() {
        println!("  {line}");
    }
    let report = evidence_pack(&wardgate, &agent_bin, &root, &target)?;
    let failures = results
        .iter()
        .filter(|r| r.passed != r.flow.allowed)
        .count();
    drop(demo);
    println!(
        "\ncleaned up (namespaces, pinned maps and links). The demo took {:.0} s after the build.",
        started.elapsed().as_secs_f64()
    );
    if failures > 0 {
        bail!("{failures} connection(s) did not behave as the policy says");
    }
    println!(
        "The hospital's evidence pack (open it in a browser, print it to PDF): {}",
        report.display()
    );
    println!(
        "Next: `wardgate check examples/hospital.ward`, docs/agent.md to run the agent on a gateway."
    );
    Ok(())
}

/// Writes the hospital's evidence pack with the running agent's status as
/// enforcement evidence, under `target/wardgate-demo/` (the demo's work
/// directory is removed at the end), and returns its path.
fn evidence_pack(
    wardgate: &Path,
    agent: &Path,
    root: &Path,
    target: &Path,
) -> anyhow::Result<PathBuf> {
    let dir = target.join("wardgate-demo");
    std::fs::create_dir_all(&dir)?;
    let status = quiet(
        agent.to_str().unwrap_or("wardgate-agent"),
        &[
            "status",
            "--format",
            "json",
            "--socket",
            &format!("{WORK}/agent.sock"),
        ],
    )?;
    let status_file = dir.join("gateway-status.json");
    std::fs::write(&status_file, status)?;
    let report = dir.join("hospital-report.html");
    println!(
        "
evidence pack: `wardgate report {POLICY} --format html --status {}`",
        status_file.display()
    );
    let out = Command::new(wardgate)
        .current_dir(root)
        .args(["report", POLICY, "--format", "html", "--status"])
        .arg(&status_file)
        .arg("-o")
        .arg(&report)
        .output()
        .context("running `wardgate report`")?;
    if !out.status.success() {
        bail!(
            "`wardgate report` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(report)
}

/// A process in its own session that removes the demo's leftovers once this
/// process is gone, however it ended (Ctrl-C included).
fn guardian(agent: &Path) -> anyhow::Result<()> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        pid = std::process::id(),
        cleanup = cleanup_script(agent)
    );
    Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("starting the cleanup guardian (setsid)")?;
    Ok(())
}

fn build_hospital() -> anyhow::Result<()> {
    println!(
        "building the hospital: gateway `{GATEWAY}` and {} hosts",
        HOSTS.len()
    );
    quiet("ip", &["netns", "add", GATEWAY])?;
    quiet("ip", &["-n", GATEWAY, "link", "set", "lo", "up"])?;
    no_dad(GATEWAY)?;
    quiet(
        "ip",
        &[
            "netns",
            "exec",
            GATEWAY,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    )?;
    quiet(
        "ip",
        &[
            "netns",
            "exec",
            GATEWAY,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.forwarding=1",
        ],
    )?;
    for h in HOSTS {
        let netns = ns(h.name);
        quiet("ip", &["netns", "add", &netns])?;
        quiet("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
        no_dad(&netns)?;
        quiet(
            "ip",
            &[
                "link", "add", "eth0", "netns", &netns, "type", "veth", "peer", "name", h.iface,
                "netns", GATEWAY,
            ],
        )?;
        for cidr in h.addrs {
            let family = if cidr.contains(':') { "-6" } else { "-4" };
            let gw = gateway_addr(cidr);
            let mut host_args = vec![family, "-n", &netns, "addr", "add", cidr, "dev", "eth0"];
            let mut gw_args = vec![family, "-n", GATEWAY, "addr", "add", &gw, "dev", h.iface];
            if cidr.contains(':') {
                host_args.push("nodad");
                gw_args.push("nodad");
            }
            quiet("ip", &host_args)?;
            quiet("ip", &gw_args)?;
        }
        quiet("ip", &["-n", &netns, "link", "set", "eth0", "up"])?;
        quiet("ip", &["-n", GATEWAY, "link", "set", h.iface, "up"])?;
        for cidr in h.addrs {
            let family = if cidr.contains(':') { "-6" } else { "-4" };
            let gw = gateway_addr(cidr);
            let via = gw.split('/').next().unwrap_or(&gw);
            quiet(
                "ip",
                &[family, "-n", &netns, "route", "add", "default", "via", via],
            )?;
        }
        println!(
            "  {:<12} {:<12} {}",
            h.name,
            format!("({})", h.zone),
            h.addrs.join(", ")
        );
    }
    Ok(())
}

/// No duplicate address detection on new links: IPv6 (link-local addresses
/// included) works at once instead of after a second or two.
fn no_dad(netns: &str) -> anyhow::Result<()> {
    quiet(
        "ip",
        &[
            "netns",
            "exec",
            netns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ],
    )?;
    Ok(())
}

fn start_servers(demo: &mut Demo) -> anyhow::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for f in FLOWS {
        let to = host(f.to);
        let a = addr(to, f.v6);
        if seen.insert((a, f.port)) {
            let child = in_ns(&ns(f.to), "nc", &["-lk", a, &f.port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting nc (run `cargo xtask setup`)")?;
            demo.servers.push(child);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    Ok(())
}

fn start_agent(demo: &mut Demo, root: &Path) -> anyhow::Result<()> {
    if !is_bpffs() {
        println!("mounting bpffs on /sys/fs/bpf (the agent pins its state there)");
        quiet("mount", &["-t", "bpf", "bpf", "/sys/fs/bpf"])?;
    }
    let mut args: Vec<String> = vec![
        format!("--net=/run/netns/{GATEWAY}"),
        demo.agent_bin.display().to_string(),
        "run".into(),
        "--policy".into(),
        POLICY.into(),
        "--pin-path".into(),
        PIN_DIR.into(),
        "--control-socket".into(),
        format!("{WORK}/agent.sock"),
        "--events".into(),
        format!("{WORK}/events.jsonl"),
    ];
    for h in HOSTS {
        args.push("--iface".into());
        args.push(h.iface.into());
    }
    println!(
        "\nstarting: wardgate-agent run --policy {POLICY} --iface imaging0 ... (log: {WORK}/agent.log)"
    );
    let log = std::fs::File::create(format!("{WORK}/agent.log"))?;
    let child = Command::new("nsenter")
        .args(&args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting wardgate-agent")?;
    demo.agent = Some(child);
    let socket = format!("{WORK}/agent.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = Command::new(&demo.agent_bin)
            .args(["status", "--socket", &socket])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break;
        }
        if let Some(agent) = demo.agent.as_mut()
            && let Ok(Some(status)) = agent.try_wait()
        {
            bail!(
                "the agent exited ({status}):\n{}",
                std::fs::read_to_string(format!("{WORK}/agent.log")).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!("the agent did not start within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(format!("{WORK}/agent.log")).unwrap_or_default();
    for line in log
        .lines()
        .filter(|l| l.contains("attached") || l.contains("loaded"))
        .take(3)
    {
        println!("  {}", line.split("] ").nth(1).unwrap_or(line));
    }
    println!("  ... (all {} interfaces)\n", HOSTS.len());
    Ok(())
}

fn is_bpffs() -> bool {
    quiet("stat", &["-f", "-c", "%T", "/sys/fs/bpf"]).is_ok_and(|t| t.trim() == "bpf_fs")
}

struct Outcome {
    flow: &'static Flow,
    passed: bool,
}

/// Tries every flow at once (`nc -z`, 2 s timeout).
fn try_flows() -> Vec<Outcome> {
    let children: Vec<_> = FLOWS
        .iter()
        .map(|f| {
            let to = addr(host(f.to), f.v6);
            in_ns(
                &ns(f.from),
                "nc",
                &["-z", "-w", "2", to, &f.port.to_string()],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        })
        .collect();
    FLOWS
        .iter()
        .zip(children)
        .map(|(flow, child)| Outcome {
            flow,
            passed: child.and_then(|mut c| c.wait()).is_ok_and(|s| s.success()),
        })
        .collect()
}

/// The deciding rule, from `wardgate query --format json`.
fn deciding_rule(wardgate: &Path, root: &Path, f: &Flow) -> String {
    let out = Command::new(wardgate)
        .current_dir(root)
        .args(["query", POLICY, "--from"])
        .arg(addr(host(f.from), f.v6))
        .arg("--to")
        .arg(addr(host(f.to), f.v6))
        .args([
            "--proto",
            "tcp",
            "--port",
            &f.port.to_string(),
            "--format",
            "json",
        ])
        .output();
    let Ok(out) = out else {
        return "?".into();
    };
    let json = String::from_utf8_lossy(&out.stdout);
    if json.contains("\"rule\":null") {
        return "default deny (no rule allows it)".into();
    }
    let field = |name: &str| {
        let key = format!("\"{name}\":");
        json.split(&key).nth(1).map(|rest| {
            let rest = rest.trim_start();
            if let Some(s) = rest.strip_prefix('"') {
                let mut out = String::new();
                let mut escaped = false;
                for c in s.chars() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {
                            out.push(c);
                            escaped = false;
                        }
                    }
                }
                out
            } else {
                rest.chars().take_while(char::is_ascii_digit).collect()
            }
        })
    };
    match (field("file"), field("line"), field("text")) {
        (Some(file), Some(line), Some(text)) => {
            let file = Path::new(&file)
                .file_name()
                .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
            format!("{file}:{line}  {text}")
        }
        _ => "?".into(),
    }
}

fn print_table(wardgate: &Path, root: &Path, results: &[Outcome]) -> anyhow::Result<()> {
    println!(
        "  {:<52} {:<18} {:<8} {:<9} deciding rule",
        "flow", "service", "expected", "result"
    );
    for r in results {
        let f = r.flow;
        let (from, to) = (host(f.from), host(f.to));
        let flow = format!(
            "{} -> {}{}",
            f.from,
            f.to,
            if f.v6 { " (IPv6)" } else { "" }
        );
        let flow = format!("{flow:<26} {}->{}", from.zone, to.zone);
        let result = match (r.passed, r.passed == f.allowed) {
            (true, true) => "passed",
            (false, true) => "blocked",
            (true, false) => "PASSED!",
            (false, false) => "BLOCKED!",
        };
        println!(
            "  {:<52} {:<18} {:<8} {:<9} {}",
            flow,
            format!("{}/tcp {}", f.port, f.service),
            if f.allowed { "allow" } else { "deny" },
            result,
            deciding_rule(wardgate, root, f)
        );
    }
    Ok(())
}

/// The metrics page, fetched inside the gateway namespace (bash's /dev/tcp).
fn metrics() -> anyhow::Result<String> {
    quiet(
        "ip",
        &[
            "netns",
            "exec",
            GATEWAY,
            "bash",
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/9750; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
        ],
    )
}

fn quarantine(agent: &Path) -> anyhow::Result<()> {
    let socket = format!("{WORK}/agent.sock");
    let agent = agent.to_str().unwrap_or("wardgate-agent");
    let scanner = addr(host("ct-scanner"), false);
    let pacs = addr(host("pacs"), false);
    let probe = || {
        in_ns(&ns("ct-scanner"), "nc", &["-z", "-w", "1", pacs, "104"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let word = |ok: bool| if ok { "passes" } else { "blocked" };
    println!("\nincident response: quarantine the CT scanner ({scanner})\n");
    println!("  ct-scanner -> pacs dicom before:  {}", word(probe()));
    println!("  $ wardgate-agent quarantine add {scanner} --reason \"beaconing to a C2 server\"");
    quiet(
        agent,
        &[
            "quarantine",
            "add",
            scanner,
            "--reason",
            "beaconing to a C2 server",
            "--socket",
            &socket,
        ],
    )?;
    println!("  ct-scanner -> pacs dicom during:  {}", word(probe()));
    let list = quiet(agent, &["quarantine", "list", "--socket", &socket])?;
    println!("  $ wardgate-agent quarantine list\n    {}", list.trim());
    quiet(
        agent,
        &["quarantine", "remove", scanner, "--socket", &socket],
    )?;
    println!("  $ wardgate-agent quarantine remove {scanner}");
    println!("  ct-scanner -> pacs dicom after:   {}", word(probe()));
    Ok(())
}
