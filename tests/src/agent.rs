//! The real `wardgate-agent` binary as a child process in a gateway
//! namespace, for the agent's end-to-end tests.
//!
//! - [`binary`] builds the agent binary once per test process (a no-op when
//!   it is fresh) and returns its path, next to the test executable.
//! - [`PinDir`] is a unique pin directory under /sys/fs/bpf; dropping it
//!   unpins everything in it (which detaches the program), also on panic.
//! - [`Agent`] runs the binary inside a network namespace with `nsenter
//!   --net` (not `ip netns exec`, which remounts /sys and hides bpffs), with
//!   its own control socket and event log in a temporary directory. It is
//!   killed (by its PID, never by name) and reaped on drop.

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use wardgate_agent::control::{self, Request, Response};

use crate::netns::Netns;

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Mounts bpffs on /sys/fs/bpf unless it is there already (a fresh machine
/// may not have it; systemd usually mounts it).
pub fn ensure_bpffs() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let bpf = Path::new("/sys/fs/bpf");
        if !wardgate_agent::pin::is_bpffs(bpf) {
            let out = Command::new("mount")
                .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
                .output()
                .expect("running mount");
            assert!(
                out.status.success(),
                "cannot mount bpffs on /sys/fs/bpf: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

/// The agent binary, built (once per process) into the target directory
/// of this test executable, in the same profile.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("WARDGATE_AGENT_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable is in target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target/<profile>");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace root");
        let status = Command::new(cargo)
            .current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "-p",
                "wardgate-agent",
                "--bin",
                "wardgate-agent",
            ])
            .args(["--profile", &profile, "--target-dir"])
            .arg(target_dir)
            .status()
            .expect("running cargo to build wardgate-agent");
        assert!(status.success(), "building wardgate-agent failed");
        profile_dir.join("wardgate-agent")
    })
    .clone()
}

/// A unique pin directory on bpffs; unpins everything in it on drop.
pub struct PinDir {
    pub path: PathBuf,
}

impl PinDir {
    pub fn new() -> Self {
        ensure_bpffs();
        Self {
            path: Path::new("/sys/fs/bpf").join(unique("wg-test")),
        }
    }

    /// True if the agent left pinned maps here.
    pub fn has_maps(&self) -> bool {
        wardgate_agent::pin::has_maps(&self.path)
    }

    /// The pinned links' interface names.
    pub fn links(&self) -> Vec<String> {
        wardgate_agent::pin::links(&self.path)
            .into_iter()
            .map(|l| l.iface)
            .collect()
    }
}

impl Default for PinDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if self.path.exists()
            && let Err(e) = wardgate_agent::pin::remove_all(&self.path)
        {
            eprintln!("warning: cleaning {}: {e:#}", self.path.display());
        }
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("wg-agent-test"));
        std::fs::create_dir_all(&path).expect("creating a temporary directory");
        Self { path }
    }

    /// Writes `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        // Write then rename: a watcher never sees a half-written file.
        let tmp = self.path.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("writing a file");
        std::fs::rename(&tmp, &path).expect("renaming a file");
        path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The metrics address each agent serves in its own gateway namespace.
pub const METRICS: &str = "127.0.0.1:9750";

/// How to launch an agent beyond its arguments.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Run the agent in a mount namespace of its own with a tmpfs of this
    /// size (`mount -o size=`) on the directory: gone when the agent exits.
    pub tmpfs: Option<(PathBuf, String)>,
    /// The event log, instead of one in the test's directory.
    pub events: Option<PathBuf>,
    /// A command the agent runs under, between `nsenter` and the agent
    /// (`capsh --drop=... -- -c 'exec "$0" "$@"'`): it must exec its arguments.
    pub wrapper: Vec<String>,
}

/// `nsenter NS AGENT ARGS...` as `nsenter NS WRAPPER... AGENT ARGS...`.
fn wrap(cmd: Command, wrapper: &[String]) -> Command {
    if wrapper.is_empty() {
        return cmd;
    }
    let mut args: Vec<std::ffi::OsString> =
        cmd.get_args().map(std::ffi::OsStr::to_os_string).collect();
    let ns = args.remove(0);
    let mut wrapped = Command::new(cmd.get_program());
    wrapped.arg(ns).args(wrapper).args(args);
    wrapped
}

/// A running agent.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
    pub events: PathBuf,
    pub log: PathBuf,
}

