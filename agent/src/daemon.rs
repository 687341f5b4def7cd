//! The gateway daemon (`wardgate-agent run`): validates everything, loads
//! the program with its maps pinned, programs the policy and the failsafe,
//! attaches (or adopts the pinned links), then serves reloads, the control
//! socket, metrics and the event log until stopped.
//!
//! Stopping the agent (SIGTERM, SIGINT, even SIGKILL) leaves the program
//! attached and its maps pinned: the gateway keeps enforcing, and the next
//! agent adopts that state without a gap. Only `detach` removes it.

use std::{
    collections::{BTreeMap, BTreeSet},
    convert::Infallible,
    ffi::CString,
    net::IpAddr,
    os::{fd::AsFd as _, unix::fs::PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, anyhow, bail};
use aya::{maps::PerCpuArray, programs::links::FdLink};
use http_body_util::Full;
use hyper::{Method, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Interest, unix::AsyncFd},
    net::{TcpListener, UnixListener, UnixStream},
    sync::{Notify, watch},
};
use wardgate_common::{
    CONFIG_FAILSAFE, CONFIG_FAST_PATH, CONFIG_MONITOR_ALL, CT_CLOSING, CT_ESTABLISHED, CT_NEW,
    CT_TIMEOUT_CLOSING_NS, CT_TIMEOUT_ESTABLISHED_TCP_NS, CT_TIMEOUT_ICMP_NS, CT_TIMEOUT_NEW_NS,
    CT_TIMEOUT_UDP_NS, CtEntry, EVENT_AUDIT, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, counter,
    maps,
};
use wardgate_compiler::PolicyImage;

use crate::{
    AttachMode, Program,
    config::Settings,
    conntrack,
    control::{self, Request, Response},
    eventlog::{self, Clock, Images, Writer},
    events::EventReader,
    failsafe, metrics, pin,
    policy::{self, Compiled, Stamp},
    programmer, quarantine,
};

/// One interface the program is attached to.
struct IfaceLink {
    name: String,
    mode: AttachMode,
    adopted: bool,
    /// Held so the agent owns a reference too; the pin keeps it when the agent is gone.
    _link: FdLink,
}

/// Why an address is quarantined (kept by the running agent only).
#[derive(Clone, Debug)]
struct Note {
    reason: Option<String>,
    since: String,
}

#[derive(Clone, Debug, Default)]
struct ReloadStats {
    success: u64,
    failure: u64,
    last_error: Option<String>,
}

/// The agent's state. One lock; every operation is short.
pub struct Agent {
    settings: Settings,
    program: Program,
    links: Vec<IfaceLink>,
    image: Arc<PolicyImage>,
    source: bool,
    generation: u32,
    loaded_at: SystemTime,
    stamps: Vec<(PathBuf, Stamp)>,
    images: Images,
    reloads: ReloadStats,
    notes: BTreeMap<IpAddr, Note>,
    /// Rule hits at the time the policy in force was loaded, by rule id.
    rule_base: Vec<u64>,
    failsafe_addrs: BTreeSet<IpAddr>,
    failsafe_entries: usize,
    events_written: [u64; 2],
    adopted: bool,
    started: Instant,
}

/// Effective capabilities of this process, from /proc.
fn capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Fails clearly without the privileges loading and attaching XDP needs.
pub fn check_privileges() -> anyhow::Result<()> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let caps = capabilities().unwrap_or(0);
    let has = |c: u32| caps & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !missing.is_empty() {
        bail!(
            "missing privileges: the agent needs {} (run it as root)",
            missing.join(" and ")
        );
    }
    Ok(())
}

fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    #[allow(unsafe_code, reason = "if_nametoindex(3) has no safe wrapper in std")]
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

fn failsafe_addresses(settings: &Settings) -> anyhow::Result<BTreeSet<IpAddr>> {
    let mut addrs = settings.failsafe.addresses.clone();
    if settings.failsafe.own_addresses {
        addrs.extend(failsafe::own_addresses()?);
    }
    Ok(addrs)
}

