//! `BPF_PROG_TEST_RUN` on a loaded XDP program (aya's `TestRun`).

use std::time::Duration;

use anyhow::Context as _;
use aya::programs::{TestRun as _, TestRunOptions, Xdp};

/// XDP actions, as the program returns them.
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Name of an XDP action, for messages.
pub fn action_name(action: u32) -> &'static str {
    match action {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "unknown",
    }
}

/// What one test run returned.
#[derive(Clone, Copy, Debug)]
pub struct RunResult {
    pub action: u32,
    /// The kernel's average duration of one run.
    pub duration: Duration,
}

/// Runs `program` once on `frame`.
pub fn run(program: &Xdp, frame: &[u8]) -> anyhow::Result<RunResult> {
    run_repeat(program, frame, 1)
}

/// Runs `program` `repeat` times on `frame`; the duration is the kernel's per-run average.
pub fn run_repeat(program: &Xdp, frame: &[u8], repeat: u32) -> anyhow::Result<RunResult> {
    let mut out = vec![0u8; frame.len() + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.repeat = repeat;
    let result = program
        .test_run(opts)
        .with_context(|| format!("BPF_PROG_TEST_RUN on a {}-byte frame", frame.len()))?;
    Ok(RunResult {
        action: result.return_value,
        duration: result.duration,
    })
}

/// Keeps the calling thread on the CPU it runs on, and returns that CPU.
/// `BPF_PROG_TEST_RUN` runs the program on the calling CPU: pinned, every
/// run writes the same CPU's per-CPU state (such as its region of the flow
/// table) and no measurement moves to a CPU with cold caches halfway.
///
/// # Panics
/// If the kernel refuses the affinity.
pub fn stay_on_this_cpu() -> usize {
    // SAFETY: plain libc calls on this thread with a zeroed, then set, CPU set.
    #[allow(unsafe_code, reason = "sched_setaffinity(2)")]
    unsafe {
        let cpu = usize::try_from(libc::sched_getcpu()).expect("sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pinning this thread to CPU {cpu}"
        );
        cpu
    }
}
