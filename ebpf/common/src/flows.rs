//! Flow records: every new connection the program decides, counted per
//! (interface, source, destination, protocol, destination port or ICMP
//! type, verdict) in [`crate::maps::FLOWS`]. The client's port is never part
//! of the key. The agent drains the map into its flows log (`docs/agent.md`,
//! "Flows log").
//!
//! The table is an array the program indexes itself, with no hash map
//! helper call (a call per new connection cost more than the 10% budget
//! of the new-connection path): each CPU has two regions of
//! [`FLOW_SLOTS`] slots, and a key lives in the first free or matching slot
//! of the [`FLOW_PROBES`] that follow its hash ([`flow_hash`]). The program
//! writes only its own CPU's region of the half [`crate::maps::FLOW_HALF`]
//! names, so no update races another; the agent flips the half, waits for
//! the program runs that read the old one, then reads and clears that half.

/// `FlowKey::verdict`: passed by a rule or inside a zone.
pub const FLOW_ALLOW: u8 = 0;
/// `FlowKey::verdict`: dropped by the policy.
pub const FLOW_DROP: u8 = 1;
/// `FlowKey::verdict`: would be dropped, passed by monitor mode.
pub const FLOW_AUDIT: u8 = 2;

/// Key of [`crate::maps::FLOWS`]. Aligned to 8 so the program writes it as
/// five word stores.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IPv4-mapped for IPv4, network order.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub ifindex: u32,
    /// Destination port (TCP, UDP, SCTP), ICMP type (ICMP, ICMPv6), else 0.
    pub port: u16,
    pub proto: u8,
    /// `FLOW_*`.
    pub verdict: u8,
}

/// Value of [`crate::maps::FLOWS`]: the decision of the latest connection
/// and how many there were since the agent last drained the key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    /// `bpf_ktime_get_coarse_ns` of the first and last connection.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Connections; 0 marks a free slot.
    pub connections: u64,
    pub src_zone: u32,
    pub dst_zone: u32,
    /// `RULE_NONE` for intra-zone and default-deny decisions.
    pub rule: u32,
    pub generation: u32,
}

/// Index of the one slot of [`crate::maps::FLOW_FULL`].
pub const FLOW_FULL_SLOT: u32 = 0;

/// Slots per CPU per half (a power of two).
pub const FLOW_SLOTS: u32 = 8_192;
/// Slots a key may occupy after its hash before the region counts as full for it.
pub const FLOW_PROBES: u32 = 8;

/// One slot of [`crate::maps::FLOWS`]: free while `value.connections` is 0.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowSlot {
    pub key: FlowKey,
    pub value: FlowValue,
}

/// Index of the first slot of `cpu`'s region in `half`.
#[inline(always)]
#[must_use]
pub const fn flow_region(cpu: u32, half: u32) -> u32 {
    (cpu * 2 + (half & 1)) * FLOW_SLOTS
}

/// The hash that places a key in its region: each of the key's five words
/// (as the program loads them: native order) times its own odd constant,
/// xored, then one final mix. The five products are independent, so the
/// CPU computes them side by side (a chained mix was a third of a record's
/// time).
#[inline(always)]
#[must_use]
pub const fn flow_hash(words: [u64; 5]) -> u32 {
    const K: [u64; 5] = [
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
        0xd6e8_feb8_6659_fd93,
        0xff51_afd7_ed55_8ccd,
    ];
    let mut h = words[0].wrapping_mul(K[0])
        ^ words[1].wrapping_mul(K[1])
        ^ words[2].wrapping_mul(K[2])
        ^ words[3].wrapping_mul(K[3])
        ^ words[4].wrapping_mul(K[4]);
    h ^= h >> 29;
    h = h.wrapping_mul(K[0]);
    (h ^ (h >> 32)) as u32
}

impl FlowKey {
    /// The key's five words, as [`flow_hash`] takes them.
    #[must_use]
    pub fn words(&self) -> [u64; 5] {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            u64::from_ne_bytes(w)
        };
        let mut tail = [0u8; 8];
        tail[..4].copy_from_slice(&self.ifindex.to_ne_bytes());
        tail[4..6].copy_from_slice(&self.port.to_ne_bytes());
        tail[6] = self.proto;
        tail[7] = self.verdict;
        [
            word(&self.src[..8]),
            word(&self.src[8..]),
            word(&self.dst[..8]),
            word(&self.dst[8..]),
            u64::from_ne_bytes(tail),
        ]
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<FlowKey>() == 40);
    assert!(offset_of!(FlowKey, ifindex) == 32);
    assert!(offset_of!(FlowKey, verdict) == 39);
    assert!(size_of::<FlowValue>() == 40);
    assert!(offset_of!(FlowValue, connections) == 16);
    assert!(offset_of!(FlowValue, generation) == 36);
    assert!(size_of::<FlowSlot>() == 80);
    assert!(offset_of!(FlowSlot, value) == 40);
    assert!(FLOW_SLOTS.is_power_of_two());
};

#[cfg(feature = "user")]
#[allow(unsafe_code, reason = "aya::Pod is an unsafe marker trait")]
mod pod {
    // SAFETY: `#[repr(C)]`, `Copy`, no padding (asserted above): every bit
    // pattern is a valid value.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowValue {}
    // SAFETY: as above (two such structs, 8-aligned, no padding).
    unsafe impl aya::Pod for super::FlowSlot {}
}
