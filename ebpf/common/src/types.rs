//! Map keys, values and event records. Sizes are pinned at compile time.

/// Zone id of `world`: every address no declared zone holds.
pub const WORLD_ZONE: u32 = 0;

/// Rule id meaning "no rule" (intra-zone and default-deny decisions).
pub const RULE_NONE: u32 = u32::MAX;

/// Wildcard protocol in a [`PairKey`]: consulted when the exact protocol has no entry.
pub const PROTO_ANY: u32 = 256;

/// IP protocol numbers the program parses.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;

/// ICMPv6 link control that passes whatever the policy says, like non-IP
/// frames: neighbour discovery (133-137) and the multicast listener discovery
/// that it relies on (130-132 and 143; switches snoop MLD to deliver the
/// solicited-node groups of ND). Both stay on the link, from link-local or
/// unspecified addresses that no zone holds, and segmentation must not break
/// the network underneath it. The one definition the program and the tests
/// share (the nftables backend lists the same types by name).
#[must_use]
pub const fn is_link_control_icmpv6(icmp_type: u8) -> bool {
    matches!(icmp_type, 130..=137 | 143)
}

/// [`Config::flags`]: a policy has been written; without it every packet passes.
pub const CONFIG_LOADED: u32 = 1 << 0;
/// [`Config::flags`]: global monitor override: every default-deny drop becomes an
/// audit (a packet an explicit deny covers still drops).
pub const CONFIG_MONITOR_ALL: u32 = 1 << 1;
/// [`Config::flags`]: the failsafe map is consulted.
pub const CONFIG_FAILSAFE: u32 = 1 << 2;

/// [`Config::flags`]: forward packets of tracked, allowed connections in XDP
/// (`bpf_fib_lookup` + redirect) instead of passing them to the kernel stack.
pub const CONFIG_FAST_PATH: u32 = 1 << 3;

/// [`Config::flags`]: the quarantine set is not empty. The program looks
/// addresses up in it only then, keeping two hash lookups off every packet
/// of a gateway with nothing quarantined. Kept by the agent's quarantine calls.
pub const CONFIG_QUARANTINE: u32 = 1 << 4;

/// [`Config::flags`]: record new-connection decisions in the flow table
/// (`crate::flows`). The agent sets it when it writes a flows log; without
/// one, nothing would drain the table.
pub const CONFIG_FLOWS: u32 = 1 << 5;
/// The established-connection filter (`maps::CT_FILTER`) counts every entry
/// of the established table, so a packet whose bucket holds none skips the
/// table lookup. The agent sets this once the filter is known complete:
/// after the program that maintains it is attached everywhere and the
/// agent has counted the entries that were there before (an upgrade
/// adopts a table that an older program filled without counting).
/// Without it, every packet looks up the table.
pub const CONFIG_CT_FILTER: u32 = 1 << 6;

/// [`Config::events_per_sec`] when the agent sets none.
pub const DEFAULT_EVENTS_PER_SEC: u32 = 1_000;

/// The single entry of the config map. Written by the agent in one update.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Bumped on every policy switch; tracked connections remember it.
    pub generation: u32,
    /// Which table set (0 or 1) packets use.
    pub active_set: u32,
    /// `CONFIG_*` bits.
    pub flags: u32,
    /// Events allowed per CPU per second (token bucket refill rate).
    pub events_per_sec: u32,
    /// The program's clock: nanoseconds per jiffy (`1e9 / HZ`), or 0 for
    /// none calibrated (then it calls `bpf_ktime_get_coarse_ns`). The
    /// program reads time as `jiffies * clock_tick_ns - clock_offset_ns`:
    /// `bpf_jiffies64` is one load after the verifier inlines it, where the
    /// clock helper is a call (about 20 ns per packet measured here, see
    /// bench/datapath.md). The agent calibrates both so the result tracks
    /// `CLOCK_MONOTONIC_COARSE`, the clock of every time it reads back.
    pub clock_tick_ns: u32,
    /// Bumped by the agent whenever it forgets tracked connections: the
    /// program's connection cache (`CtCacheSlot`) trusts only slots filled
    /// under the current epoch.
    pub ct_epoch: u32,
    /// See [`Config::clock_tick_ns`].
    pub clock_offset_ns: u64,
}

