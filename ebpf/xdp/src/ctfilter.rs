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
//! a lookup. The program trusts the filter only while `CONFIG_CT_FILTER`
//! says it is complete (see `wardgate_common::maps::CT_FILTER`).

use aya_ebpf::{macros::map, maps::Array};
use wardgate_common::{CtKey, maps::CT_FILTER_BUCKETS};

/// `BPF_F_MMAPABLE`: the agent adds and subtracts through a shared mapping.
const BPF_F_MMAPABLE: u32 = 1 << 10;

#[map(name = "WG_CT_FILTER")]
static CT_FILTER: Array<u64> = Array::with_max_entries(CT_FILTER_BUCKETS, BPF_F_MMAPABLE);

/// False only if no established entry can have `key`.
#[inline(always)]
pub fn may_hold(key: &CtKey) -> bool {
    CT_FILTER
        .get(key.filter_bucket())
        .is_none_or(|&count| count != 0)
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
