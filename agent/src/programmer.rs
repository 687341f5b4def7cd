//! Writes a policy image into the program's maps, and switches to it in one step.
//!
//! The protocol (see `wardgate_common::maps`): the program reads
//! `Config::active_set` once per packet and uses only that table set. To load
//! a policy, the programmer
//! 1. clears the *inactive* set's LPM trie and pair table (stale keys there
//!    could be found; zone-info and interval entries are reached only through
//!    them, so they are simply overwritten),
//! 2. writes the image's zones, prefixes, intervals and pairs into it,
//! 3. writes the config once: the other set active, the generation bumped.
//!
//! Until step 3 every packet uses the old policy, after it the new one; a
//! failure before step 3 leaves the old policy in force. Tracked connections
//! carry their generation, so the program re-decides each of them under the
//! new policy at its next packet.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, MapData, lpm_trie::Key},
};
use wardgate_common::{
    CONFIG_LOADED, CONFIG_QUARANTINE, Config, DEFAULT_EVENTS_PER_SEC, Interval, PairKey, Span,
    ZoneInfo, maps,
};
use wardgate_compiler::PolicyImage;

/// What a load wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub generation: u32,
    pub active_set: u32,
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .with_context(|| format!("the program has no map `{name}`"))
}

/// The current config (all zero before the first load).
pub fn config(ebpf: &mut Ebpf) -> anyhow::Result<Config> {
    let array: Array<&mut MapData, Config> = Array::try_from(map_mut(ebpf, maps::CONFIG)?)?;
    Ok(array.get(&0, 0)?)
}

/// Writes the config entry (the switch itself).
pub fn set_config(ebpf: &mut Ebpf, config: Config) -> anyhow::Result<()> {
    let mut array: Array<&mut MapData, Config> = Array::try_from(map_mut(ebpf, maps::CONFIG)?)?;
    array.set(0, config, 0)?;
    Ok(())
}

/// Changes the config entry in one write (flags, event rate), leaving the
/// tables, the active set and the generation as they are.
pub fn update_config(ebpf: &mut Ebpf, change: impl FnOnce(&mut Config)) -> anyhow::Result<Config> {
    let mut next = config(ebpf)?;
    change(&mut next);
    set_config(ebpf, next)?;
    Ok(next)
}

/// Loads `image` into the inactive table set and makes it active.
/// `flags` are extra `CONFIG_*` bits (monitor override, failsafe).
pub fn load(ebpf: &mut Ebpf, image: &PolicyImage, flags: u32) -> anyhow::Result<Loaded> {
    let current = config(ebpf)?;
    let target = if current.flags & CONFIG_LOADED == 0 {
        0
    } else {
        1 - (current.active_set & 1)
    };
    let [zones, zone_info, pairs, intervals] = set_names(target);
    clear_lpm(ebpf, zones)?;
    clear_pairs(ebpf, pairs)?;
    {
        let mut info: Array<&mut MapData, ZoneInfo> = Array::try_from(map_mut(ebpf, zone_info)?)?;
        for (id, zone) in image.zone_infos().into_iter().enumerate() {
            info.set(id as u32, zone, 0)
                .with_context(|| format!("writing zone {id}"))?;
        }
    }
    {
        let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> =
            LpmTrie::try_from(map_mut(ebpf, zones)?)?;
        for (len, addr, zone) in image.lpm_entries() {
            trie.insert(&Key::new(len, addr), zone, 0)
                .with_context(|| format!("writing prefix {addr:?}/{len}"))?;
        }
    }
    {
        let mut array: Array<&mut MapData, Interval> = Array::try_from(map_mut(ebpf, intervals)?)?;
        for (index, interval) in image.intervals().iter().enumerate() {
            array
                .set(index as u32, *interval, 0)
                .with_context(|| format!("writing interval {index}"))?;
        }
    }
    {
        let mut table: HashMap<&mut MapData, PairKey, Span> =
            HashMap::try_from(map_mut(ebpf, pairs)?)?;
        for (key, span) in image.pairs() {
            table
                .insert(key, span, 0)
                .context("writing the pair table")?;
        }
    }
    let next = Config {
        generation: current.generation.wrapping_add(1),
        active_set: target,
        // The quarantine flag follows the quarantine set, not the policy.
        flags: CONFIG_LOADED | (current.flags & CONFIG_QUARANTINE) | flags,
        events_per_sec: if current.events_per_sec == 0 {
            DEFAULT_EVENTS_PER_SEC
        } else {
            current.events_per_sec
        },
    };
    set_config(ebpf, next)?;
    Ok(Loaded {
        generation: next.generation,
        active_set: target,
    })
}

fn set_names(set: u32) -> [&'static str; 4] {
    if set == 0 {
        [
            maps::ZONES_0,
            maps::ZONE_INFO_0,
            maps::PAIRS_0,
            maps::INTERVALS_0,
        ]
    } else {
        [
            maps::ZONES_1,
            maps::ZONE_INFO_1,
            maps::PAIRS_1,
            maps::INTERVALS_1,
        ]
    }
}

fn clear_lpm(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<()> {
    let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> = LpmTrie::try_from(map_mut(ebpf, name)?)?;
    let keys: Vec<Key<[u8; 16]>> = trie.keys().collect::<Result<_, _>>()?;
    for key in keys {
        trie.remove(&key)?;
    }
    Ok(())
}

fn clear_pairs(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<()> {
    let mut table: HashMap<&mut MapData, PairKey, Span> = HashMap::try_from(map_mut(ebpf, name)?)?;
    let keys: Vec<PairKey> = table.keys().collect::<Result<_, _>>()?;
    for key in keys {
        table.remove(&key)?;
    }
    Ok(())
}
