//! The gateway daemon (`wardgate-agent run`): validates everything, loads
//! the program with its maps pinned, programs the policy and the failsafe,
//! attaches (or adopts the pinned links), then serves reloads, the control
//! socket, metrics and the event log until stopped.
//!
//! Stopping the agent (SIGTERM, SIGINT, even SIGKILL) leaves the program
//! attached and its maps pinned: the gateway keeps enforcing, and the next
//! agent adopts that state without a gap. Only `detach` removes it.
//!
//! This module is the lifecycle (validate, load, attach, run, stop); the
//! other jobs have a module each: [`reload`] (policy reloads, the file
//! watcher and retries), [`incident`] (quarantine), [`views`] (status and
//! metrics input), [`control_server`] (the control socket), [`http`] (the
//! metrics server), [`timers`] (signals, midnight, failsafe refresh),
//! [`event_writer`] (the event log, on its own thread), [`flow_writer`] (the
//! flows log, on its own thread) and [`tracked`] (the connection-table
//! summary, on its own thread).
//!
//! Locking: one `Mutex<Agent>` held only for short map operations; the event
//! writer and the connection-table walk never take it, so incident commands
//! answer whatever the traffic.

mod control_server;
mod event_writer;
mod flow_writer;
mod http;
mod incident;
mod pull;
mod reload;
mod timers;
mod tracked;
mod views;

pub use incident::{offline_quarantine, parse_host_address};

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::CString,
    net::IpAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, bail};
use aya::{maps::PerCpuArray, programs::links::FdLink};
use tokio::{
    net::{TcpListener, UnixListener},
    sync::watch,
};
use wardgate_common::{CONFIG_FAILSAFE, CONFIG_FAST_PATH, CONFIG_FLOWS, CONFIG_MONITOR_ALL, maps};
use wardgate_compiler::PolicyImage;