fn flags(settings: &Settings) -> u32 {
    let mut flags = 0;
    if settings.monitor_all {
        flags |= CONFIG_MONITOR_ALL;
    }
    if settings.failsafe.enabled {
        flags |= CONFIG_FAILSAFE;
    }
    if settings.fast_path {
        flags |= CONFIG_FAST_PATH;
    }
    flags
}

fn rule_hits(program: &Program, count: usize) -> Vec<u64> {
    let Some(map) = program.ebpf().map(maps::RULE_HITS) else {
        return vec![0; count];
    };
    let Ok(array) = PerCpuArray::<_, u64>::try_from(map) else {
        return vec![0; count];
    };
    (0..count)
        .map(|i| {
            u32::try_from(i)
                .ok()
                .and_then(|i| array.get(&i, 0).ok())
                .map_or(0, |v| v.iter().sum())
        })
        .collect()
}

/// The idle timeout of a tracked connection, as the program applies it.
fn ct_timeout(entry: &CtEntry, proto: u8) -> u64 {
    match entry.state {
        CT_CLOSING => CT_TIMEOUT_CLOSING_NS,
        CT_NEW => CT_TIMEOUT_NEW_NS,
        _ if proto == IPPROTO_TCP => CT_TIMEOUT_ESTABLISHED_TCP_NS,
        _ if matches!(proto, IPPROTO_ICMP | IPPROTO_ICMPV6) => CT_TIMEOUT_ICMP_NS,
        _ => CT_TIMEOUT_UDP_NS,
    }
}

impl Agent {
    /// Validates everything, then loads, programs and attaches. Nothing is
    /// attached unless every check passed; on a failure after the program
    /// was loaded, what this call attached is detached again.
    pub fn start(settings: Settings) -> anyhow::Result<(Self, EventReader)> {
        check_privileges()?;
        for iface in &settings.interfaces {
            if ifindex(iface).is_none() {
                bail!("interface `{iface}` does not exist (in this network namespace)");
            }
        }
        pin::check(&settings.pin_path)?;
        let compiled =
            policy::compile(&settings.policy, policy::today()).map_err(|e| anyhow!(e.0))?;
        for w in &compiled.warnings {
            log::warn!("{w}");
        }
        let failsafe_addrs = failsafe_addresses(&settings)?;
        let adopted = pin::has_maps(&settings.pin_path);
        pin::prepare(&settings.pin_path)?;
        let mut agent = match Self::load(settings, compiled, failsafe_addrs, adopted) {
            Ok(agent) => agent,
            Err((settings, err)) => {
                if !adopted {
                    // A first start leaves nothing behind.
                    let _ = pin::remove_all(&settings.pin_path);
                }
                return Err(err);
            }
        };
        let reader = EventReader::new(agent.program.ebpf_mut())?;
        if let Err(err) = agent.attach_all() {
            if !adopted {
                let _ = pin::remove_all(&agent.settings.pin_path);
            }
            return Err(err);
        }
        Ok((agent, reader))
    }

