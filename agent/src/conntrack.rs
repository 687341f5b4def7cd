//! The connection-tracking tables, seen from user space.
//!
//! Two tables (`docs/conntrack.md`): unconfirmed connections (an LRU map
//! that a flood may evict) and established ones (a plain hash that never
//! evicts). Established entries are charged to a slot per zone (or the pool,
//! or the life-critical reserve): the program adds to `WG_CT_CHARGED` when it
//! inserts and subtracts when it removes; the agent counts what it removes in
//! `WG_CT_RELEASED`, which only it writes. A slot's live count is the
//! difference, exact whoever removes an entry, since only the remove that
//! succeeds accounts for it.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData},
};
use wardgate_common::{
    CONFIG_CT_FILTER, CT_CLOSING, CT_HORIZON_LONG_NS, CT_LIMIT_POOL, CT_LIMIT_RESERVED, CT_NEW,
    CT_SLOT_POOL, CT_SLOT_RESERVED, CT_TIMEOUT_CLOSING_NS, CT_TIMEOUT_ESTABLISHED_TCP_NS,
    CT_TIMEOUT_ICMP_NS, CT_TIMEOUT_NEW_NS, CT_TIMEOUT_UDP_NS, CtEntry, CtHorizon, CtKey,
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    maps::{self, CT_FILTER_BUCKETS, CT_SLOTS},
};
use wardgate_compiler::{PolicyImage, ctlimits::limitable};

use crate::mapped::Mapped;

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut Map> {
    ebpf.map_mut(name)
        .with_context(|| format!("the program has no map `{name}`"))
}

fn table<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> anyhow::Result<HashMap<&'a mut MapData, CtKey, CtEntry>> {
    Ok(HashMap::try_from(map_mut(ebpf, name)?)?)
}

/// Every tracked connection, established first, then unconfirmed.
pub fn entries(ebpf: &mut Ebpf) -> anyhow::Result<Vec<(CtKey, CtEntry)>> {
    let mut all: Vec<(CtKey, CtEntry)> = table(ebpf, maps::CONNTRACK)?
        .iter()
        .collect::<Result<_, _>>()?;
    let unconfirmed: Vec<(CtKey, CtEntry)> = table(ebpf, maps::CT_UNCONFIRMED)?
        .iter()
        .collect::<Result<_, _>>()?;
    all.extend(unconfirmed);
    Ok(all)
}

/// Forgets one tracked connection (by its canonical key), in whichever
/// table holds it. Returns false if it was not tracked.
///
/// Forgetting a connection also bumps `Config::ct_epoch`, which empties
/// every CPU's connection cache (`maps::CT_CACHE`, which holds established
/// connections and the first direction of unanswered ones): a packet of
/// the forgotten connection is decided again at once, not when its cache
/// slot ages out.
pub fn forget(ebpf: &mut Ebpf, key: &CtKey) -> anyhow::Result<bool> {
    let entry = table(ebpf, maps::CONNTRACK)?.get(key, 0).ok();
    let forgotten = if let Some(entry) = entry
        && table(ebpf, maps::CONNTRACK)?.remove(key).is_ok()
    {
        Filter::of(ebpf)?.sub(key);
        release(map_mut(ebpf, maps::CT_RELEASED)?, &entry)?;
        true
    } else {
        table(ebpf, maps::CT_UNCONFIRMED)?.remove(key).is_ok()
    };
    if forgotten {
        crate::programmer::update_config(ebpf, |c| c.ct_epoch = c.ct_epoch.wrapping_add(1))?;
    }
    Ok(forgotten)
}

/// The array `name` of a loaded program, mapped.
fn mapped_array<T>(ebpf: &Ebpf, name: &str) -> anyhow::Result<Mapped<T>> {
    let map = ebpf
        .map(name)
        .with_context(|| format!("the program has no map `{name}`"))?;
    let Map::Array(data) = map else {
        bail!("map `{name}` is not an array");
    };
    Mapped::new(data, name)
}

/// The established-connection filter (`maps::CT_FILTER`), mapped: a count
/// per bucket of the established entries whose key hashes there. The agent
/// subtracts what it removes, atomically, as the program does.
pub struct Filter(Mapped<u64>);

impl Filter {
    /// The filter of a loaded program.
    ///
    /// # Errors
    /// The program has no filter, or it cannot be mapped.
    pub fn of(ebpf: &Ebpf) -> anyhow::Result<Self> {
        Self::checked(mapped_array(ebpf, maps::CT_FILTER)?)
    }

    /// The filter pinned under `pin_dir`.
    ///
    /// # Errors
    /// It is not pinned there, or cannot be mapped.
    pub fn open(pin_dir: &std::path::Path) -> anyhow::Result<Self> {
        let data = MapData::from_pin(crate::pin::map_path(pin_dir, maps::CT_FILTER))?;
        Self::checked(Mapped::owned(data, maps::CT_FILTER)?)
    }

