//! The program's clock (`ebpf/xdp/src/clock.rs`, `agent/src/clock.rs`):
//! jiffies scaled by the agent's calibration read as
//! `CLOCK_MONOTONIC_COARSE`, the clock every time read back from the
//! program (connection ages, events, flow records) is converted from; with
//! no calibration the program falls back to its clock helper.

use std::net::IpAddr;

use wardgate_agent::{conntrack, programmer};
use wardgate_tests::{
    enforcer::Enforcer,
    packet::{self, L4, tcp_flags},
    privilege,
};

const POLICY: &str =
    "zone a { networks 10.1.0.0/16 }\nzone b { networks 10.2.0.0/16 }\nallow a -> b : tcp/443\n";

fn monotonic_coarse_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    #[allow(unsafe_code, reason = "clock_gettime(2)")]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Opens a connection on source port `sport` and returns how far its
/// entry's `last_seen_ns` lies from the coarse monotonic clock read just
/// before and just after, in ns (0 when between them).
fn stamp_error(e: &mut Enforcer, sport: u16) -> u64 {
    let src: IpAddr = "10.1.0.1".parse().unwrap();
    let dst: IpAddr = "10.2.0.1".parse().unwrap();
    let before = monotonic_coarse_ns();
    assert!(e.passes(&packet::ip(
        src,
        dst,
        L4::Tcp {
            sport,
            dport: 443,
            flags: tcp_flags::SYN,
        },
    )));
    let after = monotonic_coarse_ns();
    let entries = conntrack::entries(e.program.ebpf_mut()).unwrap();
    let (_, entry) = entries
        .iter()
        .find(|(k, _)| k.sport == sport || k.dport == sport)
        .expect("the SYN is tracked");
    let seen = entry.last_seen_ns;
    before.saturating_sub(seen).max(seen.saturating_sub(after))
}

#[test]
fn the_programs_clock_is_calibrated_to_the_monotonic_clock() {
    if !privilege::kernel_tests_can_run("the_programs_clock_is_calibrated_to_the_monotonic_clock") {
        return;
    }
    let mut e = Enforcer::new(POLICY);
    let config = programmer::config(e.program.ebpf_mut()).unwrap();
    let hz = 1_000_000_000 / u64::from(config.clock_tick_ns.max(1));
    assert!(
        [100, 250, 300, 1000].contains(&hz) || (24..=1200).contains(&hz),
        "tick of {} ns",
        config.clock_tick_ns
    );
    // Within two ticks of the coarse monotonic clock.
    let tick = u64::from(config.clock_tick_ns);
    let error = stamp_error(&mut e, 40_000);
    assert!(error <= 2 * tick, "{error} ns off with a {tick} ns tick");
    // A policy reload keeps the calibration.
    e.reload(POLICY);
    let again = programmer::config(e.program.ebpf_mut()).unwrap();
    assert_eq!(again.clock_tick_ns, config.clock_tick_ns);
    assert_eq!(again.clock_offset_ns, config.clock_offset_ns);
    // Recalibrating moves the offset by no more than the jitter of a
    // tick's timing (no drift to speak of within a test).
    let fresh = e.program.recalibrate_clock().unwrap();
    assert_eq!(fresh.tick_ns, config.clock_tick_ns);
    assert!(fresh.offset_ns.abs_diff(config.clock_offset_ns) <= 2 * tick);
}

#[test]
fn without_a_calibration_the_program_uses_its_clock_helper() {
    if !privilege::kernel_tests_can_run("without_a_calibration_the_program_uses_its_clock_helper") {
        return;
    }
    let mut e = Enforcer::new(POLICY);
    let tick = u64::from(
        programmer::config(e.program.ebpf_mut())
            .unwrap()
            .clock_tick_ns,
    );
    programmer::update_config(e.program.ebpf_mut(), |c| {
        c.clock_tick_ns = 0;
        // An offset that would put the jiffies clock far off if it were used.
        c.clock_offset_ns = 1 << 62;
    })
    .unwrap();
    let error = stamp_error(&mut e, 40_001);
    assert!(error <= 2 * tick.max(10_000_000), "{error} ns off");
}