    #[allow(clippy::result_large_err, reason = "returns the settings for cleanup")]
    fn load(
        settings: Settings,
        compiled: Compiled,
        failsafe_addrs: BTreeSet<IpAddr>,
        adopted: bool,
    ) -> Result<Self, (Settings, anyhow::Error)> {
        let mut program = match Program::load_pinned(&settings.pin_path) {
            Ok(p) => p,
            Err(e) => return Err((settings, e)),
        };
        let ebpf = program.ebpf_mut();
        let result = (|| -> anyhow::Result<(usize, u32)> {
            let entries = if settings.failsafe.enabled {
                failsafe::sync(ebpf, &failsafe_addrs, &settings.failsafe.ports)?
            } else {
                failsafe::sync(ebpf, &BTreeSet::new(), &[])?
            };
            let loaded = programmer::load(ebpf, &compiled.image, flags(&settings))
                .context("programming the policy")?;
            programmer::update_config(ebpf, |c| c.events_per_sec = settings.events_per_sec)?;
            Ok((entries, loaded.generation))
        })();
        let (failsafe_entries, generation) = match result {
            Ok(r) => r,
            Err(e) => return Err((settings, e)),
        };
        let image = Arc::new(compiled.image);
        let rule_base = rule_hits(&program, image.rules().len());
        let mut images = Images::default();
        images.push(generation, image.clone());
        log::info!(
            "{} policy `{}` (sha256:{}), generation {generation}",
            if adopted {
                "adopted the pinned state and loaded"
            } else {
                "loaded"
            },
            settings.policy.display(),
            image.hash()
        );
        Ok(Self {
            stamps: policy::stamps(&compiled.files),
            source: compiled.source,
            settings,
            program,
            links: Vec::new(),
            image,
            generation,
            loaded_at: SystemTime::now(),
            images,
            reloads: ReloadStats::default(),
            notes: BTreeMap::new(),
            rule_base,
            failsafe_addrs,
            failsafe_entries,
            events_written: [0; 2],
            adopted,
            started: Instant::now(),
        })
    }

    /// Attaches to every configured interface, adopting pinned links; unpins
    /// the links of interfaces no longer configured.
    fn attach_all(&mut self) -> anyhow::Result<()> {
        let dir = self.settings.pin_path.clone();
        let existing = pin::links(&dir);
        let required = self.settings.xdp_mode.required();
        for iface in self.settings.interfaces.clone() {
            let result = self.attach_one(
                &dir,
                &iface,
                existing.iter().find(|l| l.iface == iface),
                required,
            );
            match result {
                Ok(link) => {
                    log::info!(
                        "{}: {} in {} mode",
                        link.name,
                        if link.adopted {
                            "adopted the pinned link"
                        } else {
                            "attached"
                        },
                        link.mode
                    );
                    self.links.push(link);
                }
                Err(err) => {
                    // Undo what this start attached; adopted links stay as they were.
                    for link in self.links.drain(..).filter(|l| !l.adopted) {
                        let _ = std::fs::remove_file(pin::link_path(&dir, &link.name, link.mode));
                    }
                    return Err(err);
                }
            }
        }
        for stale in existing
            .iter()
            .filter(|l| !self.settings.interfaces.contains(&l.iface))
        {
            match std::fs::remove_file(&stale.path) {
                Ok(()) => log::info!("{}: detached (no longer configured)", stale.iface),
                Err(e) => log::warn!(
                    "{}: cannot unpin `{}`: {e}",
                    stale.iface,
                    stale.path.display()
                ),
            }
        }
        Ok(())
    }

    fn attach_one(
        &mut self,
        dir: &Path,
        iface: &str,
        pinned: Option<&pin::PinnedLinkFile>,
        required: Option<AttachMode>,
    ) -> anyhow::Result<IfaceLink> {
        if let Some(p) = pinned {
            match self.program.adopt_link(&p.path) {
                Ok(link) => {
                    if required.is_some_and(|m| m != p.mode) {
                        log::warn!(
                            "{iface}: stays in {} mode (its pinned link); changing the mode needs \
                             `wardgate-agent detach` and a restart, with a short gap",
                            p.mode
                        );
                    }
                    return Ok(IfaceLink {
                        name: iface.to_owned(),
                        mode: p.mode,
                        adopted: true,
                        _link: link,
                    });
                }
                Err(e) => {
                    // The interface was deleted and recreated: its old link is defunct.
                    log::warn!("{iface}: cannot adopt the pinned link ({e:#}); attaching anew");
                    let _ = std::fs::remove_file(&p.path);
                }
            }
        }
        let (mode, link) = self
            .program
            .attach_pinned(iface, required, |mode| pin::link_path(dir, iface, mode))?;
        Ok(IfaceLink {
            name: iface.to_owned(),
            mode,
            adopted: false,
            _link: link,
        })
    }

