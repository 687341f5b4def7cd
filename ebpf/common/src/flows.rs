//! Flow records: every new connection the program decides, counted per
//! (interface, source, destination, protocol, destination port or ICMP
//! type, verdict) in [`crate::maps::FLOWS`]. The client's port is never part
//! of the key. The agent drains the map into its flows log (`docs/agent.md`,
//! "Flows log").

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
    /// Connections (added atomically: several CPUs may update one key).
    pub connections: u64,
    pub src_zone: u32,
    pub dst_zone: u32,
    /// `RULE_NONE` for intra-zone and default-deny decisions.
    pub rule: u32,
    pub generation: u32,
}

/// Index of the one slot of [`crate::maps::FLOW_FULL`].
pub const FLOW_FULL_SLOT: u32 = 0;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<FlowKey>() == 40);
    assert!(offset_of!(FlowKey, ifindex) == 32);
    assert!(offset_of!(FlowKey, verdict) == 39);
    assert!(size_of::<FlowValue>() == 40);
    assert!(offset_of!(FlowValue, connections) == 16);
    assert!(offset_of!(FlowValue, generation) == 36);
};

#[cfg(feature = "user")]
#[allow(unsafe_code, reason = "aya::Pod is an unsafe marker trait")]
mod pod {
    // SAFETY: `#[repr(C)]`, `Copy`, no padding (asserted above): every bit
    // pattern is a valid value.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowValue {}
}
