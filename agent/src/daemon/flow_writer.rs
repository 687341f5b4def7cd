//! The flows log writer, on a thread of its own: every `flows_interval` it
//! drains the pinned flow table (a half at a time, see `flowlog`), names zones and rules from the images of their generations
//! and appends one JSON line per key. When the kernel refused new keys
//! because the table was full, it says so in the log (a `note` line) and in
//! the metrics. It drains once more when the agent stops.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::{
    config::EventSink,
    eventlog::{Clock, Writer},
    flowlog::{self, FlowTable, Note},
};

use super::{Shared, lock};

/// What the writer did, for metrics.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Flow records written.
    pub written: AtomicU64,
    /// Records that could not be written.
    pub failed: AtomicU64,
    /// New keys the full kernel table refused (as last read).
    pub refused: AtomicU64,
}

struct Thread {
    shared: Arc<Shared>,
    table: FlowTable,
    writer: Writer,
    clock: Clock,
    refused_seen: u64,
}

impl Thread {
    fn drain(&mut self) {
        let taken = match self.table.drain() {
            Ok(t) => t,
            Err(e) => {
                log::error!("flows: draining the flow table failed: {e:#}");
                return;
            }
        };
        let images = lock(&self.shared.images).clone();
        let records: Vec<_> = taken
            .iter()
            .map(|(k, v)| flowlog::record(k, v, &images, &self.clock))
            .collect();
        let stats = &self.shared.flows;
        if !records.is_empty() {
            match self.writer.write(&records) {
                Ok(()) => stats
                    .written
                    .fetch_add(records.len() as u64, Ordering::Relaxed),
                Err(e) => {
                    log::error!("flows: writing the flows log failed: {e}");
                    stats
                        .failed
                        .fetch_add(records.len() as u64, Ordering::Relaxed)
                }
            };
        }
        if let Ok(refused) = self.table.refused() {
            stats.refused.store(refused, Ordering::Relaxed);
            if refused > self.refused_seen {
                let new = refused - self.refused_seen;
                self.refused_seen = refused;
                log::warn!("flows: the flow table was full: {new} new flow keys not recorded");
                let note = Note {
                    time: self.clock.rfc3339(Clock::monotonic_now()),
                    note: format!(
                        "flow table full: {new} new flow keys not recorded since the previous drain"
                    ),
                    refused: new,
                };
                let _ = self.writer.write(&[note]);
            }
        }
    }
}

/// Starts the writer for the table pinned under `pin_dir`; it drains once
/// more and ends when `stop` is set.
pub(super) fn spawn(
    shared: Arc<Shared>,
    pin_dir: &Path,
    log_path: PathBuf,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let table = FlowTable::open(pin_dir)?;
    let writer = Writer::open(&EventSink::File(log_path), None)?;
    let mut t = Thread {
        shared,
        refused_seen: table.refused().unwrap_or(0),
        table,
        writer,
        clock: Clock::new(),
    };
    let handle = std::thread::Builder::new()
        .name("flow-writer".into())
        .spawn(move || {
            loop {
                let mut waited = Duration::ZERO;
                let step = Duration::from_millis(50);
                while waited < interval && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(step);
                    waited += step;
                }
                t.drain();
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        })?;
    Ok(handle)
}
