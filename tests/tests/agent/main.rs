//! The agent's end-to-end tests: the real `wardgate-agent` binary in a
//! gateway namespace between host namespaces, real traffic through it.
//!
//! Every test starts with `privilege::kernel_tests_can_run`, uses its own
//! namespaces, pin directory (under /sys/fs/bpf) and control socket, and
//! cleans them up on drop, also when it fails. Modules by area: `hospital`
//! (end to end, IPv4 and IPv6, failsafe), `reload` (hitless reloads under
//! load, broken policies), `restart` (kill -9, adoption, detach),
//! `quarantine`, `observability` (metrics and events counted), `bad_input`,
//! `under_fire` (fail closed, bounded sockets, incident commands during a
//! flood), `limits` (sizes, capacities and operator-facing details),
//! `fleet` (three agents pulling signed bundles from nginx over HTTPS,
//! scraped by Prometheus), `deploy` (the systemd unit's capabilities, bpffs
//! mounted when missing).

mod bad_input;
mod deploy;
mod fleet;
mod hospital;
mod learning;
mod limits;
mod observability;
mod quarantine;
mod reload;
mod restart;
mod under_fire;

use std::path::PathBuf;

use wardgate_tests::{
    agent::{Agent, PinDir, TempDir},
    netns::Topology,
};

/// Two zones and the services the focused tests use.
pub const TWO_ZONES: &str = r#"
zone clients { networks 10.1.0.0/24, 2001:db8:1::/64 }
zone servers { networks 10.2.0.0/24, 2001:db8:2::/64 }
allow clients -> servers : tcp/7000, tcp/7001, udp/5000, udp/6000
"#;

/// A client host (`gw0` on the gateway) and a server host (`gw1`).
pub fn two_hosts() -> Topology {
    Topology::builder()
        .host("client", &["10.1.0.10/24", "2001:db8:1::10/64"])
        .host("server", &["10.2.0.10/24", "2001:db8:2::10/64"])
        .build()
        .expect("building the topology")
}

/// An agent on [`two_hosts`] enforcing `contents` (written to `file` in its
/// own directory) on `gw0` and `gw1`, started with `extra` arguments.
///
/// The fields drop in declaration order (the agent first, the namespaces
/// last); destructure them as `Started { topo, dir, pins, policy, agent }`
/// to keep that order, binding every field that must outlive the statement.
pub struct Started {
    pub agent: Agent,
    pub policy: PathBuf,
    pub pins: PinDir,
    pub dir: TempDir,
    pub topo: Topology,
}

pub fn start_on_two_hosts(file: &str, contents: impl AsRef<[u8]>, extra: &[&str]) -> Started {
    let topo = two_hosts();
    let dir = TempDir::new();
    let pins = PinDir::new();
    let policy = dir.write(file, contents);
    let agent = Agent::start(&topo.gateway, &dir, &pins, &policy, &["gw0", "gw1"], extra);
    Started {
        agent,
        policy,
        pins,
        dir,
        topo,
    }
}

/// A file of the repository.
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// The value of the series `name` whose labels include `labels`, in a
/// Prometheus text page (0 if absent).
pub fn metric(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap_or(f64::NAN))
        .sum()
}

/// True if XDP is attached to `iface` in the namespace.
pub fn xdp_attached(topology: &Topology, iface: &str) -> bool {
    topology
        .gateway
        .ip(&["-d", "link", "show", "dev", iface])
        .expect("ip link show")
        .contains("prog/xdp")
}
