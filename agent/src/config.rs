//! The agent's settings: a YAML config file (`--config`), command-line flags
//! over it, defaults under both. `docs/agent.md` documents every key; keep
//! the two in step.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::{
    AttachMode,
    bundle_source::{self, Source, SourceFile, SourceFlags},
    failsafe,
    pin::DEFAULT_PIN_DIR,
};

/// Where the control socket is unless told otherwise.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/wardgate/agent.sock";
/// Where metrics are served unless told otherwise.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9750";

/// How to attach the program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeSetting {
    /// Driver mode where the driver supports XDP, else generic mode (logged).
    #[default]
    Auto,
    /// Driver (native) mode only; fail where the driver lacks XDP.
    Driver,
    /// Generic (skb) mode only.
    Generic,
}

impl XdpModeSetting {
    /// The one mode required, or `None` for "try driver, fall back".
    pub fn required(self) -> Option<AttachMode> {
        match self {
            Self::Auto => None,
            Self::Driver => Some(AttachMode::Driver),
            Self::Generic => Some(AttachMode::Generic),
        }
    }
}

/// Where drop and audit events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSink {
    Stdout,
    File(PathBuf),
    Off,
}

impl EventSink {
    fn parse(text: &str, base: &Path) -> Self {
        match text {
            "stdout" | "-" => Self::Stdout,
            "off" => Self::Off,
            path => Self::File(base.join(path)),
        }
    }
}

/// A failsafe port as written: `22` or `"tcp/22"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    Number(u16),
    Text(String),
}

impl PortSpec {
    fn port(&self) -> anyhow::Result<u16> {
        match self {
            Self::Number(0) => bail!("failsafe port 0 is not a port number (1 to 65535)"),
            Self::Number(n) => Ok(*n),
            Self::Text(t) => failsafe::parse_port(t),
        }
    }
}

/// The `failsafe:` section of the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailsafeFile {
    pub enabled: Option<bool>,
    pub ports: Option<Vec<PortSpec>>,
    /// Addresses, or `auto` for every address of the gateway.
    pub addresses: Option<Vec<String>>,
}

/// The config file, as written. Every key is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub policy: Option<PathBuf>,
    pub interfaces: Option<Vec<String>>,
    pub xdp_mode: Option<XdpModeSetting>,
    pub pin_path: Option<PathBuf>,
    pub control_socket: Option<PathBuf>,
    /// `HOST:PORT`, or `off`.
    pub metrics: Option<String>,
    /// `stdout`, `off`, or a file path (appended to).
    pub events: Option<String>,
    pub events_per_sec: Option<u32>,
    /// Size budget of the event log file in MiB: past it the file is
    /// renamed to `<file>.1` (replacing the previous one) and a new one started.
    pub events_max_mib: Option<u64>,
    /// `false`: no per-rule series in the metrics (one per rule otherwise).
    pub rule_metrics: Option<bool>,
    pub monitor_all: Option<bool>,
    /// Flow records of new connections as JSON lines (a file path); off when absent.
    pub flows_log: Option<PathBuf>,
    /// How often the kernel's flow table is drained into the flows log.
    pub flows_interval_ms: Option<u64>,
    /// Forward allowed, tracked traffic in XDP (`CONFIG_FAST_PATH`).
    pub fast_path: Option<bool>,
    pub watch: Option<bool>,
    pub watch_interval_ms: Option<u64>,
    pub failsafe: Option<FailsafeFile>,
    /// Pull the policy as a signed bundle instead of reading `policy:`.
    pub source: Option<SourceFile>,
}

impl FileConfig {
    /// The largest config file read.
    pub const MAX_BYTES: u64 = 1 << 20;

    /// Reads and parses a config file (a regular file of at most [`Self::MAX_BYTES`]).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = crate::policy::read_regular(path, Self::MAX_BYTES)
            .with_context(|| format!("cannot read the config file `{}`", path.display()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("the config file `{}` is not UTF-8", path.display()))?;
        serde_yaml::from_str(&text)
            .with_context(|| format!("invalid config file `{}`", path.display()))
    }
}