    /// Switches to a compiled policy (or notes that it is unchanged).
    fn apply(&mut self, compiled: Compiled, trigger: &str) -> Result<serde_json::Value, String> {
        for w in &compiled.warnings {
            log::warn!("{w}");
        }
        self.stamps = policy::stamps(&compiled.files);
        if compiled.image.hash() == self.image.hash() {
            self.reloads.success += 1;
            self.reloads.last_error = None;
            log::info!(
                "reload ({trigger}): policy unchanged (sha256:{}), generation {}",
                self.image.hash(),
                self.generation
            );
            return Ok(self.reload_result(false));
        }
        let flags = flags(&self.settings);
        match programmer::load(self.program.ebpf_mut(), &compiled.image, flags) {
            Ok(loaded) => {
                let old = std::mem::replace(&mut self.image, Arc::new(compiled.image));
                self.generation = loaded.generation;
                self.source = compiled.source;
                self.loaded_at = SystemTime::now();
                self.images.push(loaded.generation, self.image.clone());
                self.rebase_rules(&old);
                self.reloads.success += 1;
                self.reloads.last_error = None;
                log::info!(
                    "reload ({trigger}): switched to sha256:{}, generation {}",
                    self.image.hash(),
                    self.generation
                );
                Ok(self.reload_result(true))
            }
            Err(e) => Err(self.fail(trigger, format!("programming the maps failed: {e:#}"))),
        }
    }

    fn fail(&mut self, trigger: &str, error: String) -> String {
        self.reloads.failure += 1;
        self.reloads.last_error = Some(error.clone());
        log::error!(
            "reload ({trigger}) failed; the policy in force stays (sha256:{}, generation {}): {error}",
            self.image.hash(),
            self.generation
        );
        error
    }

    fn reload_result(&self, changed: bool) -> serde_json::Value {
        json!({
            "changed": changed,
            "generation": self.generation,
            "hash": format!("sha256:{}", self.image.hash()),
        })
    }

    /// Keeps a rule's count across a reload only if the id still means the same rule.
    fn rebase_rules(&mut self, old: &PolicyImage) {
        let hits = rule_hits(&self.program, self.image.rules().len());
        self.rule_base = self
            .image
            .rules()
            .iter()
            .zip(hits)
            .map(|(rule, now)| {
                let same = old.rule(rule.id).is_some_and(|o| {
                    o.text == rule.text && o.file == rule.file && o.line == rule.line
                });
                match (same, self.rule_base.get(rule.id as usize)) {
                    (true, Some(base)) => *base,
                    _ => now,
                }
            })
            .collect();
    }

    fn quarantine_add(
        &mut self,
        address: &str,
        reason: Option<String>,
    ) -> Result<serde_json::Value, String> {
        let addr = parse_host_address(address)?;
        quarantine::add(self.program.ebpf_mut(), addr).map_err(|e| format!("{e:#}"))?;
        self.notes.insert(
            addr,
            Note {
                reason: reason.clone(),
                since: now_rfc3339(),
            },
        );
        log::warn!(
            "quarantined {addr}{}",
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        );
        Ok(json!({"address": addr, "quarantined": true}))
    }

    fn quarantine_remove(&mut self, address: &str) -> Result<serde_json::Value, String> {
        let addr = parse_host_address(address)?;
        let removed =
            quarantine::remove(self.program.ebpf_mut(), addr).map_err(|e| format!("{e:#}"))?;
        self.notes.remove(&addr);
        if !removed {
            return Err(format!("`{addr}` is not quarantined"));
        }
        log::warn!("released {addr} from quarantine");
        Ok(json!({"address": addr, "quarantined": false}))
    }

    fn quarantine_list(&mut self) -> Result<serde_json::Value, String> {
        let addrs = quarantine::list(self.program.ebpf_mut()).map_err(|e| format!("{e:#}"))?;
        Ok(json!(
            addrs
                .iter()
                .map(|a| {
                    let note = self.notes.get(a);
                    json!({
                        "address": a,
                        "reason": note.and_then(|n| n.reason.clone()),
                        "since": note.map(|n| n.since.clone()),
                    })
                })
                .collect::<Vec<_>>()
        ))
    }