/// [`ZoneInfo::flags`]: would-be drops involving this zone pass as audits.
pub const ZONE_MONITOR: u32 = 1 << 0;
/// [`ZoneInfo::flags`]: intra-zone traffic is not implicitly allowed.
pub const ZONE_ISOLATED: u32 = 1 << 1;
/// [`ZoneInfo::flags`]: the zone's own pair has tables (for a zone that is
/// not isolated: a `deny` rule covers some of its intra-zone traffic). A new
/// intra-zone connection of a zone that is not isolated passes without a
/// lookup unless this is set; with it, the pair's tables decide, and their
/// intervals that no deny covers allow ([`VERDICT_ALLOW`] with [`RULE_NONE`]).
pub const ZONE_INTRA_TABLE: u32 = 1 << 2;

/// Per-zone flags and the zone's run of the pair list, indexed by zone id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZoneInfo {
    pub flags: u32,
    /// This zone's entries in the pair list (as source zone): the first,
    /// counted from the start of its table set's half, and how many.
    pub pairs_first: u32,
    pub pairs_count: u32,
}

/// IPv4 classification: one entry of the sorted, disjoint ranges that cover
/// the IPv4 space. The ranges never cross a /16 boundary, so the index map
/// (`V4_INDEX`, entry `a >> 16`) gives the run of ranges of an address's /16
/// block and a short binary search finds the range: one array lookup and a
/// few steps, however many prefixes the policy has.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4Range {
    /// First address of the range, host byte order.
    pub start: u32,
    pub zone: u32,
}

/// Entries of the IPv4 index: one per /16 block, plus the end of the last run.
pub const V4_INDEX_ENTRIES: u32 = (1 << 16) + 1;

/// Runs of a port directory: one per 256 ports (the port's high byte).
pub const PORT_DIR_RUNS: u32 = 256;

/// /16 blocks of the IPv4 space: the entries per set of `V4_BLOCK_RUNS`.
pub const V4_BLOCKS: u32 = 1 << 16;

/// Runs of a block directory: one per /24 of the block.
pub const V4_DIR_RUNS: u32 = 256;

/// A run `first..end` of sorted map entries that a binary search starts
/// from: a directory's entry. Two kinds of directory cut a long search
/// short:
/// - a /16 block with many IPv4 ranges (cut into hundreds of subnets) has
///   one run of `V4_RANGES` per /24 (`maps::V4_DIR`);
/// - a span with many intervals (hundreds of ports) has one run of
///   `INTERVALS` per 256 ports (`maps::PORT_DIR`).
///
/// Indices include their table set's offset.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Run {
    pub first: u32,
    /// One past the last.
    pub end: u32,
}

/// Which intervals decide traffic from `src_zone` to `dst_zone` with IP
/// protocol `proto` (or [`PROTO_ANY`]): the compiled image's pair table. The
/// program reads it as a [`PairEntry`] list, sorted per source zone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairKey {
    pub src_zone: u32,
    pub dst_zone: u32,
    pub proto: u32,
}

/// One entry of the pair list (`maps::PAIRS`): a source zone's entries
/// ([`ZoneInfo::pairs_first`], [`ZoneInfo::pairs_count`]) are sorted by
/// `key`, which the program binary-searches with array lookups (no hash-map
/// call).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairEntry {
    /// [`pair_entry_key`] of the destination zone and protocol.
    pub key: u32,
    /// The intervals, as [`Span`].
    pub first: u32,
    pub count: u32,
}

/// [`PairEntry::key`]: destination zone (below `MAX_ZONES`, 2^16) in the
/// high half, protocol (at most [`PROTO_ANY`]) in the low half.
#[inline(always)]
#[must_use]
pub const fn pair_entry_key(dst_zone: u32, proto: u32) -> u32 {
    dst_zone << 16 | proto
}

