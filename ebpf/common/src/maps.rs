//! Map names and capacities.
//!
//! The program keeps two *table sets* (0 and 1) of the policy. The agent
//! writes a whole new policy into the inactive set, then flips
//! [`crate::Config::active_set`] and bumps [`crate::Config::generation`] in one
//! array-map write. A packet reads the config once and uses only that set, so
//! every packet sees either the whole old or the whole new policy. The next
//! reload clears and rewrites the set that is now inactive.
//!
//! How a set is addressed: the LPM tries are two maps (`ZONES_0`, `ZONES_1`);
//! every other table is ONE map holding both sets, set 1 after set 0 (array
//! index `set * CAPACITY + i`). One map per table keeps each map pointer constant at
//! its call site, which lets the verifier inline array lookups; choosing
//! between two maps at run time forces a helper call per lookup.

/// `Array<Config>`, one entry: generation, active table set, flags.
pub const CONFIG: &str = "WG_CONFIG";

/// `LpmTrie<[u8; 16], u32>`: IPv6 (and IPv4-mapped) prefix to zone id, set 0 and 1.
pub const ZONES_0: &str = "WG_ZONES_0";
pub const ZONES_1: &str = "WG_ZONES_1";

/// `Array<u32>`, `2 * V4_INDEX_ENTRIES`: the first IPv4 range of each /16
/// block (an index into `V4_RANGES`, set offset included). This release's
/// program reads `V4_BLOCK_RUNS` instead; the agent still writes the index
/// for the program of an older release, which keeps running during an
/// upgrade until the new one replaces it.
pub const V4_INDEX: &str = "WG_V4_INDEX";

/// `Array<V4Range>`, `2 * MAX_V4_RANGES`: IPv4 ranges to zone ids.
pub const V4_RANGES: &str = "WG_V4_RANGES";

/// `Array<Run>`, `2 * V4_BLOCKS`: each /16 block's run of `V4_RANGES`
/// (set offset included); or, for a block with a directory, `end` 0 and
/// `first` the index in `V4_DIR` of its first run.
pub const V4_BLOCK_RUNS: &str = "WG_V4_BLOCK_RUNS";

/// `Array<Run>`, `2 * MAX_V4_DIRS * V4_DIR_RUNS`: the block directories,
/// `V4_DIR_RUNS` runs each, one per /24 of the block.
pub const V4_DIR: &str = "WG_V4_DIR";

/// `Array<Run>`, `2 * MAX_PORT_DIRS * PORT_DIR_RUNS`: the port directories
/// of the spans with the most intervals, `PORT_DIR_RUNS` runs each, one per
/// 256 ports; a span's first interval names its directory (`Interval::dir`).
pub const PORT_DIR: &str = "WG_PORT_DIR";

/// `Array<ZoneInfo>`, `2 * MAX_ZONES`, indexed by `set * MAX_ZONES + zone id`.
pub const ZONE_INFO: &str = "WG_ZONE_INFO";

/// `Array<PairEntry>`, `2 * MAX_PAIRS`: (dst zone, protocol) to a span of
/// intervals, in runs per source zone (`ZoneInfo::pairs_first`) sorted by
/// key; runs point into their own set's half of `INTERVALS`.
pub const PAIRS: &str = "WG_PAIRS";

/// `Array<Interval>`, `2 * MAX_INTERVALS`: sorted, disjoint port/type
/// intervals; spans point into their own set's half.
pub const INTERVALS: &str = "WG_INTERVALS";

/// `HashMap<CtKey, CtEntry>`: established connections (a reply was seen),
/// by canonical key. A plain hash, not an LRU: nothing is ever evicted from
/// it; entries leave when they idle out or a new policy forbids them, and an
/// insert into a full table fails instead (see `docs/conntrack.md`).
pub const CONNTRACK: &str = "WG_CONNTRACK";

/// `LruHashMap<CtKey, CtEntry>`: unconfirmed connections (first packet
/// allowed, no reply yet). A flood fills and evicts this table only; a reply
/// promotes the entry into [`CONNTRACK`].
pub const CT_UNCONFIRMED: &str = "WG_CT_UNCONFIRMED";

/// `Array<CtCacheSlot>`, [`crate::CT_CACHE_SLOTS`] entries per CPU (the
/// agent sizes it with [`ct_cache_entries`]; CPU `c`'s slots start at
/// `c * CT_CACHE_SLOTS`): each CPU's cache of connections it passed
/// recently, so their packets pass without a lookup in [`CONNTRACK`] or
/// [`CT_UNCONFIRMED`] (a hash-map lookup is four kernel calls; an array
/// slot is a few loads). A plain array, not a per-CPU one: a per-CPU
/// lookup loads the slot's pointer first, a second dependent cache miss.
/// See `docs/conntrack.md`.
pub const CT_CACHE: &str = "WG_CT_CACHES";