    fn counters(&self) -> Vec<u64> {
        self.program
            .counters()
            .unwrap_or_else(|_| vec![0; counter::COUNT as usize])
    }

    fn tracked(&mut self) -> metrics::Tracked {
        let now = Clock::monotonic_now();
        let mut t = metrics::Tracked::default();
        let Ok(entries) = conntrack::entries(self.program.ebpf_mut()) else {
            return t;
        };
        for (key, entry) in entries {
            if now.saturating_sub(entry.last_seen_ns) > ct_timeout(&entry, key.proto) {
                continue;
            }
            match entry.state {
                CT_NEW => t.new += 1,
                CT_ESTABLISHED => t.established += 1,
                _ => t.closing += 1,
            }
        }
        t
    }

    fn metrics_input(&mut self) -> metrics::Input {
        let hits = rule_hits(&self.program, self.image.rules().len());
        let rules = self
            .image
            .rules()
            .iter()
            .zip(hits)
            .map(|(r, h)| {
                let (from, to) = metrics::rule_ends(&r.text);
                metrics::RuleHits {
                    id: r.id,
                    action: r.action.as_str(),
                    location: format!("{}:{}", r.file, r.line),
                    from,
                    to,
                    hits: h.saturating_sub(self.rule_base.get(r.id as usize).copied().unwrap_or(0)),
                }
            })
            .collect();
        let quarantined = quarantine::list(self.program.ebpf_mut()).map_or(0, |l| l.len());
        metrics::Input {
            counters: self.counters(),
            rules,
            generation: self.generation,
            hash: self.image.hash().to_owned(),
            policy: self.settings.policy.display().to_string(),
            reload_success: self.reloads.success,
            reload_failure: self.reloads.failure,
            last_reload_ok: self.reloads.last_error.is_none(),
            interfaces: self
                .links
                .iter()
                .map(|l| (l.name.clone(), l.mode))
                .collect(),
            tracked: self.tracked(),
            quarantined: quarantined as u64,
            failsafe_entries: self.failsafe_entries as u64,
            events_written_drop: self.events_written[0],
            events_written_audit: self.events_written[1],
            monitor_all: self.settings.monitor_all,
        }
    }