/// How an agent that was expected to fail failed.
#[derive(Debug)]
pub struct Failed {
    pub status: ExitStatus,
    pub stderr: String,
}

impl Agent {
    /// The arguments of `run`, for `policy` on `ifaces`, with the test's
    /// pin directory, socket and event log; `extra` is appended.
    fn command(
        gateway: &Netns,
        dir: &TempDir,
        pins: &PinDir,
        policy: &Path,
        ifaces: &[&str],
        extra: &[&str],
        events: Option<&Path>,
    ) -> (Command, PathBuf, PathBuf, PathBuf) {
        let name = unique("agent");
        let socket = dir.path.join(format!("{name}.sock"));
        let events = events.map_or_else(
            || dir.path.join(format!("{name}.events.jsonl")),
            Path::to_path_buf,
        );
        let log = dir.path.join(format!("{name}.log"));
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", gateway.name()));
        cmd.arg(binary()).arg("run");
        // An empty policy path: the agent gets its policy otherwise (a bundle source).
        if !policy.as_os_str().is_empty() {
            cmd.arg("--policy").arg(policy);
        }
        cmd.arg("--pin-path")
            .arg(&pins.path)
            .arg("--control-socket")
            .arg(&socket)
            .arg("--events")
            .arg(&events);
        if !extra.contains(&"--metrics") {
            cmd.args(["--metrics", METRICS]);
        }
        for iface in ifaces {
            cmd.args(["--iface", iface]);
        }
        cmd.args(extra);
        (cmd, socket, events, log)
    }

    /// Starts the agent and waits until its control socket answers. Panics
    /// with its log if it exits or does not answer within 20 s.
    pub fn start(
        gateway: &Netns,
        dir: &TempDir,
        pins: &PinDir,
        policy: &Path,
        ifaces: &[&str],
        extra: &[&str],
    ) -> Self {
        Self::start_with(
            gateway,
            dir,
            pins,
            policy,
            ifaces,
            extra,
            &Launch::default(),
        )
    }

