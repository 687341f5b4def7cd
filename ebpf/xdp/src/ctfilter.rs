//! Two filters that let a packet of no tracked connection skip the
//! connection tables' lookups (four kernel calls each).
//!
//! The established-connection filter: a count per bucket of the entries of
//! the established table whose key hashes there (`CtKey::filter_bucket`).
//! A packet whose bucket reads zero has no established connection, so it
//! skips the table lookup, four kernel calls: every new connection's first
//! packet, and every packet of a flood, is such a packet.
//!
//! The count is never below the truth: whoever inserts adds one before the
//! insert (and takes it back if the insert fails), whoever removes
//! subtracts one after a remove that succeeded; the agent does the same
//! through a shared mapping when it sweeps or forgets. Too high only costs
//! a lookup.
//!
//! The unconfirmed horizon: the unconfirmed table is an LRU map, whose
//! evictions nobody sees, so it cannot be counted. Instead each bucket
//! (`CtKey::horizon_bucket`) holds the time after which no unconfirmed
//! entry there can still be live (`CtHorizon`): whenever the program writes
//! an unconfirmed entry's time or state it moves the bucket's horizon to
//! now plus the longest timeout that entry's state can have. A packet past
//! both horizons of its bucket (with a slack) could only find an entry that
//! idled out, so it skips the lookup.
//!
//! The program trusts both only while `CONFIG_CT_FILTER` says they are
//! complete (see `wardgate_common::maps::CT_FILTER`).

use aya_ebpf::{macros::map, maps::Array};
use wardgate_common::{
    CT_ESTABLISHED, CT_HORIZON_LONG_NS, CT_HORIZON_REFRESH_NS, CT_HORIZON_SHORT_NS,
    CT_HORIZON_SLACK_NS, CtHorizon, CtKey, horizon_bucket_of,
    maps::{CT_FILTER_BUCKETS, CT_HORIZON_BUCKETS},
};

/// `BPF_F_MMAPABLE`: the agent adds and subtracts through a shared mapping.
const BPF_F_MMAPABLE: u32 = 1 << 10;

#[map(name = "WG_CT_FILTER")]
static CT_FILTER: Array<u64> = Array::with_max_entries(CT_FILTER_BUCKETS, BPF_F_MMAPABLE);

#[map(name = "WG_CT_HORIZON")]
static CT_HORIZON: Array<CtHorizon> = Array::with_max_entries(CT_HORIZON_BUCKETS, BPF_F_MMAPABLE);

/// False only if no established entry can have a key whose filter bucket
/// is `bucket` (`CtKey::filter_bucket`, hashed once for both filters).
#[inline(always)]
pub fn may_hold(bucket: u32) -> bool {
    CT_FILTER.get(bucket).is_none_or(|&count| count != 0)
}

/// Counts an entry of `key` about to be inserted.
#[inline(always)]
pub fn add(key: &CtKey) {
    add_to(key, 1);
}

/// Takes back the count of an entry of `key` that was removed (or whose
/// insert failed).
#[inline(always)]
pub fn sub(key: &CtKey) {
    add_to(key, u64::MAX);
}

#[inline(always)]
fn add_to(key: &CtKey, delta: u64) {
    if let Some(p) = CT_FILTER.get_ptr_mut(key.filter_bucket()) {
        // SAFETY: a pointer into an array map's value from a successful
        // lookup, 8-byte aligned; every writer (this program on other CPUs,
        // the agent through its mapping) uses an atomic add.
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::SeqCst }>(
                p, delta,
            );
        }
    }
}

/// False only if no unconfirmed entry of a key whose filter bucket is
/// `bucket` can still be live at `now`.
#[inline(always)]
pub fn unconfirmed_may_hold(bucket: u32, now: u64) -> bool {
    CT_HORIZON.get(horizon_bucket_of(bucket)).is_none_or(|h| {
        let last = if h.short > h.long { h.short } else { h.long };
        now <= last.saturating_add(CT_HORIZON_REFRESH_NS + CT_HORIZON_SLACK_NS)
    })
}

/// Moves the horizon of `key`'s bucket past an unconfirmed entry written
/// now in `state`. Called before the entry is inserted or changed.
#[inline(always)]
pub fn note_unconfirmed(key: &CtKey, state: u32, now: u64) {
    let Some(h) = CT_HORIZON.get_ptr_mut(key.horizon_bucket()) else {
        return;
    };
    // SAFETY: a pointer into an array map's value from a successful lookup,
    // 8-byte aligned. Writers on other CPUs store now plus the same
    // constant, so a lost store loses at most the time between two program
    // runs, which the lookup's slack covers.
    unsafe {
        let (field, ahead) = if state == CT_ESTABLISHED {
            (core::ptr::addr_of_mut!((*h).long), CT_HORIZON_LONG_NS)
        } else {
            (core::ptr::addr_of_mut!((*h).short), CT_HORIZON_SHORT_NS)
        };
        let until = now + ahead;
        if core::ptr::read_volatile(field).saturating_add(CT_HORIZON_REFRESH_NS) < until {
            core::ptr::write_volatile(field, until);
        }
    }
}
