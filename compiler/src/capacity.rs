//! The datapath's map capacities, checked at compile time: a policy that
//! does not fit is a clear error before anything touches the kernel.
//!
//! Its own module so that lowering (which counts zone-pair tables as it
//! builds them) and the image (which checks every table) share one error
//! without importing each other.

use wardgate_common::maps::{MAX_INTERVALS, MAX_PAIRS, MAX_PREFIXES, MAX_RULES, MAX_ZONES};

/// A table of the policy has more entries than its map holds.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("the policy has {count} {what}, more than the datapath holds ({max})")]
pub struct CapacityError {
    pub what: &'static str,
    pub count: usize,
    pub max: u32,
}

/// The entry counts of a policy's tables, as the image holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub zones: usize,
    pub prefixes: usize,
    pub pairs: usize,
    pub intervals: usize,
    pub rules: usize,
}

/// Every count against its map's capacity; the first that does not fit.
///
/// # Errors
/// [`CapacityError`] naming the table that overflows.
pub fn check(c: Counts) -> Result<(), CapacityError> {
    for (what, count, max) in [
        ("zones", c.zones, MAX_ZONES),
        ("prefixes", c.prefixes, MAX_PREFIXES),
        ("zone-pair tables", c.pairs, MAX_PAIRS),
        ("port intervals", c.intervals, MAX_INTERVALS),
        ("rules", c.rules, MAX_RULES),
    ] {
        if count > max as usize {
            return Err(CapacityError { what, count, max });
        }
    }
    Ok(())
}

/// The error for `count` zone-pair tables.
#[must_use]
pub fn too_many_pairs(count: usize) -> CapacityError {
    CapacityError {
        what: "zone-pair tables",
        count,
        max: MAX_PAIRS,
    }
}