    fn status(&mut self) -> serde_json::Value {
        let counters = self.counters();
        let named: serde_json::Map<String, serde_json::Value> = counter::NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    (*n).to_owned(),
                    json!(counters.get(i).copied().unwrap_or(0)),
                )
            })
            .collect();
        let c = |i: u32| counters.get(i as usize).copied().unwrap_or(0);
        let tracked = self.tracked();
        let quarantined = quarantine::list(self.program.ebpf_mut()).map_or(0, |l| l.len());
        json!({
            "pid": std::process::id(),
            "uptime_secs": self.started.elapsed().as_secs(),
            "adopted": self.adopted,
            "policy": {
                "file": self.settings.policy,
                "kind": if self.source { "source" } else { "image" },
                "hash": format!("sha256:{}", self.image.hash()),
                "generation": self.generation,
                "loaded_at": jiff::Timestamp::try_from(self.loaded_at).map(|t| t.to_string()).ok(),
                "zones": self.image.zones().len(),
                "rules": self.image.rules().len(),
            },
            "monitor_all": self.settings.monitor_all,
            "fast_path": self.settings.fast_path,
            "pin_path": self.settings.pin_path,
            "interfaces": self.links.iter().map(|l| json!({
                "name": l.name, "mode": l.mode.to_string(), "adopted": l.adopted,
            })).collect::<Vec<_>>(),
            "summary": {
                "packets": c(counter::PACKETS),
                "passed": c(counter::PASS_RULE) + c(counter::PASS_INTRA_ZONE) + c(counter::PASS_TRACKED)
                    + c(counter::PASS_FAILSAFE) + c(counter::PASS_FRAGMENT),
                "dropped": c(counter::DROP_POLICY) + c(counter::DROP_QUARANTINE) + c(counter::DROP_TRUNCATED)
                    + c(counter::DROP_MALFORMED) + c(counter::DROP_FRAGMENT),
                "audited": c(counter::AUDIT),
                "tracked_connections": tracked.new + tracked.established + tracked.closing,
                "quarantined": quarantined,
                "events_written": self.events_written[0] + self.events_written[1],
                "events_lost": c(counter::EVENTS_LOST),
            },
            "counters": named,
            "failsafe": {
                "enabled": self.settings.failsafe.enabled,
                "ports": self.settings.failsafe.ports,
                "entries": self.failsafe_entries,
            },
            "reloads": {
                "success": self.reloads.success,
                "failure": self.reloads.failure,
                "last_error": self.reloads.last_error,
            },
        })
    }

    /// Re-reads the gateway's addresses and updates the failsafe if they changed.
    fn refresh_failsafe(&mut self) {
        if !self.settings.failsafe.enabled || !self.settings.failsafe.own_addresses {
            return;
        }
        match failsafe_addresses(&self.settings) {
            Ok(addrs) if addrs != self.failsafe_addrs => {
                match failsafe::sync(
                    self.program.ebpf_mut(),
                    &addrs,
                    &self.settings.failsafe.ports,
                ) {
                    Ok(n) => {
                        log::info!("failsafe: the gateway's addresses changed; {n} entries");
                        self.failsafe_entries = n;
                        self.failsafe_addrs = addrs;
                    }
                    Err(e) => log::error!("failsafe: {e:#}"),
                }
            }
            Ok(_) => {}
            Err(e) => log::error!("failsafe: {e:#}"),
        }
    }

    /// Detaches from every interface and unpins every map.
    fn detach(&mut self) -> anyhow::Result<pin::Removed> {
        // Drop our references first: unpinning then releases each link, which
        // detaches the program from its interface.
        self.links.clear();
        let removed = pin::remove_all(&self.settings.pin_path)?;
        log::warn!(
            "detached from {} and unpinned {} maps; the gateway no longer enforces",
            if removed.links.is_empty() {
                "no interface".to_owned()
            } else {
                removed.links.join(", ")
            },
            removed.maps
        );
        Ok(removed)
    }
}

/// Parses a quarantine address: one unicast host address.
fn parse_host_address(text: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = text.trim().parse().map_err(|_| {
        format!("`{text}` is not an IP address (quarantine takes one host address, not a prefix)")
    })?;
    let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() || broadcast {
        return Err(format!("`{addr}` is not a host address"));
    }
    Ok(addr)
}

type Shared = Arc<Mutex<Agent>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Agent> {
    // A panic while holding the lock leaves plain data; keep serving.
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything the tasks share.
#[derive(Clone)]
struct Ctx {
    agent: Shared,
    /// Serializes reloads (file change, signal, request, midnight).
    reloading: Arc<tokio::sync::Mutex<()>>,
    shutdown: watch::Sender<bool>,
    reopen: Arc<Notify>,
}

impl Ctx {
    async fn reload(&self, trigger: &str) -> Result<serde_json::Value, String> {
        let _guard = self.reloading.lock().await;
        let path = lock(&self.agent).settings.policy.clone();
        let compiled = tokio::task::spawn_blocking(move || policy::compile(&path, policy::today()))
            .await
            .map_err(|e| format!("the compiler panicked: {e}"))
            .and_then(|r| r.map_err(|e| e.0));
        let mut agent = lock(&self.agent);
        match compiled {
            Ok(c) => agent.apply(c, trigger),
            Err(e) => {
                // Watch the files as they are now, so the same broken state is not retried.
                let files: Vec<PathBuf> = agent.stamps.iter().map(|(p, _)| p.clone()).collect();
                agent.stamps = policy::stamps(&files);
                Err(agent.fail(trigger, e))
            }
        }
    }

    async fn handle(&self, req: Request) -> Response {
        let result = match req {
            Request::Status {} => Ok(lock(&self.agent).status()),
            Request::Reload {} => self.reload("request").await,
            Request::QuarantineAdd { address, reason } => {
                lock(&self.agent).quarantine_add(&address, reason)
            }
            Request::QuarantineRemove { address } => lock(&self.agent).quarantine_remove(&address),
            Request::QuarantineList {} => lock(&self.agent).quarantine_list(),
            Request::Detach {} => {
                let removed = lock(&self.agent).detach();
                match removed {
                    Ok(r) => {
                        let _ = self.shutdown.send(true);
                        Ok(json!({"interfaces": r.links, "maps": r.maps}))
                    }
                    Err(e) => Err(format!("{e:#}")),
                }
            }
        };
        match result {
            Ok(v) => Response::ok(v),
            Err(e) => Response::error(e),
        }
    }
}

/// Binds the control socket (owner-only). Refuses if another agent answers on it.
fn bind_control(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another agent is running: its control socket `{}` answers",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket `{}`", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind the control socket `{}`", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict `{}` to its owner", path.display()))?;
    Ok(listener)
}