/// Maps an older release pinned that this one no longer uses: the agent
/// unpins them once the new program runs (`WG_CT_CACHE` was the per-CPU
/// form of [`CT_CACHE`]).
pub const RETIRED: &[&str] = &["WG_CT_CACHE"];

/// Entries of [`CT_CACHE`] for `cpus` possible CPUs.
#[must_use]
pub const fn ct_cache_entries(cpus: u32) -> u32 {
    cpus * crate::CT_CACHE_SLOTS
}

/// `Array<u64>` (mmapable), [`CT_FILTER_BUCKETS`] entries: how many
/// entries of [`CONNTRACK`] hash to each bucket
/// ([`crate::CtKey::filter_bucket`]). Whoever inserts adds one first, whoever
/// removes (and succeeds) subtracts one after, atomically (the agent
/// through a shared mapping), so a bucket is never below its entries: a
/// packet whose bucket reads zero has no established connection and skips
/// the table lookup (four kernel calls). Trusted only with
/// [`crate::CONFIG_CT_FILTER`]. See `docs/conntrack.md`.
pub const CT_FILTER: &str = "WG_CT_FILTER";

/// Buckets of [`CT_FILTER`] (a power of two): four per established entry
/// at [`MAX_CONNECTIONS`], so a full table leaves most buckets empty.
pub const CT_FILTER_BUCKETS: u32 = 1 << 20;

const _: () = assert!(CT_FILTER_BUCKETS.is_power_of_two());

/// `Array<CtHorizon>` (mmapable), [`CT_HORIZON_BUCKETS`] entries: per
/// bucket ([`crate::CtKey::horizon_bucket`]), when the last unconfirmed
/// entry whose key falls there can idle out at the latest. A packet past
/// both of its bucket's horizons skips the unconfirmed table's lookup (it
/// could only find an entry that idled out). The program keeps them; the
/// agent moves every `long` one timeout ahead when it starts trusting them,
/// to cover entries an older program inserted. Trusted only with
/// [`crate::CONFIG_CT_FILTER`]. See `docs/conntrack.md`.
pub const CT_HORIZON: &str = "WG_CT_HORIZON";

/// Buckets of [`CT_HORIZON`] (a power of two): four per entry of a full
/// unconfirmed table.
pub const CT_HORIZON_BUCKETS: u32 = 1 << 19;

const _: () =
    assert!(CT_HORIZON_BUCKETS.is_power_of_two() && CT_HORIZON_BUCKETS <= CT_FILTER_BUCKETS);

/// `Array<u32>`, `2 * CT_SLOTS`, indexed by `set * CT_SLOTS + slot`: the
/// connection limit of each charge slot (see [`crate::ct_slot`]). A zone's
/// own entry is its `conntrack-limit`, [`crate::CT_LIMIT_POOL`] (0) for a
/// zone that shares the pool, [`crate::CT_LIMIT_RESERVED`] for a
/// life-critical zone without a limit; the [`crate::CT_SLOT_POOL`] entry is
/// the pool's size. Written by the agent with the policy.
pub const CT_LIMITS: &str = "WG_CT_LIMITS";

/// `Array<u64>`, `CT_SLOTS`: established entries charged to each slot, as
/// the program counts them (atomic adds when it inserts into and removes
/// from [`CONNTRACK`]). The live count is this minus [`CT_RELEASED`].
pub const CT_CHARGED: &str = "WG_CT_CHARGED";

/// `Array<u64>`, `CT_SLOTS`: established entries of each slot that the agent
/// removed (idle-timeout sweeps, `forget`). Only the agent writes it.
pub const CT_RELEASED: &str = "WG_CT_RELEASED";

/// `LruHashMap<FragKey, u32>`: fragmented datagrams whose first fragment passed.
pub const FRAGMENTS: &str = "WG_FRAGMENTS";

/// `HashMap<[u8; 16], u32>`: quarantined addresses (value: reserved flags).
pub const QUARANTINE: &str = "WG_QUARANTINE";

/// `HashMap<FailsafeKey, u32>`: traffic that always passes (e.g. SSH to the gateway).
pub const FAILSAFE: &str = "WG_FAILSAFE";

/// `PerCpuArray<u64>` indexed by rule id: packets decided by that rule.
pub const RULE_HITS: &str = "WG_RULE_HITS";

/// `PerCpuArray<Counters>`, one entry: the counter block, indexed by `counter::*`.
pub const COUNTERS: &str = "WG_COUNTERS";

/// `RingBuf` of [`crate::Event`].
pub const EVENTS: &str = "WG_EVENTS";

/// `PerCpuArray`, one entry: per-CPU scratch space of the program (the parsed
/// packet and connection keys, kept off the 512-byte BPF stack).
pub const SCRATCH: &str = "WG_SCRATCH";

/// `PerCpuArray<RateLimit>`, one entry: the per-CPU event token bucket.
pub const EVENT_RATE: &str = "WG_EVENT_RATE";