/// A run of `count` intervals starting at index `first` of the interval array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub first: u32,
    pub count: u32,
}

/// [`Interval::verdict`]: the packet is dropped (or audited in monitor mode).
pub const VERDICT_DENY: u16 = 0;
/// [`Interval::verdict`]: the packet is allowed and its connection tracked.
/// With [`RULE_NONE`] (only in the tables of a zone's own pair, when the zone
/// is not isolated) it is intra-zone traffic that no `deny` covers.
pub const VERDICT_ALLOW: u16 = 1;

/// One interval of destination ports (TCP, UDP, SCTP) or ICMP types, for one
/// pair and protocol. A pair's intervals are sorted by `lo`, disjoint, and
/// cover the whole space `0..=65535`, so a binary search on `lo` always finds
/// the one interval holding a port. Protocols without ports look up port 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interval {
    pub lo: u16,
    pub hi: u16,
    /// `VERDICT_*`.
    pub verdict: u16,
    /// In the program's map only (the image has 0): on the first interval
    /// of a span with a port directory, the directory's number from 1
    /// (`maps::PORT_DIR`); 0 on every other interval.
    pub dir: u16,
    /// The deciding rule: the covering deny if any, else the covering allow
    /// with the lowest id; [`RULE_NONE`] for default deny (and, with
    /// [`VERDICT_ALLOW`], for intra-zone traffic no deny covers).
    pub rule: u32,
}

/// An IPv4 address as the 16-byte key form (`::ffff:a.b.c.d`).
#[must_use]
pub const fn v4_mapped(v4: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
    ]
}

/// Tracked connection key, in the direction of the packet that started it.
/// For ICMP echo, `sport` is the echo identifier and `dport` is 0. Aligned to
/// 8 so the program copies addresses into it with word moves.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}

impl CtKey {
    /// The (canonical) key of the connection a packet with these fields
    /// belongs to, in either direction. ICMP echo (request and reply) is keyed
    /// by its identifier, passed in `sport`; other ICMP carries no ports. The
    /// one definition the program and user space share.
    #[inline(always)]
    #[must_use]
    pub fn new(
        src: [u8; 16],
        dst: [u8; 16],
        proto: u8,
        sport: u16,
        dport: u16,
        icmp_type: u8,
    ) -> Self {
        let mut key = Self::default();
        key.set(&src, &dst, proto, sport, dport, icmp_type);
        key.canonicalize();
        key
    }

    /// The key as five native words (addresses, then ports, protocol and padding).
    #[inline(always)]
    #[must_use]
    pub fn words(&self) -> [u64; 5] {
        let words = (self as *const Self).cast::<u64>();
        // SAFETY: `CtKey` is `repr(C, align(8))` and 40 bytes: five aligned words.
        #[allow(unsafe_code, reason = "five aligned word loads")]
        unsafe {
            [
                words.read(),
                words.add(1).read(),
                words.add(2).read(),
                words.add(3).read(),
                words.add(4).read(),
            ]
        }
    }

    /// This key's bucket of the established-connection filter
    /// ([`crate::maps::CT_FILTER`]); the program and the agent both count
    /// with it.
    #[inline(always)]
    #[must_use]
    pub fn filter_bucket(&self) -> u32 {
        crate::flow_hash(self.words()) & (crate::maps::CT_FILTER_BUCKETS - 1)
    }

    /// This key's bucket of the unconfirmed horizon
    /// ([`crate::maps::CT_HORIZON`]): the low bits of its filter bucket.
    #[inline(always)]
    #[must_use]
    pub fn horizon_bucket(&self) -> u32 {
        horizon_bucket_of(self.filter_bucket())
    }