/// Runs the daemon until SIGTERM/SIGINT (enforcement stays) or `detach`.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(settings))
}

async fn run_async(settings: Settings) -> anyhow::Result<()> {
    check_privileges()?;
    // Everything that can fail on bad input fails before the kernel is touched.
    let metrics_listener = match settings.metrics {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    let writer = Writer::open(&settings.events)?;
    let socket = settings.control_socket.clone();
    let control_listener = bind_control(&socket)?;
    let started = Agent::start(settings);
    let (agent, reader) = match started {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            return Err(e);
        }
    };
    let watch_files = agent.settings.watch;
    let watch_interval = agent.settings.watch_interval;
    let pin_path = agent.settings.pin_path.clone();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ctx = Ctx {
        agent: Arc::new(Mutex::new(agent)),
        reloading: Arc::new(tokio::sync::Mutex::new(())),
        shutdown: shutdown_tx,
        reopen: Arc::new(Notify::new()),
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(events_task(
        ctx.clone(),
        reader,
        writer,
        shutdown_rx.clone(),
    ));
    tasks.spawn(control_task(ctx.clone(), control_listener));
    if let Some(listener) = metrics_listener {
        log::info!("metrics on http://{}/metrics", listener.local_addr()?);
        tasks.spawn(metrics_task(ctx.clone(), listener));
    }
    if watch_files {
        tasks.spawn(watch_task(ctx.clone(), watch_interval));
    }
    tasks.spawn(midnight_task(ctx.clone()));
    tasks.spawn(failsafe_task(ctx.clone()));
    tasks.spawn(signal_task(ctx.clone()));
    log::info!("enforcing; control socket `{}`", socket.display());

    let mut shutdown = shutdown_rx;
    let _ = shutdown.wait_for(|s| *s).await;
    // Let the event task write what is left.
    tokio::time::sleep(Duration::from_millis(100)).await;
    tasks.abort_all();
    let _ = std::fs::remove_file(&socket);
    if pin::has_maps(&pin_path) {
        log::info!(
            "stopped; enforcement stays in place (pinned under `{}`); `wardgate-agent detach` removes it",
            pin_path.display()
        );
    } else {
        log::info!("stopped");
    }
    Ok(())
}

async fn signal_task(ctx: Ctx) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                ctx.reopen.notify_one();
                let _ = ctx.reload("SIGHUP").await;
            }
            _ = term.recv() => { let _ = ctx.shutdown.send(true); }
            _ = int.recv() => { let _ = ctx.shutdown.send(true); }
        }
    }
}