use crate::{
    AttachMode, Program,
    config::Settings,
    control::{ReloadsStatus, Request, Response},
    eventlog::{Images, Writer},
    failsafe, pin,
    pin::PinLock,
    policy::{self, Compiled, Stamp},
    programmer,
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

/// A reload that failed for a passing reason (too many open files), to try
/// again without waiting for the file to change.
#[derive(Clone, Copy, Debug)]
struct Retry {
    at: Instant,
    backoff: Duration,
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
    /// The policy files as they were just before the last (attempted) read.
    stamps: Vec<(PathBuf, Stamp)>,
    retry: Option<Retry>,
    reloads: ReloadsStatus,
    notes: BTreeMap<IpAddr, Note>,
    /// Rule hits at the time the policy in force was loaded, by rule id.
    rule_base: Vec<u64>,
    failsafe_addrs: BTreeSet<IpAddr>,
    failsafe_entries: usize,
    adopted: bool,
    started: Instant,
    /// The bundle puller's state, when the policy is pulled.
    pull: Option<crate::bundle_source::PullState>,
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

pub(super) fn failsafe_addresses(settings: &Settings) -> anyhow::Result<BTreeSet<IpAddr>> {
    let mut addrs = settings.failsafe.addresses.clone();
    if settings.failsafe.own_addresses {
        addrs.extend(failsafe::own_addresses()?);
    }
    Ok(addrs)
}

pub(super) fn flags(settings: &Settings) -> u32 {
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
    if settings.flows_log.is_some() {
        flags |= CONFIG_FLOWS;
    }
    flags
}

pub(super) fn rule_hits(program: &Program, count: usize) -> Vec<u64> {
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

impl Agent {
    /// Validates everything, then loads, programs and attaches. Nothing is
    /// attached unless every check passed; on a failure after the program
    /// was loaded, what this call attached is detached again.
    pub fn start(settings: Settings) -> anyhow::Result<(Self, crate::events::EventReader)> {
        check_privileges()?;
        for iface in &settings.interfaces {
            if ifindex(iface).is_none() {
                bail!("interface `{iface}` does not exist (in this network namespace)");
            }
        }
        crate::bpffs::ensure_mounted(&settings.pin_path)?;
        pin::check(&settings.pin_path)?;
        let compiled = policy::compile(&settings.policy, policy::today())
            .map_err(|e| anyhow::anyhow!(e.message))?;
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
        let reader = crate::events::EventReader::new(agent.program.ebpf_mut())?;
        if let Err(err) = agent.attach_all() {
            if !adopted {
                let _ = pin::remove_all(&agent.settings.pin_path);
            }
            return Err(err);
        }
        // Every interface runs this program now: an older release's maps
        // can go, and the filter can be completed.
        match pin::remove_retired(&agent.settings.pin_path) {
            Ok(names) if !names.is_empty() => {
                log::info!("unpinned maps of an older release: {}", names.join(", "));
            }
            Ok(_) => {}
            Err(err) => log::warn!("{err:#}"),
        }
        match crate::conntrack::trust_filter(agent.program.ebpf_mut()) {
            Ok(Some(counted)) => log::info!(
                "connection filter: counted the {counted} established connections already tracked; in use"
            ),
            Ok(None) => {}
            // Safe to go on: the program looks up the table for every packet.
            Err(err) => log::warn!("connection filter not in use: {err:#}"),
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
            stamps: compiled.stamps,
            retry: None,
            source: compiled.source,
            settings,
            program,
            links: Vec::new(),
            image,
            generation,
            loaded_at: SystemTime::now(),
            reloads: ReloadsStatus::default(),
            notes: BTreeMap::new(),
            rule_base,
            failsafe_addrs,
            failsafe_entries,
            adopted,
            started: Instant::now(),
            pull: None,
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

/// What the tasks and threads share. The agent's lock is held only for short
/// map operations; the rest has locks or atomics of its own.
pub(super) struct Shared {
    agent: Mutex<Agent>,
    /// Images by generation, for naming zones and rules in events.
    images: Mutex<Images>,
    events: event_writer::Stats,
    flows: flow_writer::Stats,
    tracked: tracked::Summary,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything the tasks share.
#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    /// Serializes reloads (file change, signal, request, midnight, retry).
    reloading: Arc<tokio::sync::Mutex<()>>,
    shutdown: watch::Sender<bool>,
    /// Asks the event writer to reopen its file.
    reopen: Arc<AtomicBool>,
}

impl Ctx {
    fn agent(&self) -> MutexGuard<'_, Agent> {
        lock(&self.shared.agent)
    }

    async fn handle(&self, req: Request) -> Response {
        let result = match req {
            Request::Status {} => Ok(Response::ok(&views::status(&self.shared).await)),
            Request::Reload {} => self.reload("request").await.map(|r| Response::ok(&r)),
            Request::QuarantineAdd { address, reason } => self
                .agent()
                .quarantine_add(&address, reason)
                .map(|r| Response::ok(&r)),
            Request::QuarantineRemove { address } => self
                .agent()
                .quarantine_remove(&address)
                .map(|r| Response::ok(&r)),
            Request::QuarantineList {} => self.agent().quarantine_list().map(|r| Response::ok(&r)),
            Request::ReopenLog {} => {
                self.reopen.store(true, Ordering::Relaxed);
                Ok(Response::ok(&serde_json::json!({"reopening": true})))
            }
            Request::Detach {} => {
                let removed = self.agent().detach();
                match removed {
                    Ok(r) => {
                        let _ = self.shutdown.send(true);
                        Ok(Response::ok(&crate::control::DetachResult {
                            interfaces: r.links,
                            maps: r.maps,
                        }))
                    }
                    Err(e) => Err(format!("{e:#}")),
                }
            }
        };
        result.unwrap_or_else(Response::error)
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

/// Raises the soft limit of open files to the hard limit: idle connections
/// must never starve reloads and incident commands of descriptors.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    #[allow(
        unsafe_code,
        reason = "getrlimit(2)/setrlimit(2) have no safe wrapper in std"
    )]
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } == 0;
    if ok && lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit.
        #[allow(
            unsafe_code,
            reason = "getrlimit(2)/setrlimit(2) have no safe wrapper in std"
        )]
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) };
    }
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
    raise_nofile_limit();
    // Everything that can fail on bad input fails before the kernel is touched.
    let metrics_listener = match settings.metrics {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    let writer = Writer::open(&settings.events, settings.events_max_bytes)?;
    let socket = settings.control_socket.clone();
    let control_listener = bind_control(&socket)?;
    // A pulled policy: the persisted bundle or a first download, verified,
    // before anything is attached.
    let puller = match &settings.source {
        Some(source) => match pull::prepare(source) {
            Ok(p) => Some(p),
            Err(e) => {
                let _ = std::fs::remove_file(&socket);
                return Err(e);
            }
        },
        None => None,
    };
    let started = Agent::start(settings).and_then(|(agent, reader)| {
        let lock = PinLock::hold(&agent.settings.pin_path)?;
        Ok((agent, reader, lock))
    });
    let (mut agent, reader, _pin_lock) = match started {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&socket);
            return Err(e);
        }
    };
    let puller = puller.map(|(state, puller)| {
        agent.pull = Some(state);
        puller
    });
    let watch_files = agent.settings.watch;
    let watch_interval = agent.settings.watch_interval;
    let pin_path = agent.settings.pin_path.clone();
    let flows_log = agent.settings.flows_log.clone();
    let flows_interval = agent.settings.flows_interval;
    let mut images = Images::default();
    images.push(agent.generation, agent.image.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ctx = Ctx {
        shared: Arc::new(Shared {
            agent: Mutex::new(agent),
            images: Mutex::new(images),
            events: event_writer::Stats::default(),
            flows: flow_writer::Stats::default(),
            tracked: tracked::Summary::default(),
        }),
        reloading: Arc::new(tokio::sync::Mutex::new(())),
        shutdown: shutdown_tx,
        reopen: Arc::new(AtomicBool::new(false)),
    };
    let stop_threads = Arc::new(AtomicBool::new(false));
    let writer_thread = event_writer::spawn(
        ctx.shared.clone(),
        reader,
        writer,
        ctx.reopen.clone(),
        stop_threads.clone(),
    )?;
    tracked::spawn(ctx.shared.clone(), &pin_path, stop_threads.clone());
    let flows_thread = match flows_log {
        Some(path) => Some(
            flow_writer::spawn(
                ctx.shared.clone(),
                &pin_path,
                path.clone(),
                flows_interval,
                stop_threads.clone(),
            )
            .with_context(|| format!("cannot start the flows log `{}`", path.display()))?,
        ),
        None => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(control_server::serve(ctx.clone(), control_listener));
    if let Some(listener) = metrics_listener {
        log::info!("metrics on http://{}/metrics", listener.local_addr()?);
        tasks.spawn(http::serve(ctx.clone(), listener));
    }
    tasks.spawn(reload::files_task(ctx.clone(), watch_files, watch_interval));
    if let Some(puller) = puller {
        tasks.spawn(pull::task(ctx.clone(), puller));
    }
    tasks.spawn(timers::midnight(ctx.clone()));
    tasks.spawn(timers::failsafe(ctx.clone()));
    tasks.spawn(timers::clock(ctx.clone()));
    tasks.spawn(timers::signals(ctx.clone()));
    log::info!("enforcing; control socket `{}`", socket.display());

    let mut shutdown = shutdown_rx;
    let _ = shutdown.wait_for(|s| *s).await;
    tasks.abort_all();
    // The event writer drains what is left, then stops.
    stop_threads.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    if let Some(t) = flows_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
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

/// `wardgate-agent detach` when no agent answers: unpins what is under
/// `dir`, unless a running agent holds it.
pub fn detach_offline(dir: &Path) -> anyhow::Result<pin::Removed> {
    if !dir.exists() {
        return Ok(pin::Removed::default());
    }
    pin::check(dir)?;
    let _lock = PinLock::exclusive(dir)?;
    pin::remove_all(dir)
}
