//! The event log writer, on a thread of its own: a flood of events never
//! delays the runtime that serves control and metrics. It waits on the ring
//! buffer, takes events in bounded batches, names their zones and rules
//! from the images of their generations, and writes each batch in one
//! write. Only events that reached the log count as written; failed ones
//! are counted apart and logged at most every [`ERROR_LOG_EVERY`].

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use wardgate_common::EVENT_AUDIT;

use crate::{
    eventlog::{self, Clock, Writer},
    events::EventReader,
};

use super::{Shared, lock};

/// Events per batch: one write, then the flags are checked again.
const BATCH: usize = 1024;
/// How long the thread waits on the ring before checking its flags.
const POLL_MS: i32 = 250;
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the writer did, for `status` and metrics.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub written_drop: AtomicU64,
    pub written_audit: AtomicU64,
    /// Events that could not be written (full disk, closed pipe).
    pub failed: AtomicU64,
}

/// Waits until the ring's descriptor is readable or `POLL_MS` passed.
fn wait_readable(fd: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    #[allow(unsafe_code, reason = "poll(2) has no safe wrapper in std")]
    let _ = unsafe { libc::poll(&raw mut pfd, 1, POLL_MS) };
}

struct Thread {
    shared: Arc<Shared>,
    reader: EventReader,
    writer: Writer,
    clock: Clock,
    last_error_log: Option<Instant>,
    failed_since_log: u64,
}

impl Thread {
    /// Writes one batch; false when the ring was empty.
    fn batch(&mut self) -> bool {
        let events = self.reader.drain_max(BATCH);
        if events.is_empty() {
            return false;
        }
        let images = lock(&self.shared.images).clone();
        let records: Vec<_> = events
            .iter()
            .map(|e| eventlog::record(e, &images, &self.clock))
            .collect();
        let stats = &self.shared.events;
        match self.writer.write(&records) {
            Ok(()) => {
                let audits = events.iter().filter(|e| e.verdict == EVENT_AUDIT).count() as u64;
                stats.written_audit.fetch_add(audits, Ordering::Relaxed);
                stats
                    .written_drop
                    .fetch_add(events.len() as u64 - audits, Ordering::Relaxed);
            }
            Err(e) => {
                stats
                    .failed
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                self.failed_since_log += events.len() as u64;
                if self
                    .last_error_log
                    .is_none_or(|t| t.elapsed() >= ERROR_LOG_EVERY)
                {
                    log::error!(
                        "events: writing the event log failed: {e} ({} events not written; \
                         next report in {} s at the earliest)",
                        self.failed_since_log,
                        ERROR_LOG_EVERY.as_secs()
                    );
                    self.last_error_log = Some(Instant::now());
                    self.failed_since_log = 0;
                }
            }
        }
        events.len() == BATCH
    }
}

/// Starts the writer; it drains what is left and ends when `stop` is set.
pub(super) fn spawn(
    shared: Arc<Shared>,
    mut reader: EventReader,
    writer: Writer,
    reopen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let fd = reader.ring().as_fd().as_raw_fd();
    let mut t = Thread {
        shared,
        reader,
        writer,
        clock: Clock::new(),
        last_error_log: None,
        failed_since_log: 0,
    };
    let handle = std::thread::Builder::new()
        .name("event-writer".into())
        .spawn(move || {
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                if reopen.swap(false, Ordering::Relaxed) {
                    match t.writer.reopen() {
                        Ok(()) => log::info!("events: reopened the event log"),
                        Err(e) => log::error!("events: {e:#}"),
                    }
                }
                while t.batch() {
                    if reopen.load(Ordering::Relaxed) {
                        break;
                    }
                }
                if stopping {
                    break;
                }
                wait_readable(fd);
            }
        })?;
    Ok(handle)
}