async fn events_task(
    ctx: Ctx,
    mut reader: EventReader,
    mut writer: Writer,
    mut shutdown: watch::Receiver<bool>,
) {
    let clock = Clock::new();
    let ready = reader.ring().as_fd().try_clone_to_owned().and_then(|fd| {
        // SAFETY: an `OwnedFd` that the `AsyncFd` owns: it stays open and
        // is the same descriptor for the `AsyncFd`'s whole life.
        #[allow(
            unsafe_code,
            reason = "tokio's AsyncFd registration is unsafe since 1.52"
        )]
        let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        registered.map_err(|e| std::io::Error::other(e.to_string()))
    });
    let ready = match ready {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!("events: cannot wait on the ring buffer ({e}); polling");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let stop = tokio::select! {
            r = async { match &ready { Some(fd) => fd.readable().await.map(|mut g| g.clear_ready()), None => std::future::pending().await } } => { let _ = r; false }
            _ = tick.tick() => false,
            _ = ctx.reopen.notified() => {
                if let Err(e) = writer.reopen() { log::error!("events: {e:#}"); }
                false
            }
            _ = shutdown.changed() => true,
        };
        let events = reader.drain();
        if !events.is_empty() {
            let images = lock(&ctx.agent).images.clone();
            let records: Vec<_> = events
                .iter()
                .map(|e| eventlog::record(e, &images, &clock))
                .collect();
            if let Err(e) = writer.write(&records) {
                log::error!("events: writing the event log failed: {e}");
            }
            let audits = events.iter().filter(|e| e.verdict == EVENT_AUDIT).count() as u64;
            let mut agent = lock(&ctx.agent);
            agent.events_written[1] += audits;
            agent.events_written[0] += events.len() as u64 - audits;
        }
        if stop {
            break;
        }
    }
}

async fn control_task(ctx: Ctx, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(control_connection(ctx.clone(), stream));
            }
            Err(e) => {
                log::error!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn control_connection(ctx: Ctx, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let response = match control::parse(&line) {
            Ok(req) => ctx.handle(req).await,
            Err(resp) => resp,
        };
        let mut text = serde_json::to_string(&response).expect("responses serialize");
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() {
            break;
        }
    }
}

async fn metrics_task(ctx: Ctx, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let ctx = ctx.clone();
                async move {
                    let (status, content_type, body) = match (req.method(), req.uri().path()) {
                        (&Method::GET, "/metrics") => {
                            let input = lock(&ctx.agent).metrics_input();
                            (
                                200,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                metrics::render(&input),
                            )
                        }
                        (&Method::GET, "/") => (
                            200,
                            "text/plain; charset=utf-8",
                            "wardgate-agent: metrics at /metrics\n".to_owned(),
                        ),
                        _ => (404, "text/plain; charset=utf-8", "not found\n".to_owned()),
                    };
                    let response = hyper::Response::builder()
                        .status(status)
                        .header(hyper::header::CONTENT_TYPE, content_type)
                        .body(Full::new(Bytes::from(body)))
                        .expect("a valid response");
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn watch_task(ctx: Ctx, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let changed = policy::changed(&lock(&ctx.agent).stamps);
        if changed {
            // Let an editor finish writing (several writes, or write and rename).
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = ctx.reload("file change").await;
        }
    }
}

async fn midnight_task(ctx: Ctx) {
    loop {
        tokio::time::sleep(policy::until_next_midnight()).await;
        if lock(&ctx.agent).source {
            // Rules whose `until` date has passed are lowered out.
            let _ = ctx.reload("date change").await;
        }
    }
}

async fn failsafe_task(ctx: Ctx) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        lock(&ctx.agent).refresh_failsafe();
    }
}

/// `wardgate-agent detach` when no agent runs: unpins what is under `dir`.
pub fn detach_offline(dir: &Path) -> anyhow::Result<pin::Removed> {
    if !dir.exists() {
        return Ok(pin::Removed::default());
    }
    pin::check(dir)?;
    pin::remove_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses() {
        assert!(parse_host_address("10.0.0.1").is_ok());
        assert!(parse_host_address("2001:db8::1").is_ok());
        assert!(
            parse_host_address("10.0.0.0/8")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(
            parse_host_address("0.0.0.0")
                .unwrap_err()
                .contains("not a host")
        );
        assert!(parse_host_address("ff02::1").is_err());
        assert!(parse_host_address("banana").is_err());
    }
}
