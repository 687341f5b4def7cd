//! The connection-tracking table, seen from user space.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};
use wardgate_common::{CtEntry, CtKey, maps};

fn table(ebpf: &mut Ebpf) -> anyhow::Result<HashMap<&mut MapData, CtKey, CtEntry>> {
    let map = ebpf
        .map_mut(maps::CONNTRACK)
        .with_context(|| format!("the program has no map `{}`", maps::CONNTRACK))?;
    Ok(HashMap::try_from(map)?)
}

/// Every tracked connection.
pub fn entries(ebpf: &mut Ebpf) -> anyhow::Result<Vec<(CtKey, CtEntry)>> {
    Ok(table(ebpf)?.iter().collect::<Result<_, _>>()?)
}

/// Forgets one tracked connection (by the key of its first packet).
/// Returns false if it was not tracked.
pub fn forget(ebpf: &mut Ebpf, key: &CtKey) -> anyhow::Result<bool> {
    Ok(table(ebpf)?.remove(key).is_ok())
}