/// `Array<FlowSlot>` (mmapable), [`flow_entries`] entries: flow records of
/// new connections, per CPU and half (`crate::flows`), read and cleared by
/// the agent a half at a time. A full region refuses new keys (counted in
/// `FLOW_FULL`) instead of evicting records not yet drained.
pub const FLOWS: &str = "WG_FLOWS";

/// `Array<u32>`, one entry: the half of `FLOWS` the program writes (0 or 1).
pub const FLOW_HALF: &str = "WG_FLOW_HALF";

/// `PerCpuArray<u64>`, one entry: new keys refused because `FLOWS` was full.
pub const FLOW_FULL: &str = "WG_FLOW_FULL";

/// Entries of `FLOWS` for `cpus` possible CPUs: two halves of
/// `FLOW_SLOTS` each per CPU. The object declares it for one CPU; the
/// agent sizes the map for the machine when it loads the program.
#[must_use]
pub const fn flow_entries(cpus: u32) -> u32 {
    cpus * 2 * crate::flows::FLOW_SLOTS
}

/// Every map name the program defines; the agent and a test check the object against it.
pub const ALL: &[&str] = &[
    CONFIG,
    ZONES_0,
    ZONES_1,
    V4_INDEX,
    V4_RANGES,
    V4_BLOCK_RUNS,
    V4_DIR,
    PORT_DIR,
    ZONE_INFO,
    PAIRS,
    INTERVALS,
    CONNTRACK,
    CT_UNCONFIRMED,
    CT_CACHE,
    CT_FILTER,
    CT_HORIZON,
    CT_LIMITS,
    CT_CHARGED,
    CT_RELEASED,
    FRAGMENTS,
    QUARANTINE,
    FAILSAFE,
    RULE_HITS,
    COUNTERS,
    EVENTS,
    EVENT_RATE,
    SCRATCH,
    FLOWS,
    FLOW_HALF,
    FLOW_FULL,
];

/// Capacities. The compiler checks a policy against these before anything
/// touches the kernel; the program declares its maps with them.
pub const MAX_ZONES: u32 = 65_536;
pub const MAX_PREFIXES: u32 = 262_144;
pub const MAX_PAIRS: u32 = 1_048_576;
/// Every prefix adds at most two range boundaries, and every /16 block starts a range.
pub const MAX_V4_RANGES: u32 = 2 * MAX_PREFIXES + (1 << 16) + 1;
/// Block directories per table set: the blocks with the most ranges get
/// them (a /16 cut into more than `V4_DIR_MIN_RANGES` ranges), the rest
/// are searched whole. 2 KiB each.
pub const MAX_V4_DIRS: u32 = 512;
/// A block gets a directory only if its run has more ranges than this
/// (a search of up to 8 ranges is three steps; the directory costs one
/// lookup more than the block's run).
pub const V4_DIR_MIN_RANGES: usize = 8;
pub const MAX_INTERVALS: u32 = 1_048_576;
/// Port directories per table set: the spans with the most intervals, more
/// than `PORT_DIR_MIN_INTERVALS`, get them. 2 KiB each.
pub const MAX_PORT_DIRS: u32 = 512;
/// A span gets a port directory only if it has more intervals than this:
/// reading the directory costs two lookups, which a search of 16 intervals
/// or fewer (four steps) does not win back.
pub const PORT_DIR_MIN_INTERVALS: usize = 16;
pub const MAX_RULES: u32 = 131_072;
/// Established connections ([`CONNTRACK`]).
pub const MAX_CONNECTIONS: u32 = 262_144;
/// Unconfirmed connections ([`CT_UNCONFIRMED`]).
pub const MAX_UNCONFIRMED: u32 = 131_072;
/// Established entries that only life-critical zones without a
/// `conntrack-limit` of their own may use: the declared limits and the pool
/// of the other zones never reach into it.
#[must_use]
pub const fn ct_reserve(capacity: u32) -> u32 {
    capacity / 8
}
/// Charge slots: one per zone, then the pool and the reserve.
pub const CT_SLOTS: u32 = MAX_ZONES + 2;
pub const MAX_FRAGMENTS: u32 = 16_384;
pub const MAX_QUARANTINE: u32 = 65_536;
pub const MAX_FAILSAFE: u32 = 1_024;
pub const EVENTS_BYTES: u32 = 1 << 22;

/// Binary search steps within one /16 block's IPv4 ranges (at most 65,536).
pub const V4_SEARCH_STEPS: u32 = 17;

/// Binary search steps over one source zone's pair list (2^21 > `MAX_PAIRS`).
pub const PAIR_SEARCH_STEPS: u32 = 21;

/// Binary search steps over one pair's intervals: 2^17 > 65,536 + 1 intervals,
/// the most a partition of the port space can have.
pub const INTERVAL_SEARCH_STEPS: u32 = 17;