/// Command-line settings; each one given replaces the config file's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub policy: Option<PathBuf>,
    pub interfaces: Vec<String>,
    pub xdp_mode: Option<XdpModeSetting>,
    pub pin_path: Option<PathBuf>,
    pub control_socket: Option<PathBuf>,
    pub metrics: Option<String>,
    pub events: Option<String>,
    pub events_per_sec: Option<u32>,
    pub events_max_mib: Option<u64>,
    pub no_rule_metrics: bool,
    pub monitor_all: bool,
    pub flows_log: Option<PathBuf>,
    pub fast_path: bool,
    pub no_watch: bool,
    pub no_failsafe: bool,
    pub failsafe_ports: Vec<String>,
    /// `--bundle-url` and the other bundle flags.
    pub source: SourceFlags,
}

/// The failsafe as resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failsafe {
    pub enabled: bool,
    /// TCP ports.
    pub ports: Vec<u16>,
    /// Include every address of the gateway (re-read periodically).
    pub own_addresses: bool,
    /// Further addresses.
    pub addresses: BTreeSet<IpAddr>,
}

/// Everything the daemon runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub policy: PathBuf,
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpModeSetting,
    pub pin_path: PathBuf,
    pub control_socket: PathBuf,
    pub metrics: Option<SocketAddr>,
    pub events: EventSink,
    pub events_per_sec: u32,
    /// Rotate the event log file before it grows past this many bytes.
    pub events_max_bytes: Option<u64>,
    /// Per-rule series in the metrics.
    pub rule_metrics: bool,
    pub monitor_all: bool,
    /// The flows log (`docs/agent.md`, "Flows log"); `None`: not written.
    pub flows_log: Option<PathBuf>,
    pub flows_interval: Duration,
    pub fast_path: bool,
    pub watch: bool,
    pub watch_interval: Duration,
    pub failsafe: Failsafe,
    /// Where signed bundles come from; `policy` is then the active image in
    /// the state directory.
    pub source: Option<Source>,
}

