//! The connection-table summary (tracked connections by state), kept by a
//! thread of its own that walks the pinned table. The walk costs one
//! syscall per entry (0.65 s for 262,144 entries), so it never runs under
//! the agent's lock nor on the runtime that serves control and metrics.
//!
//! `status` and a scrape ask for a fresh walk and wait for it at most
//! [`MAX_WAIT`]; with a big table they get the previous walk's counts.

use std::{
    path::Path,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;

use aya::maps::{HashMap, Map, MapData};
use wardgate_common::{
    CT_CLOSING, CT_ESTABLISHED, CT_NEW, CT_TIMEOUT_CLOSING_NS, CT_TIMEOUT_ESTABLISHED_TCP_NS,
    CT_TIMEOUT_ICMP_NS, CT_TIMEOUT_NEW_NS, CT_TIMEOUT_UDP_NS, CtEntry, CtKey, IPPROTO_ICMP,
    IPPROTO_ICMPV6, IPPROTO_TCP, maps,
};

use crate::{eventlog::Clock, metrics::Tracked};

use super::{Shared, lock};

/// How often the table is walked when nobody asks.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How long `status` or a scrape waits for a fresh walk.
pub const MAX_WAIT: Duration = Duration::from_millis(200);

/// The last walk's result, numbered, and the requests for a new one.
pub(super) struct Summary {
    done: watch::Sender<(u64, Tracked)>,
    started: AtomicU64,
    wanted: Mutex<bool>,
    wake: Condvar,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            done: watch::Sender::new((0, Tracked::default())),
            started: AtomicU64::new(0),
            wanted: Mutex::new(false),
            wake: Condvar::new(),
        }
    }
}

impl Summary {
    /// The counts of a walk started after this call, or of the last walk
    /// if that takes longer than [`MAX_WAIT`].
    pub(super) async fn fresh(&self) -> Tracked {
        let mut rx = self.done.subscribe();
        let target = self.started.load(Ordering::SeqCst) + 1;
        *lock(&self.wanted) = true;
        self.wake.notify_one();
        let _ = tokio::time::timeout(MAX_WAIT, rx.wait_for(|(n, _)| *n >= target)).await;
        rx.borrow().1
    }
}

/// The idle timeout of a tracked connection, as the program applies it.
fn timeout(entry: &CtEntry, proto: u8) -> u64 {
    match entry.state {
        CT_CLOSING => CT_TIMEOUT_CLOSING_NS,
        CT_NEW => CT_TIMEOUT_NEW_NS,
        _ if proto == IPPROTO_TCP => CT_TIMEOUT_ESTABLISHED_TCP_NS,
        _ if matches!(proto, IPPROTO_ICMP | IPPROTO_ICMPV6) => CT_TIMEOUT_ICMP_NS,
        _ => CT_TIMEOUT_UDP_NS,
    }
}

/// Counts the live entries of the table.
fn walk(table: &HashMap<MapData, CtKey, CtEntry>) -> Tracked {
    let now = Clock::monotonic_now();
    let mut t = Tracked::default();
    for (key, entry) in table.iter().filter_map(Result::ok) {
        if now.saturating_sub(entry.last_seen_ns) > timeout(&entry, key.proto) {
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

/// Starts the thread; it ends when `stop` is set.
pub(super) fn spawn(shared: Arc<Shared>, pin_dir: &Path, stop: Arc<AtomicBool>) {
    let path = crate::pin::map_path(pin_dir, maps::CONNTRACK);
    let table = MapData::from_pin(&path)
        .map_err(anyhow::Error::from)
        .and_then(|d| Ok(Map::from_map_data(d)?))
        .and_then(|m| Ok(HashMap::<MapData, CtKey, CtEntry>::try_from(m)?));
    let table = match table {
        Ok(t) => t,
        Err(e) => {
            log::warn!("tracked connections will not be counted: {e:#}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("conntrack-walk".into())
        .spawn(move || {
            let summary = &shared.tracked;
            while !stop.load(Ordering::Relaxed) {
                let n = summary.started.fetch_add(1, Ordering::SeqCst) + 1;
                let t = walk(&table);
                summary.done.send_replace((n, t));
                let mut wanted = lock(&summary.wanted);
                let mut waited = Duration::ZERO;
                // Wake up now and then to notice `stop`.
                while !*wanted && waited < INTERVAL && !stop.load(Ordering::Relaxed) {
                    let step = Duration::from_millis(100);
                    wanted = summary
                        .wake
                        .wait_timeout(wanted, step)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                    waited += step;
                }
                *wanted = false;
            }
        });
    if let Err(e) = spawned {
        log::warn!("tracked connections will not be counted: {e}");
    }
}
