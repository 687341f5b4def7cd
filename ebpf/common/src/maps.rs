//! Map names and capacities.
//!
//! The program keeps two *table sets* (0 and 1) of policy maps. The agent
//! writes a whole new policy into the inactive set, then flips
//! [`crate::Config::active_set`] and bumps [`crate::Config::generation`] in one
//! array-map write. A packet reads the config once and uses only the maps of
//! that set, so every packet sees either the whole old or the whole new policy.
//! The next reload clears and rewrites the set that is now inactive.

/// `Array<Config>`, one entry: generation, active table set, flags.
pub const CONFIG: &str = "WG_CONFIG";

/// `LpmTrie<[u8; 16], u32>`: IPv4-mapped and IPv6 prefix to zone id, set 0 and 1.
pub const ZONES_0: &str = "WG_ZONES_0";
pub const ZONES_1: &str = "WG_ZONES_1";

/// `Array<ZoneInfo>` indexed by zone id, set 0 and 1.
pub const ZONE_INFO_0: &str = "WG_ZONE_INFO_0";
pub const ZONE_INFO_1: &str = "WG_ZONE_INFO_1";

/// `HashMap<PairKey, Span>`: (src zone, dst zone, protocol) to a span of intervals, set 0 and 1.
pub const PAIRS_0: &str = "WG_PAIRS_0";
pub const PAIRS_1: &str = "WG_PAIRS_1";

/// `Array<Interval>`: sorted, disjoint port/type intervals, set 0 and 1.
pub const INTERVALS_0: &str = "WG_INTERVALS_0";
pub const INTERVALS_1: &str = "WG_INTERVALS_1";

/// `LruHashMap<CtKey, CtEntry>`: tracked connections, keyed by the initiator's tuple.
pub const CONNTRACK: &str = "WG_CONNTRACK";

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

/// Every map name the program defines; the agent and a test check the object against it.
pub const ALL: &[&str] = &[
    CONFIG,
    ZONES_0,
    ZONES_1,
    ZONE_INFO_0,
    ZONE_INFO_1,
    PAIRS_0,
    PAIRS_1,
    INTERVALS_0,
    INTERVALS_1,
    CONNTRACK,
    FRAGMENTS,
    QUARANTINE,
    FAILSAFE,
    RULE_HITS,
    COUNTERS,
    EVENTS,
    EVENT_RATE,
    SCRATCH,
];

/// Capacities. The compiler checks a policy against these before anything
/// touches the kernel; the program declares its maps with them.
pub const MAX_ZONES: u32 = 65_536;
pub const MAX_PREFIXES: u32 = 262_144;
pub const MAX_PAIRS: u32 = 1_048_576;
pub const MAX_INTERVALS: u32 = 1_048_576;
pub const MAX_RULES: u32 = 131_072;
pub const MAX_CONNECTIONS: u32 = 262_144;
pub const MAX_FRAGMENTS: u32 = 16_384;
pub const MAX_QUARANTINE: u32 = 65_536;
pub const MAX_FAILSAFE: u32 = 1_024;
pub const EVENTS_BYTES: u32 = 1 << 22;

/// Binary search steps over one pair's intervals: 2^17 > 65,536 + 1 intervals,
/// the most a partition of the port space can have.
pub const INTERVAL_SEARCH_STEPS: u32 = 17;