impl Settings {
    /// Resolves the config file (if any) and the flags into settings.
    /// Relative paths in the file are relative to the file's directory.
    pub fn resolve(config: Option<&Path>, flags: Overrides) -> anyhow::Result<Self> {
        let (file, base) = match config {
            Some(path) => (
                FileConfig::read(path)?,
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            ),
            None => (FileConfig::default(), PathBuf::new()),
        };
        let source = bundle_source::resolve(file.source.clone(), flags.source, &base)?;
        let policy = match (flags.policy, file.policy, &source) {
            (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => bail!(
                "give either a policy file (`--policy`, `policy:`) or a bundle source \
                 (`--bundle-url`, `source:`), not both"
            ),
            (None, None, Some(s)) => s.active_image(),
            (Some(p), _, None) => p,
            (None, Some(p), None) => base.join(p),
            (None, None, None) => {
                bail!(
                    "no policy: give `--policy FILE` or `policy:` in the config file \
                     (or a bundle source: `--bundle-url URL --trusted-key PUB`)"
                )
            }
        };
        let interfaces = if flags.interfaces.is_empty() {
            file.interfaces.unwrap_or_default()
        } else {
            flags.interfaces
        };
        if interfaces.is_empty() {
            bail!(
                "no interface: give `--iface IF` (repeat for several) or `interfaces:` in the config file"
            );
        }
        let mut seen = BTreeSet::new();
        for iface in &interfaces {
            if !seen.insert(iface) {
                bail!("interface `{iface}` is given twice");
            }
        }
        let metrics_text = flags
            .metrics
            .or(file.metrics)
            .unwrap_or_else(|| DEFAULT_METRICS.to_owned());
        let metrics = if metrics_text == "off" {
            None
        } else {
            Some(metrics_text.parse::<SocketAddr>().with_context(|| {
                format!("metrics address `{metrics_text}` is not HOST:PORT (or `off`)")
            })?)
        };
        let events = match (flags.events, file.events) {
            (Some(e), _) => EventSink::parse(&e, Path::new("")),
            (None, Some(e)) => EventSink::parse(&e, &base),
            (None, None) => EventSink::Stdout,
        };
        let fs_file = file.failsafe.unwrap_or_default();
        let ports = if flags.failsafe_ports.is_empty() {
            match fs_file.ports {
                Some(specs) => specs.iter().map(PortSpec::port).collect::<Result<_, _>>()?,
                None => vec![22],
            }
        } else {
            flags
                .failsafe_ports
                .iter()
                .map(|p| failsafe::parse_port(p))
                .collect::<Result<_, _>>()?
        };
        let mut own_addresses = false;
        let mut addresses = BTreeSet::new();
        for a in fs_file.addresses.unwrap_or_else(|| vec!["auto".into()]) {
            if a == "auto" {
                own_addresses = true;
            } else {
                addresses.insert(a.parse::<IpAddr>().with_context(|| {
                    format!("failsafe address `{a}` is not an IP address (or `auto`)")
                })?);
            }
        }
        let enabled = !flags.no_failsafe && fs_file.enabled.unwrap_or(true);
        let events_per_sec = flags
            .events_per_sec
            .or(file.events_per_sec)
            .unwrap_or(wardgate_common::DEFAULT_EVENTS_PER_SEC);
        Ok(Self {
            policy,
            interfaces,
            xdp_mode: flags.xdp_mode.or(file.xdp_mode).unwrap_or_default(),
            pin_path: flags
                .pin_path
                .or(file.pin_path)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_DIR)),
            control_socket: flags
                .control_socket
                .or(file.control_socket.map(|p| base.join(p)))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET)),
            metrics,
            events,
            events_per_sec,
            events_max_bytes: flags
                .events_max_mib
                .or(file.events_max_mib)
                .filter(|m| *m > 0)
                .map(|m| m << 20),
            rule_metrics: !flags.no_rule_metrics && file.rule_metrics.unwrap_or(true),
            monitor_all: flags.monitor_all || file.monitor_all.unwrap_or(false),
            flows_log: flags.flows_log.or(file.flows_log.map(|p| base.join(p))),
            flows_interval: Duration::from_millis(
                file.flows_interval_ms
                    .unwrap_or(10_000)
                    .clamp(100, 3_600_000),
            ),
            fast_path: flags.fast_path || file.fast_path.unwrap_or(false),
            // A pulled policy changes by the puller only.
            watch: source.is_none() && !flags.no_watch && file.watch.unwrap_or(true),
            watch_interval: Duration::from_millis(file.watch_interval_ms.unwrap_or(500).max(50)),
            failsafe: Failsafe {
                enabled,
                ports,
                own_addresses,
                addresses,
            },
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agent.yaml");
        let s = Settings::resolve(Some(&path), Overrides::default()).unwrap();
        assert!(s.policy.ends_with("hospital.ward"));
        assert_eq!(s.failsafe.ports, vec![22]);
        assert!(s.failsafe.own_addresses);
    }

    #[test]
    fn fleet_example_config_pulls_bundles() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet/agent.yaml");
        let s = Settings::resolve(Some(&path), Overrides::default()).unwrap();
        let source = s.source.expect("a bundle source");
        assert_eq!(
            source.url,
            "https://bundles.example.org/wardgate/north/policy.tar.gz"
        );
        assert_eq!(source.poll, Duration::from_secs(30));
        assert_eq!(s.policy, Path::new("/var/lib/wardgate/policy.img"));
        assert!(!s.watch, "a pulled policy is not watched");
        // A policy file and a bundle source together are refused.
        let err = Settings::resolve(
            Some(&path),
            Overrides {
                policy: Some("p.ward".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn flags_override_and_defaults() {
        let s = Settings::resolve(
            None,
            Overrides {
                policy: Some("p.ward".into()),
                interfaces: vec!["eth1".into()],
                failsafe_ports: vec!["tcp/2222".into()],
                metrics: Some("off".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(s.failsafe.ports, vec![2222]);
        assert_eq!(s.metrics, None);
        assert_eq!(s.pin_path, Path::new(DEFAULT_PIN_DIR));
        assert_eq!(s.events, EventSink::Stdout);
    }

    #[test]
    fn clear_errors() {
        let err = |o: Overrides| Settings::resolve(None, o).unwrap_err().to_string();
        assert!(err(Overrides::default()).contains("no policy"));
        assert!(
            err(Overrides {
                policy: Some("p".into()),
                ..Overrides::default()
            })
            .contains("no interface")
        );
        assert!(
            err(Overrides {
                policy: Some("p".into()),
                interfaces: vec!["a".into(), "a".into()],
                ..Overrides::default()
            })
            .contains("twice")
        );
        let yaml: Result<FileConfig, _> = serde_yaml::from_str("polcy: x\n");
        assert!(
            yaml.unwrap_err()
                .to_string()
                .contains("unknown field `polcy`")
        );
    }
}