    /// [`Agent::start`] with a [`Launch`].
    pub fn start_with(
        gateway: &Netns,
        dir: &TempDir,
        pins: &PinDir,
        policy: &Path,
        ifaces: &[&str],
        extra: &[&str],
        launch: &Launch,
    ) -> Self {
        let (cmd, socket, events, log) = Self::command(
            gateway,
            dir,
            pins,
            policy,
            ifaces,
            extra,
            launch.events.as_deref(),
        );
        let cmd = wrap(cmd, &launch.wrapper);
        let mut cmd = match &launch.tmpfs {
            None => cmd,
            Some((mount_dir, size)) => {
                // unshare(1) makes a private mount namespace; the tmpfs
                // vanishes with it when the agent exits.
                let mut wrapped = Command::new("unshare");
                wrapped
                    .args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(r#"mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@""#)
                    .arg("sh")
                    .arg(size)
                    .arg(mount_dir)
                    .arg(cmd.get_program())
                    .args(cmd.get_args());
                wrapped
            }
        };
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        let log_file = std::fs::File::create(&log).expect("creating the agent log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .env("RUST_LOG", "info")
            .spawn()
            .expect("starting wardgate-agent");
        let mut agent = Self {
            child,
            socket,
            events,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = agent.child.try_wait() {
                panic!("wardgate-agent exited ({status}):\n{}", agent.log_text());
            }
            if control::request(&agent.socket, &Request::Status {}, Duration::from_secs(5))
                .is_ok_and(|r| r.ok)
            {
                return agent;
            }
            assert!(
                Instant::now() < deadline,
                "wardgate-agent did not answer within 20 s:\n{}",
                agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs an agent that must fail at start; returns how. Panics if it keeps running.
    pub fn start_failing(
        gateway: &Netns,
        dir: &TempDir,
        pins: &PinDir,
        policy: &Path,
        ifaces: &[&str],
        extra: &[&str],
    ) -> Failed {
        Self::start_failing_with(
            gateway,
            dir,
            pins,
            policy,
            ifaces,
            extra,
            &Launch::default(),
        )
    }

    /// [`Agent::start_failing`] with a [`Launch`] (its event log only).
    pub fn start_failing_with(
        gateway: &Netns,
        dir: &TempDir,
        pins: &PinDir,
        policy: &Path,
        ifaces: &[&str],
        extra: &[&str],
        launch: &Launch,
    ) -> Failed {
        let (cmd, socket, _, _) = Self::command(
            gateway,
            dir,
            pins,
            policy,
            ifaces,
            extra,
            launch.events.as_deref(),
        );
        let mut cmd = wrap(cmd, &launch.wrapper);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting wardgate-agent");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the agent") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wardgate-agent was expected to fail but kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        assert!(
            !socket.exists(),
            "a failed agent left its control socket behind"
        );
        Failed { status, stderr }
    }

    /// The agent's PID (nsenter execs the agent; unshare's `sh` execs it too).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the agent (our child, by its PID).
    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child, by its PID.
        #[allow(unsafe_code, reason = "kill(2) to signal our child")]
        let _ = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Sets the agent's open-files limits (soft, and hard if given), as
    /// `prlimit --nofile` does. Raising a hard limit needs CAP_SYS_RESOURCE.
    pub fn set_nofile_limit(&self, soft: u64, hard: Option<u64>) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))
            .unwrap_or_default();
        let current_hard = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(4))
            .and_then(|h| h.parse().ok())
            .unwrap_or(soft);
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard.unwrap_or(current_hard),
        };
        // SAFETY: valid rlimit pointers; prlimit(2) on our own child.
        #[allow(unsafe_code, reason = "prlimit(2) on our child")]
        let rc = unsafe {
            libc::prlimit(
                self.child.id() as libc::pid_t,
                libc::RLIMIT_NOFILE,
                &raw const new,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    /// The agent's open descriptors' numbers.
    pub fn open_fds(&self) -> Vec<u64> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a request; panics if the agent cannot be reached.
    pub fn request(&self, req: &Request) -> Response {
        control::request(&self.socket, req, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("control request failed: {e}\n{}", self.log_text()))
    }

    /// Sends a request that must succeed; returns its result.
    pub fn ok(&self, req: &Request) -> wardgate_agent::control::Value {
        let resp = self.request(req);
        assert!(resp.ok, "{req:?} failed: {:?}", resp.error);
        resp.result.unwrap_or_default()
    }

    /// `status`.
    pub fn status(&self) -> wardgate_agent::control::Value {
        self.ok(&Request::Status {})
    }

    /// Polls `status` until `done` holds; panics with the last status and the
    /// agent's log after 20 s.
    pub fn wait_for_status(
        &self,
        what: &str,
        mut done: impl FnMut(&wardgate_agent::control::Value) -> bool,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status();
            if done(&status) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {status}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends raw lines on one connection; returns one response line per request line.
    pub fn raw(&self, lines: &[&str]) -> Vec<String> {
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).expect("connecting");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
        lines
            .iter()
            .map(|line| {
                stream.write_all(line.as_bytes()).expect("writing");
                stream.write_all(b"\n").expect("writing");
                let mut answer = String::new();
                std::io::BufRead::read_line(&mut reader, &mut answer).expect("reading");
                answer
            })
            .collect()
    }

    /// Runs a `wardgate-agent` client command against this agent.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .expect("running wardgate-agent")
    }

    /// The metrics page, fetched inside the gateway namespace.
    pub fn metrics(&self, gateway: &Netns) -> String {
        let addr: SocketAddr = METRICS.parse().expect("address");
        gateway
            .spawn(move || {
                let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")?;
                let mut body = String::new();
                s.read_to_string(&mut body)?;
                Ok(body)
            })
            .join()
            .expect("metrics thread")
            .expect("fetching metrics")
    }

    /// The event log's records so far (waits `settle` for the agent to write).
    pub fn events(&self, settle: Duration) -> Vec<wardgate_agent::control::Value> {
        std::thread::sleep(settle);
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(serde_json_line)
            .collect()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: the agent stops, leaving enforcement in place.
    pub fn stop(mut self) -> ExitStatus {
        // SAFETY: sending a signal to our own child, by its PID.
        #[allow(unsafe_code, reason = "kill(2) to send SIGTERM to our child")]
        let _ = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the agent ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the agent to exit on its own (after `detach`).
    pub fn wait_exit(mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the agent did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serde_json_line(line: &str) -> wardgate_agent::control::Value {
    wardgate_agent::control::parse_value(line)
        .unwrap_or_else(|e| panic!("event log line is not JSON ({e}): {line}"))
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Only our own child, by PID; then reap it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}
