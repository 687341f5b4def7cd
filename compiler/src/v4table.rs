//! IPv4 classification lowered for the datapath: the IPv4 space cut into
//! sorted, disjoint ranges, each with its zone, never crossing a /16
//! boundary, plus an index from each /16 block to its first range.
//!
//! The XDP program classifies an IPv4 address with one index lookup and a
//! binary search within the block (usually one or two ranges), so the cost
//! stays flat as the policy grows to 100,000 prefixes, where the kernel's LPM
//! trie slows several-fold. A block cut into many ranges (a /16 of
//! hundreds of subnets) also gets a *directory*: for each of its /24s, the
//! run of ranges that can hold that /24's addresses, so the search starts
//! from a few ranges instead of hundreds (up to `MAX_V4_DIRS` blocks, the
//! ones with the most ranges). The ranges are derived from the image's own
//! longest-prefix match, so both classify every address alike (the
//! differential test checks it against the kernel).

use wardgate_common::{
    Run, V4_BLOCKS, V4_DIR_RUNS, V4_INDEX_ENTRIES, V4Range,
    maps::{MAX_V4_DIRS, V4_DIR_MIN_RANGES},
};

use crate::image::PolicyImage;
use crate::prefix::V4_MAPPED_BASE;

/// The lowered IPv4 classification of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4Table {
    /// `V4_INDEX_ENTRIES` entries: `index[b]` is the first range of block `b`
    /// (addresses `b << 16 ..`), `index[b + 1]` the end of its run.
    pub index: Vec<u32>,
    pub ranges: Vec<V4Range>,
    /// `V4_BLOCKS` entries: each block's run of `ranges` (`index[b]..index[b + 1]`);
    /// for a block with a directory, `end` 0 and `first` the index in `runs`
    /// of its first run.
    pub blocks: Vec<Run>,
    /// The directories, `V4_DIR_RUNS` runs each (indices into `ranges`).
    pub runs: Vec<Run>,
}

const BLOCK: u64 = 1 << 16;

impl V4Table {
    /// Lowers the IPv4 part of `image`'s prefix table.
    #[must_use]
    pub fn build(image: &PolicyImage) -> Self {
        // Where the zone can change: every IPv4 prefix's first address and the
        // address after its last.
        let mut cuts: Vec<u64> = vec![0];
        for (key, _) in image.prefixes() {
            if key.len >= 96 && key.addr >> 32 == V4_MAPPED_BASE >> 32 {
                let start = (key.addr & 0xffff_ffff) as u64;
                let size = 1u64 << (128 - u32::from(key.len));
                cuts.extend([start, start + size]);
            }
        }
        cuts.push(1 << 32);
        cuts.sort_unstable();
        cuts.dedup();
        let mut ranges: Vec<V4Range> = Vec::with_capacity(cuts.len() + (1 << 16));
        let mut index = Vec::with_capacity(V4_INDEX_ENTRIES as usize);
        for pair in cuts.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            #[expect(clippy::cast_possible_truncation, reason = "start < 2^32")]
            let zone = image.classify(V4_MAPPED_BASE | u128::from(start as u32));
            // Split at /16 boundaries, so every block's run starts at its first address.
            let mut at = start;
            while at < end {
                if at % BLOCK == 0 {
                    index.push(ranges.len() as u32);
                }
                #[expect(clippy::cast_possible_truncation, reason = "at < 2^32")]
                ranges.push(V4Range {
                    start: at as u32,
                    zone,
                });
                at = (at / BLOCK + 1) * BLOCK;
            }
        }
        index.push(ranges.len() as u32);
        debug_assert_eq!(index.len(), V4_INDEX_ENTRIES as usize);
        let (blocks, runs) = directories(&index, &ranges);
        Self {
            index,
            ranges,
            blocks,
            runs,
        }
    }

    /// The zone of `addr`, searched the way the datapath does.
    #[must_use]
    pub fn classify(&self, addr: std::net::Ipv4Addr) -> u32 {
        let a = u32::from(addr);
        let block = (a >> 16) as usize;
        let mut run = self.blocks[block];
        if run.end == 0 {
            run = self.runs[(run.first + ((a >> 8) & 0xff)) as usize];
        }
        let (first, end) = (run.first, run.end);
        let run = &self.ranges[first as usize..end as usize];
        let i = run.partition_point(|r| r.start <= a);
        run[i - 1].zone
    }
}