    /// [`CtKey::new`] in place, field by field (a struct literal becomes a
    /// byte-loop `memset` in BPF).
    #[inline(always)]
    pub fn set(
        &mut self,
        src: &[u8; 16],
        dst: &[u8; 16],
        proto: u8,
        sport: u16,
        dport: u16,
        icmp_type: u8,
    ) {
        let words = |a: &[u8; 16]| {
            let mut w = [[0u8; 8]; 2];
            w[0].copy_from_slice(&a[..8]);
            w[1].copy_from_slice(&a[8..]);
            [u64::from_ne_bytes(w[0]), u64::from_ne_bytes(w[1])]
        };
        self.set_words(words(src), words(dst), proto, sport, dport, icmp_type);
    }

    /// [`CtKey::set`] from the addresses as native words (bytes 0..8 and
    /// 8..16 of each), written as four word stores. The program loads them
    /// in one instruction each: byte stores followed by the kernel's word
    /// loads when it hashes the key would stall on store forwarding.
    #[inline(always)]
    pub fn set_words(
        &mut self,
        src: [u64; 2],
        dst: [u64; 2],
        proto: u8,
        sport: u16,
        dport: u16,
        icmp_type: u8,
    ) {
        let (sport, dport) = match proto {
            IPPROTO_ICMP => (if matches!(icmp_type, 0 | 8) { sport } else { 0 }, 0),
            IPPROTO_ICMPV6 => (
                if matches!(icmp_type, 128 | 129) {
                    sport
                } else {
                    0
                },
                0,
            ),
            _ => (sport, dport),
        };
        let words = (self as *mut Self).cast::<u64>();
        // SAFETY: `CtKey` is `repr(C, align(8))`: words 0-1 are `src`, 2-3 `dst`.
        #[allow(
            unsafe_code,
            reason = "four aligned word stores in place of 32 byte stores"
        )]
        unsafe {
            words.write(src[0]);
            words.add(1).write(src[1]);
            words.add(2).write(dst[0]);
            words.add(3).write(dst[1]);
        }
        self.set_tail(sport, dport, proto);
    }

    /// Ports, protocol and padding: the last 8 bytes, as one word store
    /// (separate small stores are merged into a byte-loop `memset` in BPF).
    #[inline(always)]
    fn set_tail(&mut self, sport: u16, dport: u16, proto: u8) {
        let s = sport.to_ne_bytes();
        let d = dport.to_ne_bytes();
        let word = u64::from_ne_bytes([s[0], s[1], d[0], d[1], proto, 0, 0, 0]);
        // SAFETY: `CtKey` is `repr(C, align(8))`, 40 bytes; bytes 32..40 are
        // `sport`, `dport`, `proto` and `_pad` (offsets asserted below).
        #[allow(unsafe_code, reason = "one aligned word store in place of four")]
        unsafe {
            (self as *mut Self).cast::<u64>().add(4).write(word);
        }
    }

    /// Makes the key the same for both directions of a connection: the
    /// endpoint whose address (then port) sorts lower comes first. Returns
    /// true if it swapped the endpoints, i.e. the packet goes from the
    /// higher endpoint to the lower. One key per connection means one lookup
    /// per packet, whichever way it goes. ICMP echo keeps its identifier in
    /// place (both directions carry it in the same field).
    #[inline(always)]
    pub fn canonicalize(&mut self) -> bool {
        let words = (self as *mut Self).cast::<u64>();
        // SAFETY: `CtKey` is `repr(C, align(8))`: words 0-1 are `src`, 2-3 `dst`.
        #[allow(unsafe_code, reason = "word compares and moves of the addresses")]
        let [s0, s1, d0, d1] = unsafe {
            [
                words.read(),
                words.add(1).read(),
                words.add(2).read(),
                words.add(3).read(),
            ]
        };
        let icmp = self.proto == IPPROTO_ICMP || self.proto == IPPROTO_ICMPV6;
        let swap = if s0 != d0 {
            s0 > d0
        } else if s1 != d1 {
            s1 > d1
        } else {
            !icmp && self.sport > self.dport
        };
        if swap {
            // SAFETY: as above.
            #[allow(unsafe_code, reason = "word moves of the addresses")]
            unsafe {
                words.write(d0);
                words.add(1).write(d1);
                words.add(2).write(s0);
                words.add(3).write(s1);
            }
            if !icmp {
                self.set_tail(self.dport, self.sport, self.proto);
            }
        }
        swap
    }
}

