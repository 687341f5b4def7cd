//! Calibrates the XDP program's clock.
//!
//! The program reads time as `jiffies * clock_tick_ns - clock_offset_ns`
//! (see `Config::clock_tick_ns`): one load per packet instead of a helper
//! call. This module measures the tick length (`1e9 / HZ`, once per
//! process) and the offset that makes the result track
//! `CLOCK_MONOTONIC_COARSE`, by running the object's `wardgate_clock`
//! program under `BPF_PROG_TEST_RUN`: it reports the jiffies counter and the
//! coarse clock read back to back. Both advance on the same timer tick.
//! The offset drifts with the clock's frequency corrections (parts per
//! million), so the daemon recalibrates it every minute.

use std::{sync::OnceLock, time::Duration};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    programs::{TestRun as _, TestRunOptions, Xdp},
};

use crate::programmer;

/// Name of the calibration program in the object.
pub const PROGRAM_NAME: &str = "wardgate_clock";

/// The tick rates (`CONFIG_HZ`) kernels are built with.
const KNOWN_HZ: &[u64] = &[100, 250, 300, 1000];

/// How long the tick measurement watches the two clocks.
const WINDOW: Duration = Duration::from_millis(120);

/// What the program is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    pub tick_ns: u32,
    pub offset_ns: u64,
}

/// One reading of both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub jiffies: u64,
    pub coarse_ns: u64,
}

/// The tick length, measured once per process.
static TICK_NS: OnceLock<u32> = OnceLock::new();

/// The tick length that two samples `a` then `b` show: snapped to a known
/// `HZ` when it is within the window's error of one (5%, or a tick and a
/// half over the window for slow ticks) and no other known rate is close,
/// else as measured if the window held at least 20 ticks.
pub fn tick_ns(a: Sample, b: Sample) -> Option<u32> {
    let ticks = b.jiffies.checked_sub(a.jiffies).filter(|&t| t > 0)?;
    let elapsed = b.coarse_ns.checked_sub(a.coarse_ns)?;
    let measured = elapsed as f64 / ticks as f64;
    let mut candidates: Vec<f64> = KNOWN_HZ.iter().map(|hz| 1e9 / *hz as f64).collect();
    candidates.sort_by(|x, y| (x - measured).abs().total_cmp(&(y - measured).abs()));
    let off = |tick: f64| (tick - measured).abs() / tick;
    let tolerance = (1.5 / ticks as f64).max(0.05);
    let tick = if off(candidates[0]) <= tolerance && off(candidates[1]) > 2.0 * tolerance {
        candidates[0]
    } else if ticks >= 20 {
        measured
    } else {
        return None;
    };
    u32::try_from(tick.round() as u64).ok().filter(|&t| t > 0)
}

/// Calibrates the clock of the program in `ebpf` and writes it to the
/// config entry (the rest of the entry is left as it is).
pub fn apply(ebpf: &mut Ebpf) -> anyhow::Result<Calibration> {
    let calibration = calibrate(ebpf)?;
    programmer::update_config(ebpf, |c| {
        c.clock_tick_ns = calibration.tick_ns;
        c.clock_offset_ns = calibration.offset_ns;
    })?;
    Ok(calibration)
}

/// Measures the calibration without writing it.
pub fn calibrate(ebpf: &mut Ebpf) -> anyhow::Result<Calibration> {
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .with_context(|| format!("the object has no `{PROGRAM_NAME}` program"))?
        .try_into()?;
    if program.fd().is_err() {
        program
            .load()
            .context("the kernel rejected the clock program")?;
    }
    let tick_ns = match TICK_NS.get() {
        Some(&t) => t,
        None => {
            let first = sample(program)?;
            std::thread::sleep(WINDOW);
            let second = sample(program)?;
            let Some(t) = tick_ns(first, second) else {
                bail!(
                    "cannot measure the kernel's tick: {first:?} then {second:?} over {WINDOW:?}"
                );
            };
            *TICK_NS.get_or_init(|| t)
        }
    };
    // The median of a few readings: a tick landing between the two reads
    // of one sample puts it a tick off.
    let mut offsets = (0..5)
        .map(|_| {
            sample(program).map(|now| {
                now.jiffies
                    .wrapping_mul(u64::from(tick_ns))
                    .wrapping_sub(now.coarse_ns)
            })
        })
        .collect::<anyhow::Result<Vec<u64>>>()?;
    offsets.sort_unstable();
    Ok(Calibration {
        tick_ns,
        offset_ns: offsets[offsets.len() / 2],
    })
}

/// Reads both clocks through the calibration program.
fn sample(program: &Xdp) -> anyhow::Result<Sample> {
    let frame = [0u8; 64];
    let mut out = [0u8; 64 + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(&frame);
    opts.data_out = Some(&mut out);
    program
        .test_run(opts)
        .context("BPF_PROG_TEST_RUN of the clock program")?;
    let word = |at: usize| u64::from_ne_bytes(out[at..at + 8].try_into().expect("8 bytes"));
    Ok(Sample {
        jiffies: word(0),
        coarse_ns: word(8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(jiffies: u64, coarse_ns: u64) -> Sample {
        Sample { jiffies, coarse_ns }
    }

    #[test]
    fn ticks_snap_to_known_rates() {
        // 30 ticks of 4 ms, one tick of slack either way.
        assert_eq!(tick_ns(s(1000, 0), s(1030, 120_000_000)), Some(4_000_000));
        assert_eq!(tick_ns(s(1000, 0), s(1031, 120_000_000)), Some(4_000_000));
        assert_eq!(tick_ns(s(0, 0), s(12, 120_000_000)), Some(10_000_000));
        assert_eq!(tick_ns(s(0, 0), s(36, 120_000_000)), Some(3_333_333));
        assert_eq!(tick_ns(s(0, 0), s(120, 120_000_000)), Some(1_000_000));
    }

    #[test]
    fn an_unknown_rate_is_taken_as_measured_only_over_enough_ticks() {
        // HZ = 200 (5 ms): 24 ticks in 120 ms.
        assert_eq!(tick_ns(s(0, 0), s(24, 120_000_000)), Some(5_000_000));
        assert_eq!(tick_ns(s(0, 0), s(6, 30_000_000)), None);
    }

    #[test]
    fn no_tick_or_a_clock_going_back_is_no_calibration() {
        assert_eq!(tick_ns(s(5, 0), s(5, 120_000_000)), None);
        assert_eq!(tick_ns(s(5, 100), s(4, 120_000_000)), None);
        assert_eq!(tick_ns(s(5, 120_000_000), s(35, 100)), None);
    }
}
