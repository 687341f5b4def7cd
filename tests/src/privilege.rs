//! Whether privileged (kernel) tests can run here.
//!
//! A privileged test starts with `if !privilege::kernel_tests_can_run() { return; }`.
//! Without the privileges it prints `skipping: <reason>`; under `CI=true` it
//! panics instead, so that kernel tests can never silently stop running.

use std::sync::OnceLock;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Why privileged tests cannot run here, or `None` if they can.
pub fn missing() -> Option<String> {
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    MISSING
        .get_or_init(|| {
            let Some(caps) = effective_capabilities() else {
                return Some("cannot read capabilities from /proc/self/status".into());
            };
            let has = |cap: u32| caps & (1u64 << cap) != 0;
            let mut lacking = Vec::new();
            if !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
                lacking.push("CAP_BPF");
            }
            if !has(CAP_NET_ADMIN) {
                lacking.push("CAP_NET_ADMIN");
            }
            if !lacking.is_empty() {
                return Some(format!("needs {} (run as root)", lacking.join(" and ")));
            }
            if std::process::Command::new("ip").arg("-V").output().is_err() {
                return Some("`ip` (iproute2) is not installed; run `cargo xtask setup`".into());
            }
            None
        })
        .clone()
}

/// True if the CI environment variable says we are in CI.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns true if privileged tests can run. Otherwise prints a skip line
/// naming `test` and the reason and returns false, or panics under `CI=true`.
#[track_caller]
pub fn kernel_tests_can_run(test: &str) -> bool {
    match missing() {
        None => true,
        Some(reason) if in_ci() => {
            panic!("{test}: privileged test cannot run in CI: {reason}")
        }
        Some(reason) => {
            eprintln!("skipping: {test}: {reason}");
            false
        }
    }
}

/// Like [`kernel_tests_can_run`] for a test that also needs `tool` on `PATH`.
#[track_caller]
pub fn tool_available(test: &str, tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    if found {
        return true;
    }
    let reason = format!("`{tool}` is not installed; run `cargo xtask setup`");
    assert!(!in_ci(), "{test}: {reason}");
    eprintln!("skipping: {test}: {reason}");
    false
}
