//! Writes a policy image into the program's maps, and switches to it in one step.
//!
//! The protocol (see `wardgate_common::maps`): the program reads
//! `Config::active_set` once per packet and uses only that table set. To load
//! a policy, the programmer
//! 1. clears the *inactive* set's LPM trie (stale keys there could be found;
//!    zone-info, pair-list, range, directory and interval entries are
//!    reached only through the zones it and the fully rewritten IPv4 block
//!    runs classify, so they are simply overwritten),
//! 2. writes the image's zones (with each zone's run of the pair list),
//!    prefixes, IPv4 ranges, block runs and directories (and the index that
//!    older programs read; lowered by
//!    `wardgate_compiler::v4table`), pair list, port directories
//!    (`wardgate_compiler::portdir`) and intervals into it,
//!    and the zones' connection limits (`conntrack::write_limits`),
//! 3. writes the config once: the other set active, the generation bumped.
//!
//! Until step 3 every packet uses the old policy, after it the new one; a
//! failure before step 3 leaves the old policy in force. Tracked connections
//! carry their generation, so the program re-decides each of them under the
//! new policy at its next packet.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, LpmTrie, MapData, lpm_trie::Key},
};
use wardgate_common::{
    CONFIG_CT_FILTER, CONFIG_LOADED, CONFIG_QUARANTINE, Config, DEFAULT_EVENTS_PER_SEC, Interval,
    PORT_DIR_RUNS, PairEntry, PairKey, Run, Span, V4_BLOCKS, V4_DIR_RUNS, V4_INDEX_ENTRIES,
    V4Range, ZoneInfo,
    maps::{self, MAX_INTERVALS, MAX_PAIRS, MAX_PORT_DIRS, MAX_V4_DIRS, MAX_V4_RANGES, MAX_ZONES},
    pair_entry_key,
};
use wardgate_compiler::{PolicyImage, portdir::PortDirs, v4table::V4Table};

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

/// `run` with both ends moved by `by` (a table set's offset).
fn shifted(run: Run, by: u32) -> Run {
    Run {
        first: by + run.first,
        end: by + run.end,
    }
}