/// [`CtEntry::state`].
pub const CT_NEW: u32 = 0;
pub const CT_ESTABLISHED: u32 = 1;
pub const CT_CLOSING: u32 = 2;

/// Idle timeouts by state, in nanoseconds.
pub const CT_TIMEOUT_NEW_NS: u64 = 30 * 1_000_000_000;
pub const CT_TIMEOUT_ESTABLISHED_TCP_NS: u64 = 2 * 3600 * 1_000_000_000;
pub const CT_TIMEOUT_UDP_NS: u64 = 120 * 1_000_000_000;
pub const CT_TIMEOUT_ICMP_NS: u64 = 30 * 1_000_000_000;
pub const CT_TIMEOUT_CLOSING_NS: u64 = 10 * 1_000_000_000;

/// Charge slot of the zones that share the pool ([`CT_LIMIT_POOL`]).
pub const CT_SLOT_POOL: u32 = crate::maps::MAX_ZONES;
/// Charge slot of life-critical zones without a limit ([`CT_LIMIT_RESERVED`]).
pub const CT_SLOT_RESERVED: u32 = crate::maps::MAX_ZONES + 1;
/// `CT_LIMITS` value: the zone has no limit of its own and shares the pool.
pub const CT_LIMIT_POOL: u32 = 0;
/// `CT_LIMITS` value: a life-critical zone without a limit: it may use the
/// reserve and whatever the table has free.
pub const CT_LIMIT_RESERVED: u32 = u32::MAX;

/// The charge slot of a zone whose `CT_LIMITS` entry is `limit`.
#[inline(always)]
#[must_use]
pub const fn ct_slot(zone: u32, limit: u32) -> u32 {
    match limit {
        CT_LIMIT_POOL => CT_SLOT_POOL,
        CT_LIMIT_RESERVED => CT_SLOT_RESERVED,
        _ => zone,
    }
}

/// A tracked connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// `bpf_ktime_get_ns` of the last packet in either direction.
    pub last_seen_ns: u64,
    /// The policy generation under which it was last allowed.
    pub generation: u32,
    /// `CT_*`.
    pub state: u32,
    pub src_zone: u32,
    pub dst_zone: u32,
    /// The rule that allowed it ([`RULE_NONE`] for intra-zone).
    pub rule: u32,
    /// `CT_KEY_REVERSED` if the connection's initiator is the key's `dst`.
    pub flags: u32,
    /// In the established table: the charge slot plus one (see
    /// `maps::CT_CHARGED`); 0 in the unconfirmed table.
    pub charge: u32,
    pub _reserved: u32,
}

/// Slots of the per-CPU established-connection cache
/// ([`crate::maps::CT_CACHE`]), a power of two.
pub const CT_CACHE_SLOTS: u32 = 4_096;

/// How long a cache slot vouches for its connection: a packet that finds
/// an older slot goes through the connection table, which refreshes the
/// entry's `last_seen_ns`. The table's times are therefore at most this
/// stale, far below every timeout a cached entry can have (established, or
/// new), so the idle sweep never removes a connection the cache still passes.
pub const CT_CACHE_REFRESH_NS: u64 = 1_000_000_000;

/// The first slot of the connection-cache set of a slot key
/// ([`CtCacheSlot::key`]): the key's words folded by xor (addresses land in
/// the high halves, ports and protocol in the low one), one multiply, the
/// top bits. Cheaper than [`crate::flow_hash`] on the path every packet of
/// a cached connection takes; a poor spread only costs table lookups.
#[inline(always)]
#[must_use]
pub const fn ct_cache_set(key: &[u64; 5]) -> u32 {
    const SET_BITS: u32 = (CT_CACHE_SLOTS / 2).trailing_zeros();
    let folded = key[0] ^ key[1] ^ key[2] ^ key[3] ^ key[4];
    ((folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SET_BITS)) as u32) * 2
}

