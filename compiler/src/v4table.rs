//! IPv4 classification lowered for the datapath: the IPv4 space cut into
//! sorted, disjoint ranges, each with its zone, never crossing a /16
//! boundary, plus an index from each /16 block to its first range.
//!
//! The XDP program classifies an IPv4 address with one index lookup and a
//! binary search within the block (usually one or two ranges), so the cost
//! stays flat as the policy grows to 100,000 prefixes, where the kernel's LPM
//! trie slows several-fold. The ranges are derived from the image's own
//! longest-prefix match, so both classify every address alike (the
//! differential test checks it against the kernel).

use wardgate_common::{V4_INDEX_ENTRIES, V4Range};

use crate::image::PolicyImage;
use crate::prefix::V4_MAPPED_BASE;

/// The lowered IPv4 classification of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4Table {
    /// `V4_INDEX_ENTRIES` entries: `index[b]` is the first range of block `b`
    /// (addresses `b << 16 ..`), `index[b + 1]` the end of its run.
    pub index: Vec<u32>,
    pub ranges: Vec<V4Range>,
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
        Self { index, ranges }
    }

    /// The zone of `addr`, searched the way the datapath does.
    #[must_use]
    pub fn classify(&self, addr: std::net::Ipv4Addr) -> u32 {
        let a = u32::from(addr);
        let block = (a >> 16) as usize;
        let run = &self.ranges[self.index[block] as usize..self.index[block + 1] as usize];
        let i = run.partition_point(|r| r.start <= a);
        run[i - 1].zone
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::prefix::addr_key;

    fn image(src: &str) -> PolicyImage {
        let loaded = wardgate_lang::parse_str("t.ward", src);
        crate::compile(&loaded, &crate::Options::default())
            .0
            .expect("compiles")
    }

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

    proptest! {
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