    fn checked(mapped: Mapped<u64>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            mapped.len() == CT_FILTER_BUCKETS as usize,
            "`{}` has {} buckets, not {CT_FILTER_BUCKETS}",
            maps::CT_FILTER,
            mapped.len()
        );
        Ok(Self(mapped))
    }

    fn bucket(&self, index: u32) -> &AtomicU64 {
        // SAFETY: an aligned `u64` of the mapping, which lives as long as
        // `self`; every writer (the program, other agents' mappings) uses
        // atomic adds.
        #[allow(unsafe_code, reason = "an atomic view of a shared u64")]
        unsafe {
            AtomicU64::from_ptr(self.0.at(index as usize))
        }
    }

    /// Counts an established entry of `key` (before it is inserted).
    pub fn add(&self, key: &CtKey) {
        self.bucket(key.filter_bucket())
            .fetch_add(1, Ordering::SeqCst);
    }

    /// Takes back the count of an established entry of `key` that was removed.
    pub fn sub(&self, key: &CtKey) {
        self.bucket(key.filter_bucket())
            .fetch_sub(1, Ordering::SeqCst);
    }

    /// The count of bucket `index`.
    pub fn count(&self, index: u32) -> u64 {
        self.bucket(index).load(Ordering::SeqCst)
    }
}

/// Makes the program trust its connection filters (`CONFIG_CT_FILTER`),
/// once. First it completes them for what a program that did not maintain
/// them (an older version, adopted from the pinned maps) left: it counts
/// the entries already in the established table, and moves the long
/// horizon of every unconfirmed entry's bucket a full timeout ahead, which
/// covers it until this program writes it. Then it sets the
/// flag. Call it only when every interface runs this program: an older one
/// still attached somewhere could insert an entry the filters never see,
/// whose packets would then skip the tables. Returns how many established
/// entries it counted, or `None` if the flag was already set (a restart of
/// this version: nothing to do).
///
/// # Errors
/// The maps cannot be read, mapped or written.
pub fn trust_filter(ebpf: &mut Ebpf) -> anyhow::Result<Option<usize>> {
    if crate::programmer::config(ebpf)?.flags & CONFIG_CT_FILTER != 0 {
        return Ok(None);
    }
    let filter = Filter::of(ebpf)?;
    let keys: Vec<CtKey> = table(ebpf, maps::CONNTRACK)?
        .keys()
        .collect::<Result<_, _>>()?;
    for key in &keys {
        filter.add(key);
    }
    let horizon = Horizon::of(ebpf)?;
    let until = crate::eventlog::Clock::monotonic_now() + CT_HORIZON_LONG_NS;
    for key in table(ebpf, maps::CT_UNCONFIRMED)?.keys() {
        horizon.cover(key?.horizon_bucket(), until);
    }
    crate::programmer::update_config(ebpf, |c| c.flags |= CONFIG_CT_FILTER)?;
    Ok(Some(keys.len()))
}

/// The unconfirmed horizon (`maps::CT_HORIZON`), mapped.
pub struct Horizon(Mapped<CtHorizon>);

impl Horizon {
    /// The horizon of a loaded program.
    ///
    /// # Errors
    /// The program has no horizon, or it cannot be mapped.
    pub fn of(ebpf: &Ebpf) -> anyhow::Result<Self> {
        Ok(Self(mapped_array(ebpf, maps::CT_HORIZON)?))
    }

    /// Bucket `index`: its `short` and `long` horizons.
    pub fn get(&self, index: u32) -> CtHorizon {
        // SAFETY: a value of the mapping; volatile, since the program writes it.
        #[allow(unsafe_code, reason = "a read of the shared mapping")]
        unsafe {
            self.0.at(index as usize).read_volatile()
        }
    }

    /// Sets bucket `index` (tests: a horizon in the past).
    pub fn set(&self, index: u32, horizon: CtHorizon) {
        // SAFETY: as in `get`.
        #[allow(unsafe_code, reason = "a store to the shared mapping")]
        unsafe {
            self.0.at(index as usize).write_volatile(horizon);
        }
    }

    /// Moves bucket `index`'s `long` horizon to at least `until`.
    fn cover(&self, index: u32, until: u64) {
        // SAFETY: an aligned `u64` of the mapping; the program only moves it
        // forward, so `fetch_max` never loses its value.
        #[allow(unsafe_code, reason = "an atomic view of a shared u64")]
        let long = unsafe {
            AtomicU64::from_ptr(std::ptr::addr_of_mut!((*self.0.at(index as usize)).long))
        };
        long.fetch_max(until, Ordering::SeqCst);
    }
}

/// Counts one removed established entry against its slot.
fn release(map: &mut Map, entry: &CtEntry) -> anyhow::Result<()> {
    if entry.charge == 0 || entry.charge > CT_SLOTS {
        return Ok(());
    }
    let mut released: Array<&mut MapData, u64> = Array::try_from(map)?;
    let slot = entry.charge - 1;
    let n = released.get(&slot, 0)?;
    released.set(slot, n.wrapping_add(1), 0)?;
    Ok(())
}