const _: () = {
    assert!(CT_CACHE_SLOTS.is_power_of_two());
    assert!(CT_CACHE_REFRESH_NS * 10 <= CT_TIMEOUT_CLOSING_NS);
    assert!(CT_CACHE_REFRESH_NS * 10 <= CT_TIMEOUT_ICMP_NS);
    assert!(CT_CACHE_REFRESH_NS * 10 <= CT_TIMEOUT_UDP_NS);
    assert!(CT_CACHE_REFRESH_NS * 10 <= CT_TIMEOUT_NEW_NS);
};

/// One slot of the per-CPU connection cache: a packet's tuple (as it
/// travels, not canonical) that passed as part of an established connection
/// (or of an unanswered one, in its first direction), and under which
/// policy generation, forget epoch and time.
/// One cache line; [`crate::flow_hash`] of `key` picks a set of two
/// adjacent slots.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtCacheSlot {
    /// Source and destination address words, then `sport | dport << 16 |
    /// proto << 32 | 1 << 40` (the last bit keeps an empty slot from
    /// matching anything).
    pub key: [u64; 5],
    /// When the connection table last saw a packet through this slot.
    pub refreshed_ns: u64,
    /// [`Config::generation`] when filled.
    pub generation: u32,
    /// [`Config::ct_epoch`] when filled.
    pub epoch: u32,
    /// To a whole cache line: the map's values are page-aligned, so no
    /// slot straddles two lines.
    pub _pad: u64,
}

/// The unconfirmed-horizon bucket of a key whose filter bucket is
/// `filter_bucket` ([`CtKey::horizon_bucket`] without hashing again).
#[inline(always)]
#[must_use]
pub const fn horizon_bucket_of(filter_bucket: u32) -> u32 {
    filter_bucket & (crate::maps::CT_HORIZON_BUCKETS - 1)
}

/// One bucket of the unconfirmed horizon ([`crate::maps::CT_HORIZON`]):
/// times (the program's clock) after which no unconfirmed entry whose key
/// falls in this bucket can still be live. The program moves them whenever
/// it writes such an entry's time or state, always to *now* plus a
/// constant, so concurrent writers write nearly the same value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtHorizon {
    /// Covers entries that are new or closing: [`CT_HORIZON_SHORT_NS`] after their last packet.
    pub short: u64,
    /// Covers entries established in the unconfirmed table (their promotion
    /// failed: zone at its limit, table full): [`CT_HORIZON_LONG_NS`].
    pub long: u64,
}

/// The longest timeout of a new or closing connection.
pub const CT_HORIZON_SHORT_NS: u64 = CT_TIMEOUT_NEW_NS;
/// The longest timeout of any connection.
pub const CT_HORIZON_LONG_NS: u64 = CT_TIMEOUT_ESTABLISHED_TCP_NS;
/// A horizon is moved only when it would move by more than this (not on
/// every packet), and a lookup is skipped only this long past a horizon
/// plus [`CT_HORIZON_SLACK_NS`]: racing writers and clock recalibrations
/// move times by far less.
pub const CT_HORIZON_REFRESH_NS: u64 = 1_000_000_000;
/// See [`CT_HORIZON_REFRESH_NS`].
pub const CT_HORIZON_SLACK_NS: u64 = 1_000_000_000;

const _: () = {
    assert!(CT_TIMEOUT_CLOSING_NS <= CT_HORIZON_SHORT_NS);
    assert!(CT_TIMEOUT_UDP_NS <= CT_HORIZON_LONG_NS);
    assert!(CT_TIMEOUT_ICMP_NS <= CT_HORIZON_LONG_NS);
};

/// [`CtEntry::flags`]: the canonical key lists the connection's responder
/// first ([`CtKey::canonicalize`] swapped the first packet's endpoints).
pub const CT_KEY_REVERSED: u32 = 1;

/// A fragmented datagram whose first fragment passed: later fragments (which
/// carry no transport header) pass only if it is here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits), as a number.
    pub id: u32,
    pub proto: u8,
    pub _pad: [u8; 3],
}

