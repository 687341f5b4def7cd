//! Signals and timers: SIGHUP reloads the policy, SIGUSR1 reopens the event
//! log (log rotation; the policy is left alone), SIGTERM and SIGINT stop the
//! agent (enforcement stays); a `.ward` source is recompiled just after
//! every UTC midnight so that `until` rules expire; the failsafe follows the
//! gateway's addresses; the program's clock is recalibrated every minute.

use std::{sync::atomic::Ordering, time::Duration};

use crate::policy;

use super::Ctx;

pub(super) async fn signals(ctx: Ctx) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut usr1), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => { let _ = ctx.reload("SIGHUP").await; }
            _ = usr1.recv() => { ctx.reopen.store(true, Ordering::Relaxed); }
            _ = term.recv() => { let _ = ctx.shutdown.send(true); }
            _ = int.recv() => { let _ = ctx.shutdown.send(true); }
        }
    }
}

pub(super) async fn midnight(ctx: Ctx) {
    loop {
        tokio::time::sleep(policy::until_next_midnight()).await;
        if ctx.agent().source {
            // Rules whose `until` date has passed are lowered out.
            let _ = ctx.reload("date change").await;
        }
    }
}

pub(super) async fn failsafe(ctx: Ctx) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        ctx.agent().refresh_failsafe();
    }
}

/// The program's clock offset follows the system clock's frequency
/// corrections (`crate::clock`).
pub(super) async fn clock(ctx: Ctx) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = ctx.agent().program.recalibrate_clock() {
            log::warn!("cannot recalibrate the program's clock: {e:#}");
        }
    }
}
