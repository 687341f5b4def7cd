//! The connection-table summary (tracked connections by state, table and
//! zone), kept by a thread of its own that walks the pinned tables. The walk
//! costs one syscall per entry (0.65 s for 262,144 entries), so it never runs
//! under the agent's lock nor on the runtime that serves control and metrics.
//!
//! The walk also sweeps: it removes the entries that idled out, so that the
//! established table (which never evicts) frees the room of connections
//! that ended without a packet to notice it. Each removal is counted against
//! the entry's charge slot (`conntrack` module), so zone counts stay exact,
//! and taken out of the established-connection filter.
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

use aya::maps::{Array, HashMap, Map, MapData};
use wardgate_common::{
    CT_ESTABLISHED, CT_NEW, CT_SLOT_POOL, CT_SLOT_RESERVED, CtEntry, CtKey,
    maps::{self, CT_SLOTS},
};

use crate::{
    conntrack::{Filter, timeout},
    eventlog::Clock,
    metrics::Tracked,
};

use super::{Shared, lock};

/// How often the table is walked when nobody asks.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How long `status` or a scrape waits for a fresh walk.
pub const MAX_WAIT: Duration = Duration::from_millis(200);

/// The last walk's result, numbered, and the requests for a new one.
pub(super) struct Summary {
    done: watch::Sender<(u64, Tracked)>,
    started: AtomicU64,
    /// Established entries the sweeps removed, since the agent started.
    swept: AtomicU64,
    wanted: Mutex<bool>,
    wake: Condvar,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            done: watch::Sender::new((0, Tracked::default())),
            started: AtomicU64::new(0),
            swept: AtomicU64::new(0),
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
        rx.borrow().1.clone()
    }
}

/// The pinned maps the walk reads and sweeps.
struct Tables {
    established: HashMap<MapData, CtKey, CtEntry>,
    unconfirmed: HashMap<MapData, CtKey, CtEntry>,
    charged: Array<MapData, u64>,
    released: Array<MapData, u64>,
    filter: Filter,
}

impl Tables {
    fn open(pin_dir: &Path) -> anyhow::Result<Self> {
        let open = |name: &str| -> anyhow::Result<Map> {
            let data = MapData::from_pin(crate::pin::map_path(pin_dir, name))?;
            Ok(Map::from_map_data(data)?)
        };
        Ok(Self {
            established: HashMap::try_from(open(maps::CONNTRACK)?)?,
            unconfirmed: HashMap::try_from(open(maps::CT_UNCONFIRMED)?)?,
            charged: Array::try_from(open(maps::CT_CHARGED)?)?,
            released: Array::try_from(open(maps::CT_RELEASED)?)?,
            filter: Filter::open(pin_dir)?,
        })
    }

    /// Counts the live entries of both tables and removes those that idled out.
    fn walk(&mut self) -> Tracked {
        let now = Clock::monotonic_now();
        let mut t = Tracked::default();
        let mut zones: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
        let mut expired = Vec::new();
        // The charge slots in use: reading all 65,538 of each array would cost a syscall each.
        let mut slots = std::collections::BTreeSet::from([CT_SLOT_POOL, CT_SLOT_RESERVED]);
        for (key, entry) in self.established.iter().filter_map(Result::ok) {
            t.established_entries += 1;
            if entry.charge != 0 {
                slots.insert(entry.charge - 1);
            }
            if now.saturating_sub(entry.last_seen_ns) > timeout(&entry, key.proto) {
                expired.push((key, entry));
                continue;
            }
            *zones.entry(entry.src_zone).or_default() += 1;
            count_state(&mut t, &entry);
        }
        for (key, entry) in &expired {
            // Only a remove that succeeds accounts for the entry: the program
            // may have removed it first (and released its charge itself).
            if self.established.remove(key).is_ok() {
                self.filter.sub(key);
                t.swept += 1;
                self.release(entry);
            }
        }
        let mut stale = Vec::new();
        for (key, entry) in self.unconfirmed.iter().filter_map(Result::ok) {
            t.unconfirmed_entries += 1;
            if now.saturating_sub(entry.last_seen_ns) > timeout(&entry, key.proto) {
                stale.push(key);
                continue;
            }
            count_state(&mut t, &entry);
        }
        for key in &stale {
            let _ = self.unconfirmed.remove(key);
        }
        t.per_zone = zones.into_iter().collect();
        t.charged = crate::conntrack::charged(&self.charged, &self.released, &slots);
        t
    }

    fn release(&mut self, entry: &CtEntry) {
        if entry.charge == 0 || entry.charge > CT_SLOTS {
            return;
        }
        let slot = entry.charge - 1;
        if let Ok(n) = self.released.get(&slot, 0) {
            let _ = self.released.set(slot, n.wrapping_add(1), 0);
        }
    }
}

fn count_state(t: &mut Tracked, entry: &CtEntry) {
    match entry.state {
        CT_NEW => t.new += 1,
        CT_ESTABLISHED => t.established += 1,
        _ => t.closing += 1,
    }
}

/// Starts the thread; it ends when `stop` is set.
pub(super) fn spawn(shared: Arc<Shared>, pin_dir: &Path, stop: Arc<AtomicBool>) {
    let table = match Tables::open(pin_dir) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("tracked connections will not be counted: {e:#}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("conntrack-walk".into())
        .spawn(move || {
            let mut table = table;
            let summary = &shared.tracked;
            while !stop.load(Ordering::Relaxed) {
                let n = summary.started.fetch_add(1, Ordering::SeqCst) + 1;
                let mut t = table.walk();
                let swept = summary.swept.fetch_add(t.swept, Ordering::Relaxed) + t.swept;
                t.swept = swept;
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