/// Failsafe entry: traffic to `addr` with protocol `proto` and destination
/// port `port` always passes (by default: SSH to the gateway's own addresses).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FailsafeKey {
    pub addr: [u8; 16],
    pub port: u16,
    pub proto: u8,
    pub _pad: u8,
}

/// The per-CPU counter block: one map entry holding every counter, so a
/// packet pays one per-CPU lookup, not one per counter. Indexed by `counter::*`.
pub type Counters = [u64; counter::COUNT as usize];

/// Indexes into [`Counters`]. Drop reasons are the `DROP_*` ones.
pub mod counter {
    pub const PACKETS: u32 = 0;
    pub const NON_IP: u32 = 1;
    pub const IPV4: u32 = 2;
    pub const IPV6: u32 = 3;
    pub const TCP: u32 = 4;
    pub const UDP: u32 = 5;
    pub const ICMP: u32 = 6;
    pub const ICMPV6: u32 = 7;
    pub const SCTP: u32 = 8;
    pub const OTHER_PROTO: u32 = 9;
    pub const VLAN: u32 = 10;
    /// IPv6 neighbour discovery and multicast listener discovery, passed
    /// ([`crate::is_link_control_icmpv6`]).
    pub const NEIGHBOR_DISCOVERY: u32 = 11;
    pub const PASS_TRACKED: u32 = 12;
    pub const PASS_INTRA_ZONE: u32 = 13;
    pub const PASS_RULE: u32 = 14;
    pub const PASS_FAILSAFE: u32 = 15;
    pub const PASS_FRAGMENT: u32 = 16;
    pub const AUDIT: u32 = 17;
    pub const DROP_POLICY: u32 = 18;
    pub const DROP_QUARANTINE: u32 = 19;
    pub const DROP_TRUNCATED: u32 = 20;
    pub const DROP_MALFORMED: u32 = 21;
    pub const DROP_FRAGMENT: u32 = 22;
    pub const EVENTS_SENT: u32 = 23;
    pub const EVENTS_RATE_LIMITED: u32 = 24;
    pub const EVENTS_LOST: u32 = 25;
    pub const CT_REDECIDED: u32 = 26;
    /// Fast path: forwarded in XDP (fib lookup, rewrite, redirect).
    pub const FAST_FORWARDED: u32 = 27;
    /// Fast path: handed to the kernel stack (no neighbour, local, TTL 1, VLAN, fragment, ...).
    pub const FAST_TO_STACK: u32 = 28;
    /// An IPv6 packet whose source or destination is IPv4-mapped
    /// (`::ffff:0:0/96`): never on a real wire, dropped as malformed.
    pub const DROP_MAPPED: u32 = 29;
    /// A new connection whose zone is at its `conntrack-limit` (or whose
    /// pool is full): dropped.
    pub const DROP_CT_LIMIT: u32 = 30;
    /// A reply could not promote its connection to the established table
    /// (full, or the zone reached its limit meanwhile): the connection
    /// stays unconfirmed (it still passes, but a flood may evict it).
    pub const CT_INSERT_FAILED: u32 = 31;
    /// Entries created in the unconfirmed table.
    pub const CT_UNCONFIRMED_CREATED: u32 = 32;
    /// Unconfirmed entries promoted to the established table.
    pub const CT_PROMOTED: u32 = 33;
    /// Unconfirmed entries removed by the program (idled out, forbidden by a new policy).
    pub const CT_UNCONFIRMED_REMOVED: u32 = 34;
    /// Established entries removed by the program (idled out, forbidden by a new policy).
    pub const CT_ESTABLISHED_REMOVED: u32 = 35;
    /// Packets of tracked connections passed by this CPU's connection
    /// cache, without a lookup in the connection tables (also counted in
    /// [`PASS_TRACKED`]).
    pub const CT_CACHE_HIT: u32 = 36;
    /// Number of counters (the array's size).
    pub const COUNT: u32 = 40;