/// Each block's run, and the block directories: for the (at most
/// `MAX_V4_DIRS`) blocks with the most ranges, more than
/// `V4_DIR_MIN_RANGES`, one run per /24. Returns `(blocks, runs)` as in
/// [`V4Table`]; directories are laid out in block order.
fn directories(index: &[u32], ranges: &[V4Range]) -> (Vec<Run>, Vec<Run>) {
    let len = |b: usize| (index[b + 1] - index[b]) as usize;
    let mut dense: Vec<usize> = (0..V4_BLOCKS as usize)
        .filter(|&b| len(b) > V4_DIR_MIN_RANGES)
        .collect();
    // The most ranges first; the block number breaks ties (deterministic).
    dense.sort_by_key(|&b| (std::cmp::Reverse(len(b)), b));
    dense.truncate(MAX_V4_DIRS as usize);
    dense.sort_unstable();
    let mut blocks: Vec<Run> = (0..V4_BLOCKS as usize)
        .map(|b| Run {
            first: index[b],
            end: index[b + 1],
        })
        .collect();
    let mut runs = Vec::with_capacity(dense.len() * V4_DIR_RUNS as usize);
    for b in dense {
        blocks[b] = Run {
            first: runs.len() as u32,
            end: 0,
        };
        let (first, end) = (index[b] as usize, index[b + 1] as usize);
        let block = &ranges[first..end];
        // The last range starting at or before `a` (the block's first range
        // starts at the block's first address).
        let holding = |a: u32| first + block.partition_point(|r| r.start <= a) - 1;
        for sub in 0..V4_DIR_RUNS {
            let lo = (b as u32) << 16 | sub << 8;
            #[expect(clippy::cast_possible_truncation, reason = "range indices fit u32")]
            runs.push(Run {
                first: holding(lo) as u32,
                end: holding(lo | 0xff) as u32 + 1,
            });
        }
    }
    (blocks, runs)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::prefix::addr_key;
    use crate::testutil::image;

    const NESTED: &str = r#"
        zone a { networks 10.0.0.0/8 }
        zone b { networks 10.1.0.0/16, 10.1.2.3 }
        zone c { networks 10.1.2.0/24, 192.168.0.0/30, 0.0.0.0/1 }
        zone d { networks 2001:db8::/32 }
    "#;

    #[test]
    fn ranges_are_sorted_and_blocks_start_runs() {
        let t = V4Table::build(&image(NESTED));
        assert_eq!(t.index.len(), V4_INDEX_ENTRIES as usize);
        assert!(t.ranges.windows(2).all(|w| w[0].start < w[1].start));
        for b in 0..(1u32 << 16) {
            assert_eq!(t.ranges[t.index[b as usize] as usize].start, b << 16);
        }
        // Blocks plus the extra cuts of the /24, the /32 and the /30.
        assert!(t.ranges.len() < (1 << 16) + 8, "{} ranges", t.ranges.len());
    }

    /// 10.1.0.0/16 cut into 300 ranges and more (/28s, a /30, a /32, a /20
    /// across sixteen /24s, nested); 10.2.0.0/16 into three.
    fn dense() -> String {
        let mut out = String::from("zone big { networks 10.1.16.0/20, 10.2.3.0/24 }\n");
        for z in 0..4 {
            let nets: Vec<String> = (0..40)
                .map(|k| format!("10.1.{}.{}/28", k + 40 * z, 16 * (k % 16)))
                .collect();
            out += &format!("zone z{z} {{ networks {} }}\n", nets.join(", "));
        }
        out + "zone tiny { networks 10.1.17.5, 10.1.200.0/30, 10.1.20.0/26 }\n"
    }

    #[test]
    fn dense_blocks_get_a_directory_and_sparse_ones_none() {
        let t = V4Table::build(&image(&dense()));
        let block = |a: u32| (a >> 16) as usize;
        assert_eq!(t.blocks[block(0x0a01_0000)].end, 0, "10.1.0.0/16");
        assert_ne!(t.blocks[block(0x0a02_0000)].end, 0, "10.2.0.0/16");
        assert_eq!(t.runs.len(), V4_DIR_RUNS as usize);
        // Each /24's run starts at or before it and ends after it.
        let dir = t.blocks[block(0x0a01_0000)].first as usize;
        for (sub, run) in t.runs[dir..dir + V4_DIR_RUNS as usize].iter().enumerate() {
            let lo = 0x0a01_0000 | (sub as u32) << 8;
            assert!(t.ranges[run.first as usize].start <= lo);
            let end = t
                .ranges
                .get(run.end as usize)
                .map_or(u64::MAX, |r| u64::from(r.start));
            assert!(end > u64::from(lo | 0xff));
            assert!(run.end - run.first <= 17, "/24 {sub}: {run:?}");
        }
    }

    #[test]
    fn at_most_max_v4_dirs_blocks_get_one_and_the_densest_win() {
        // One more dense block than there are directories; block 10.0 the
        // densest, block 20.0 the least dense.
        let mut nets: Vec<String> = (0..12).map(|k| format!("10.0.{k}.0/28")).collect();
        for b in 0..MAX_V4_DIRS {
            nets.extend(
                (0..5).map(|k| format!("{}/28", Ipv4Addr::from((20 << 24) + (b << 16) + (k << 8)))),
            );
        }
        nets.truncate(nets.len() - 1);
        let img = image(&format!("zone a {{ networks {} }}", nets.join(", ")));
        let t = V4Table::build(&img);
        let dirs = t.blocks.iter().filter(|b| b.end == 0).count();
        assert_eq!(dirs, MAX_V4_DIRS as usize);
        assert_eq!(t.blocks[10 << 8].end, 0);
        // 20.0 to 20.255, then 21.0 and on: the last block has one /28 less.
        let last = (20 << 8) + MAX_V4_DIRS as usize - 1;
        assert_ne!(t.blocks[last].end, 0);
        for a in [
            0x0a00_0005,
            0x0a00_0b05,
            0x0a00_0c05,
            0x1400_0405,
            (last as u32) << 16 | 0x0305,
        ] {
            let ip = Ipv4Addr::from(a);
            assert_eq!(
                t.classify(ip),
                img.classify(addr_key(IpAddr::V4(ip))),
                "{ip}"
            );
        }
    }

    proptest! {
        #[test]
        fn classifies_dense_blocks_like_the_image(low in any::<u16>(), block in 0u32..3) {
            let img = image(&dense());
            let t = V4Table::build(&img);
            let ip = Ipv4Addr::from(0x0a00_0000 | block << 16 | u32::from(low));
            prop_assert_eq!(t.classify(ip), img.classify(addr_key(IpAddr::V4(ip))));
        }

        #[test]
        fn classifies_every_address_like_the_image(a in any::<u32>(), near in 0usize..8, delta in -2i64..3) {
            let img = image(NESTED);
            let t = V4Table::build(&img);
            // Half the probes near a prefix boundary.
            let edges = [0x0a00_0000u32, 0x0a01_0000, 0x0a01_0200, 0x0a01_0203, 0xc0a8_0000, 0x8000_0000, 0x0aff_ffff, 0];
            let addr = if near < 4 { a } else { (i64::from(edges[near]) + delta).clamp(0, i64::from(u32::MAX)) as u32 };
            let ip = Ipv4Addr::from(addr);
            prop_assert_eq!(t.classify(ip), img.classify(addr_key(IpAddr::V4(ip))));
        }
    }
}