/// The capacity of the program's established-connection table (the
/// compiled-in `MAX_CONNECTIONS`, or what the loader set).
pub fn capacity(ebpf: &Ebpf) -> anyhow::Result<u32> {
    let map = ebpf
        .map(maps::CONNTRACK)
        .with_context(|| format!("the program has no map `{}`", maps::CONNTRACK))?;
    let Map::HashMap(data) = map else {
        bail!("map `{}` is not a hash map", maps::CONNTRACK);
    };
    Ok(data.info()?.max_entries())
}

/// The `WG_CT_LIMITS` entries of `image` for a table of `capacity`
/// established entries: `(slot, limit)` pairs, the pool's size last.
///
/// # Errors
/// When the limits add up to more than the table can promise.
pub fn limits(image: &PolicyImage, capacity: u32) -> anyhow::Result<Vec<(u32, u32)>> {
    let max = limitable(capacity);
    let total: u64 = image
        .zones()
        .iter()
        .filter_map(|z| z.conntrack_limit)
        .map(u64::from)
        .sum();
    if total > u64::from(max) {
        bail!(
            "the zones' conntrack limits add up to {total}, more than the {max} connections this gateway's table ({capacity} entries) can promise"
        );
    }
    let mut out: Vec<(u32, u32)> = image
        .zones()
        .iter()
        .map(|z| {
            let limit = match z.conntrack_limit {
                Some(n) => n,
                None if z.is_life_critical() => CT_LIMIT_RESERVED,
                None => CT_LIMIT_POOL,
            };
            (z.id, limit)
        })
        .collect();
    let pool = u32::try_from(u64::from(max) - total).unwrap_or(u32::MAX);
    out.push((CT_SLOT_POOL, pool));
    out.push((CT_SLOT_RESERVED, capacity));
    Ok(out)
}

/// Writes `image`'s connection limits into table set `set`.
pub fn write_limits(ebpf: &mut Ebpf, image: &PolicyImage, set: u32) -> anyhow::Result<()> {
    let entries = limits(image, capacity(ebpf)?)?;
    let mut array: Array<&mut MapData, u32> = Array::try_from(map_mut(ebpf, maps::CT_LIMITS)?)?;
    for (slot, limit) in entries {
        array
            .set(set * CT_SLOTS + slot, limit, 0)
            .with_context(|| format!("writing the conntrack limit of slot {slot}"))?;
    }
    Ok(())
}

/// The idle timeout of a tracked connection, as the program applies it.
#[must_use]
pub fn timeout(entry: &CtEntry, proto: u8) -> u64 {
    match entry.state {
        CT_CLOSING => CT_TIMEOUT_CLOSING_NS,
        CT_NEW => CT_TIMEOUT_NEW_NS,
        _ if proto == IPPROTO_TCP => CT_TIMEOUT_ESTABLISHED_TCP_NS,
        _ if matches!(proto, IPPROTO_ICMP | IPPROTO_ICMPV6) => CT_TIMEOUT_ICMP_NS,
        _ => CT_TIMEOUT_UDP_NS,
    }
}

/// Established entries charged to each of `slots` (live, per the
/// program's and the agent's counters): `(slot, count)` for every slot with
/// entries.
pub fn charged(
    charged: &Array<MapData, u64>,
    released: &Array<MapData, u64>,
    slots: &std::collections::BTreeSet<u32>,
) -> Vec<(u32, u64)> {
    slots
        .iter()
        .filter_map(|&slot| {
            let c = charged.get(&slot, 0).ok()?;
            let r = released.get(&slot, 0).ok()?;
            let n = c.wrapping_sub(r);
            (n != 0).then_some((slot, n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(src: &str) -> PolicyImage {
        let loaded = wardgate_lang::parse_str("t.ward", src);
        wardgate_compiler::compile(&loaded, &wardgate_compiler::Options::default())
            .0
            .expect("compiles")
    }

    #[test]
    fn limits_give_slots_pool_and_reserve() {
        let img = image(
            "zone guest { networks 192.168.100.0/22 conntrack-limit 1000 }\n\
             zone pumps { networks 10.40.0.0/22 criticality life-critical }\n\
             zone staff { networks 10.10.0.0/16 }\n",
        );
        let l = limits(&img, 8000).expect("fits");
        let of = |name: &str| {
            let id = img.zone_by_name(name).expect("zone");
            l.iter().find(|(s, _)| *s == id).expect("slot").1
        };
        assert_eq!(of("guest"), 1000);
        assert_eq!(of("pumps"), CT_LIMIT_RESERVED);
        assert_eq!(of("staff"), CT_LIMIT_POOL);
        assert_eq!(of("world"), CT_LIMIT_POOL);
        // 8000 less the reserve (1000) less guest's 1000.
        assert!(l.contains(&(CT_SLOT_POOL, 6000)), "{l:?}");
    }

    #[test]
    fn limits_beyond_a_small_table_are_refused() {
        let img = image("zone guest { networks 192.168.100.0/22 conntrack-limit 1000 }\n");
        let err = limits(&img, 1024).expect_err("does not fit").to_string();
        assert!(err.contains("add up to 1000, more than the 896"), "{err}");
    }
}