    /// Metric-friendly names, indexed by counter id.
    pub const NAMES: [&str; 37] = [
        "packets",
        "non_ip",
        "ipv4",
        "ipv6",
        "tcp",
        "udp",
        "icmp",
        "icmpv6",
        "sctp",
        "other_proto",
        "vlan",
        "neighbor_discovery",
        "pass_tracked",
        "pass_intra_zone",
        "pass_rule",
        "pass_failsafe",
        "pass_fragment",
        "audit",
        "drop_policy",
        "drop_quarantine",
        "drop_truncated",
        "drop_malformed",
        "drop_fragment",
        "events_sent",
        "events_rate_limited",
        "events_lost",
        "ct_redecided",
        "fast_forwarded",
        "fast_to_stack",
        "drop_mapped",
        "drop_conntrack_limit",
        "ct_insert_failed",
        "ct_unconfirmed_created",
        "ct_promoted",
        "ct_unconfirmed_removed",
        "ct_established_removed",
        "ct_cache_hit",
    ];
}

/// [`Event::verdict`].
pub const EVENT_DROP: u8 = 0;
pub const EVENT_AUDIT: u8 = 1;

/// A drop or audit event, sent to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub ts_ns: u64,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// `EVENT_*`.
    pub verdict: u8,
    /// `IP version`: 4 or 6.
    pub family: u8,
    pub _pad: u8,
    /// The counter id of the drop reason (`counter::DROP_*`, or `AUDIT`).
    pub reason: u32,
    pub ifindex: u32,
    pub src_zone: u32,
    pub dst_zone: u32,
    pub rule: u32,
    pub generation: u32,
}

/// Per-CPU token bucket for events.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub tokens: u64,
    pub last_ns: u64,
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Config>() == 32);
    assert!(size_of::<ZoneInfo>() == 12);
    assert!(size_of::<PairEntry>() == 12);
    assert!(crate::maps::MAX_ZONES <= 1 << 16 && PROTO_ANY < 1 << 16);
    assert!(size_of::<PairKey>() == 12);
    assert!(size_of::<Span>() == 8);
    assert!(size_of::<V4Range>() == 8);
    assert!(size_of::<Run>() == 8);
    assert!(size_of::<CtCacheSlot>() == 64);
    assert!(size_of::<Interval>() == 12);
    assert!(size_of::<CtKey>() == 40);
    assert!(core::mem::offset_of!(CtKey, sport) == 32);
    assert!(core::mem::offset_of!(CtKey, dport) == 34);
    assert!(core::mem::offset_of!(CtKey, proto) == 36);
    assert!(size_of::<CtEntry>() == 40);
    assert!(size_of::<FragKey>() == 40);
    assert!(size_of::<FailsafeKey>() == 20);
    assert!(size_of::<Event>() == 72);
    assert!(size_of::<RateLimit>() == 16);
    assert!(counter::NAMES.len() as u32 <= counter::COUNT);
};

#[cfg(feature = "user")]
#[allow(unsafe_code, reason = "aya::Pod is an unsafe marker trait")]
mod pod {
    use super::{
        Config, CtEntry, CtKey, Event, FailsafeKey, FragKey, Interval, PairEntry, PairKey,
        RateLimit, Run, Span, V4Range, ZoneInfo,
    };
    // SAFETY: every type here is `#[repr(C)]`, `Copy`, made only of integers and
    // integer arrays, and has no padding (sizes asserted above), so any bit
    // pattern is a valid value and every byte is initialized.
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for ZoneInfo {}
    unsafe impl aya::Pod for PairKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for PairEntry {}
    unsafe impl aya::Pod for Span {}
    unsafe impl aya::Pod for V4Range {}
    unsafe impl aya::Pod for Run {}
    unsafe impl aya::Pod for Interval {}
    unsafe impl aya::Pod for CtKey {}
    unsafe impl aya::Pod for CtEntry {}
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for FailsafeKey {}
    unsafe impl aya::Pod for Event {}
    unsafe impl aya::Pod for RateLimit {}
}