/// Writes `runs` (each shifted by `offset`) into the `Run` array `name` from index `at`.
fn write_runs(
    ebpf: &mut Ebpf,
    name: &str,
    at: u32,
    runs: &[Run],
    offset: u32,
) -> anyhow::Result<()> {
    let mut array: Array<&mut MapData, Run> = Array::try_from(map_mut(ebpf, name)?)?;
    for (i, run) in runs.iter().enumerate() {
        array.set(at + i as u32, shifted(*run, offset), 0)?;
    }
    Ok(())
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
    let zones = if target == 0 {
        maps::ZONES_0
    } else {
        maps::ZONES_1
    };
    clear_lpm(ebpf, zones)?;
    let interval_base = target * MAX_INTERVALS;
    let (zone_infos, pairs) = pair_list(image, interval_base);
    {
        let mut info: Array<&mut MapData, ZoneInfo> =
            Array::try_from(map_mut(ebpf, maps::ZONE_INFO)?)?;
        let base = target * MAX_ZONES;
        for (id, zone) in zone_infos.into_iter().enumerate() {
            info.set(base + id as u32, zone, 0)
                .with_context(|| format!("writing zone {id}"))?;
        }
    }
    {
        let mut list: Array<&mut MapData, PairEntry> =
            Array::try_from(map_mut(ebpf, maps::PAIRS)?)?;
        let base = target * MAX_PAIRS;
        for (index, entry) in pairs.into_iter().enumerate() {
            list.set(base + index as u32, entry, 0)
                .context("writing the pair list")?;
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
        let v4 = V4Table::build(image);
        let range_base = target * MAX_V4_RANGES;
        let mut ranges: Array<&mut MapData, V4Range> =
            Array::try_from(map_mut(ebpf, maps::V4_RANGES)?)?;
        for (i, range) in v4.ranges.iter().enumerate() {
            ranges
                .set(range_base + i as u32, *range, 0)
                .with_context(|| format!("writing IPv4 range {i}"))?;
        }
        let mut index: Array<&mut MapData, u32> = Array::try_from(map_mut(ebpf, maps::V4_INDEX)?)?;
        let index_base = target * V4_INDEX_ENTRIES;
        for (block, first) in v4.index.iter().enumerate() {
            index
                .set(index_base + block as u32, range_base + *first, 0)
                .context("writing the IPv4 index")?;
        }
        let run_base = target * MAX_V4_DIRS * V4_DIR_RUNS;
        write_runs(ebpf, maps::V4_DIR, run_base, &v4.runs, range_base)
            .context("writing the IPv4 block directories")?;
        // Every block's run, after the directories it may point to.
        let mut blocks: Array<&mut MapData, Run> =
            Array::try_from(map_mut(ebpf, maps::V4_BLOCK_RUNS)?)?;
        for (b, run) in v4.blocks.iter().enumerate() {
            let run = if run.end == 0 {
                Run {
                    first: run_base + run.first,
                    end: 0,
                }
            } else {
                shifted(*run, range_base)
            };
            blocks
                .set(target * V4_BLOCKS + b as u32, run, 0)
                .context("writing the IPv4 block runs")?;
        }
    }
    {
        let dirs = PortDirs::build(image);
        let run_base = target * MAX_PORT_DIRS * PORT_DIR_RUNS;
        write_runs(ebpf, maps::PORT_DIR, run_base, &dirs.runs, interval_base)
            .context("writing the port directories")?;
        // The intervals after the directories their spans' first intervals name.
        let mut marks = dirs.marks.iter().peekable();
        let mut array: Array<&mut MapData, Interval> =
            Array::try_from(map_mut(ebpf, maps::INTERVALS)?)?;
        for (index, interval) in image.intervals().iter().enumerate() {
            let mut interval = *interval;
            if let Some((_, dir)) = marks.next_if(|m| m.0 == index as u32) {
                interval.dir = *dir;
            }
            array
                .set(interval_base + index as u32, interval, 0)
                .with_context(|| format!("writing interval {index}"))?;
        }
    }
    crate::conntrack::write_limits(ebpf, image, target)?;
    let next = Config {
        generation: current.generation.wrapping_add(1),
        active_set: target,
        // The quarantine flag follows the quarantine set, not the policy;
        // the filter's, its completeness (`conntrack::trust_filter`).
        flags: CONFIG_LOADED | (current.flags & (CONFIG_QUARANTINE | CONFIG_CT_FILTER)) | flags,
        events_per_sec: if current.events_per_sec == 0 {
            DEFAULT_EVENTS_PER_SEC
        } else {
            current.events_per_sec
        },
        clock_tick_ns: current.clock_tick_ns,
        ct_epoch: current.ct_epoch,
        clock_offset_ns: current.clock_offset_ns,
    };
    set_config(ebpf, next)?;
    Ok(Loaded {
        generation: next.generation,
        active_set: target,
    })
}

/// The image's pair table as the program reads it (`PairEntry`): each
/// source zone's entries sorted by key, its run recorded in its `ZoneInfo`,
/// spans moved to the set's half of the interval array (`interval_base`).
fn pair_list(image: &PolicyImage, interval_base: u32) -> (Vec<ZoneInfo>, Vec<PairEntry>) {
    let mut infos = image.zone_infos();
    let mut pairs: Vec<(PairKey, Span)> = image.pairs().to_vec();
    pairs.sort_by_key(|(k, _)| (k.src_zone, pair_entry_key(k.dst_zone, k.proto)));
    let mut list = Vec::with_capacity(pairs.len());
    for (key, span) in pairs {
        if let Some(info) = infos.get_mut(key.src_zone as usize) {
            if info.pairs_count == 0 {
                info.pairs_first = list.len() as u32;
            }
            info.pairs_count += 1;
        }
        list.push(PairEntry {
            key: pair_entry_key(key.dst_zone, key.proto),
            first: interval_base + span.first,
            count: span.count,
        });
    }
    (infos, list)
}

fn clear_lpm(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<()> {
    let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> = LpmTrie::try_from(map_mut(ebpf, name)?)?;
    let keys: Vec<Key<[u8; 16]>> = trie.keys().collect::<Result<_, _>>()?;
    for key in keys {
        trie.remove(&key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each source zone's entries are one run, sorted by key, and its
    /// `ZoneInfo` names the run; spans move to the set's interval half.
    #[test]
    fn the_pair_list_has_one_sorted_run_per_source_zone() {
        let loaded = wardgate_lang::parse_str(
            "site.ward",
            "zone a { networks 10.1.0.0/16 }\nzone b { networks 10.2.0.0/16 }\n\
             zone c { networks 10.3.0.0/16 }\n\
             allow a -> c : tcp/443, udp/53\nallow a -> b : tcp/22\nallow a -> b : udp/123\nallow c -> a : icmp/echo-request\n",
        );
        let image = wardgate_compiler::compile(&loaded, &wardgate_compiler::Options::default())
            .0
            .unwrap();
        let (infos, list) = pair_list(&image, 1000);
        assert_eq!(list.len(), image.pairs().len());
        let mut covered = 0;
        for (zone, info) in infos.iter().enumerate() {
            let run = &list[info.pairs_first as usize..][..info.pairs_count as usize];
            assert!(run.windows(2).all(|w| w[0].key < w[1].key), "zone {zone}");
            for entry in run {
                let (key, span) = image
                    .pairs()
                    .iter()
                    .find(|(k, _)| {
                        k.src_zone as usize == zone
                            && pair_entry_key(k.dst_zone, k.proto) == entry.key
                    })
                    .expect("every entry is one of the zone's pairs");
                assert_eq!(entry.first, 1000 + span.first, "{key:?}");
                assert_eq!(entry.count, span.count);
            }
            covered += run.len();
        }
        assert_eq!(covered, list.len());
        assert!(infos.iter().filter(|i| i.pairs_count > 0).count() >= 2);
    }
}
