//! Header parsing: Ethernet, 802.1Q/802.1ad tags, IPv4/IPv6, transport.
//!
//! Every read is preceded by a bounds check against `data_end` (the verifier
//! insists, and a malformed packet must never read past the frame). Offsets are
//! kept small and bounded so the verifier can follow them.

use core::mem;

use aya_ebpf::programs::XdpContext;

use crate::load;
use wardgate_common::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const MAX_VLAN_TAGS: usize = 2;
/// Transport headers beyond this offset are malformed. It also gives the
/// verifier a bound for offsets read back from the scratch map.
const MAX_L4_OFFSET: usize = 2048;
/// IPv6 extension headers skipped before giving up (the packet then drops as malformed).
const MAX_IPV6_EXT_HEADERS: usize = 6;

/// Why a packet could not be parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The frame ends inside a header.
    Truncated,
    /// A header field is impossible (IPv4 IHL < 5, wrong version, too many extension headers).
    Malformed,
    /// An IPv6 source or destination is IPv4-mapped (`::ffff:0:0/96`): never
    /// on a real wire, and it must not pose as the IPv4 address it embeds.
    Mapped,
}

/// An IP packet's addresses, protocol and transport fields. Aligned to 8 so
/// that copying the addresses into connection keys takes word moves.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Packet {
    /// Addresses in the 16-byte key form (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Offset of the transport header from the start of the frame.
    pub l4_offset: usize,
    /// IPv4 identification or IPv6 fragment identification.
    pub ip_id: u32,
    /// TCP/UDP/SCTP ports; for ICMP echo the identifier in `sport`.
    pub sport: u16,
    pub dport: u16,
    /// 4 or 6.
    pub family: u8,
    pub vlan_tags: u8,
    /// The transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// TCP flags, 0 for other protocols.
    pub tcp_flags: u8,
    /// ICMP/ICMPv6 type and code (0 for other protocols).
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// A non-first fragment: no transport header.
    pub later_fragment: u8,
    /// The first fragment of a fragmented datagram (more fragments, offset 0).
    pub first_fragment: u8,
}

// `reset` and `set_v4` write whole words at these offsets.
const _: () = {
    assert!(mem::offset_of!(Packet, src) == 0);
    assert!(mem::offset_of!(Packet, dst) == 16);
    assert!(mem::offset_of!(Packet, l4_offset) == 32);
    assert!(mem::size_of::<Packet>() == 56);
};

impl Packet {
    /// The source and destination addresses as native words (bytes 0..8
    /// and 8..16 of each), one load each: what keys are built from.
    #[inline(always)]
    pub fn addr_words(&self) -> ([u64; 2], [u64; 2]) {
        let at = (self as *const Self).cast::<u8>();
        // SAFETY: `src` and `dst` are bytes 0..32 of this struct (offsets
        // asserted above).
        unsafe {
            (
                [load::u64_at(at, 0), load::u64_at(at, 8)],
                [load::u64_at(at, 16), load::u64_at(at, 24)],
            )
        }
    }

    #[inline(always)]
    fn words(&mut self) -> *mut u64 {
        (self as *mut Self).cast::<u64>()
    }

    /// Zeroes everything after the addresses (which the IP parsers always
    /// write), as three word stores. Field-by-field zeroing is merged by LLVM
    /// into a `memset` call, a byte loop in BPF.
    #[inline(always)]
    fn reset(&mut self, vlan_tags: u8) {
        let words = self.words();
        // SAFETY: `Packet` is `repr(C, align(8))` and 56 bytes long: words 4
        // to 6 are its bytes 32..56, in bounds and aligned.
        // Volatile: otherwise LLVM merges the stores back into a `memset`.
        unsafe {
            words.add(4).write_volatile(0);
            words.add(5).write_volatile(0);
            words.add(6).write_volatile(0);
        }
        self.vlan_tags = vlan_tags;
    }

    /// Sets both addresses to the IPv4-mapped form of `src` and `dst` (the
    /// four address bytes as they lie in the frame, read as one native
    /// word), as word stores (see [`Packet::reset`]).
    #[inline(always)]
    fn set_v4(&mut self, src: u32, dst: u32) {
        let words = self.words();
        // Bytes 8..16 of `::ffff:a.b.c.d`: `0, 0, 0xff, 0xff, a, b, c, d`.
        // (BPF here is little-endian: the high half of the word is bytes 12..16.)
        let mapped =
            |a: u32| u64::from(u32::from_ne_bytes([0, 0, 0xff, 0xff])) | u64::from(a) << 32;
        // SAFETY: words 0 to 3 are the two 16-byte addresses (offsets asserted above).
        unsafe {
            words.write_volatile(0);
            words.add(1).write_volatile(mapped(src));
            words.add(2).write_volatile(0);
            words.add(3).write_volatile(mapped(dst));
        }
    }

    /// Sets both IPv6 addresses from the 40-byte header, as word stores.
    #[inline(always)]
    fn set_v6(&mut self, ip: &[u8; 40]) {
        let words = self.words();
        let word = |at: usize| {
            u64::from_ne_bytes([
                ip[at],
                ip[at + 1],
                ip[at + 2],
                ip[at + 3],
                ip[at + 4],
                ip[at + 5],
                ip[at + 6],
                ip[at + 7],
            ])
        };
        // SAFETY: words 0 to 3 are the two 16-byte addresses (offsets asserted above).
        unsafe {
            words.write_volatile(word(8));
            words.add(1).write_volatile(word(16));
            words.add(2).write_volatile(word(24));
            words.add(3).write_volatile(word(32));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): segmentation does not apply.
    NonIp,
    /// An IP packet, now in the `Packet` passed in.
    Ip,
}

#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, ParseError> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return Err(ParseError::Truncated);
    }
    Ok((start + offset) as *const T)
}

/// The `N` bytes at `offset`, bounds-checked, read in place: fields are then
/// loaded straight from the frame, with no copy of the whole header.
#[inline(always)]
pub fn bytes<const N: usize>(ctx: &XdpContext, offset: usize) -> Result<&[u8; N], ParseError> {
    let ptr = ptr_at::<[u8; N]>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that `offset + N` lies within the frame, which
    // stays valid and unchanged while the program runs; `[u8; N]` has
    // alignment 1.
    Ok(unsafe { &*ptr })
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Parses the frame into `packet` (every field is written). A frame too
/// short to say whether it is IP is not IP.
#[inline(always)]
pub fn parse(ctx: &XdpContext, packet: &mut Packet) -> Result<Parsed, ParseError> {
    let Ok(eth) = bytes::<ETH_HLEN>(ctx, 0) else {
        return Ok(Parsed::NonIp);
    };
    let mut ethertype = be16([eth[12], eth[13]]);
    let mut offset = ETH_HLEN;
    let mut vlan_tags = 0u8;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let Ok(tag) = bytes::<4>(ctx, offset) else {
            return Ok(Parsed::NonIp);
        };
        ethertype = be16([tag[2], tag[3]]);
        offset += 4;
        vlan_tags += 1;
    }
    packet.reset(vlan_tags);
    match ethertype {
        ETH_P_IP => parse_ipv4(ctx, offset, packet)?,
        ETH_P_IPV6 => parse_ipv6(ctx, offset, packet)?,
        _ => return Ok(Parsed::NonIp),
    }
    if packet.later_fragment == 0 {
        parse_l4(ctx, packet)?;
    }
    Ok(Parsed::Ip)
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, offset: usize, p: &mut Packet) -> Result<(), ParseError> {
    let ip: &[u8; 20] = bytes(ctx, offset)?;
    if ip[0] >> 4 != 4 {
        return Err(ParseError::Malformed);
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(ParseError::Malformed);
    }
    let total_len = be16([ip[2], ip[3]]) as usize;
    if total_len < ihl {
        return Err(ParseError::Malformed);
    }
    // Frames may carry padding after the datagram, never less than it.
    if ctx.data() + offset + total_len > ctx.data_end() {
        return Err(ParseError::Truncated);
    }
    // The options, if any, must be in the frame too.
    if ctx.data() + offset + ihl > ctx.data_end() {
        return Err(ParseError::Truncated);
    }
    let frag = be16([ip[6], ip[7]]);
    let more_fragments = frag & 0x2000 != 0;
    let frag_offset = frag & 0x1fff;
    p.family = 4;
    p.proto = ip[9];
    p.ip_id = u32::from(be16([ip[4], ip[5]]));
    p.later_fragment = (frag_offset != 0) as u8;
    p.first_fragment = (frag_offset == 0 && more_fragments) as u8;
    let at = ip.as_ptr();
    // SAFETY: bytes 12..20 of the header, within the frame (`bytes` checked 20).
    p.set_v4(unsafe { load::u32_at(at, 12) }, unsafe {
        load::u32_at(at, 16)
    });
    p.l4_offset = offset + ihl;
    Ok(())
}

/// The IPv6 address at `ip[at..at + 16]` is IPv4-mapped (`::ffff:0:0/96`).
/// (Constant offsets, so every index is checked at compile time.)
#[inline(always)]
fn v4_mapped<const AT: usize>(ip: &[u8; 40]) -> bool {
    let high = u64::from_ne_bytes([
        ip[AT],
        ip[AT + 1],
        ip[AT + 2],
        ip[AT + 3],
        ip[AT + 4],
        ip[AT + 5],
        ip[AT + 6],
        ip[AT + 7],
    ]);
    high == 0 && ip[AT + 8] == 0 && ip[AT + 9] == 0 && ip[AT + 10] == 0xff && ip[AT + 11] == 0xff
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, offset: usize, p: &mut Packet) -> Result<(), ParseError> {
    let ip: &[u8; 40] = bytes(ctx, offset)?;
    if ip[0] >> 4 != 6 {
        return Err(ParseError::Malformed);
    }
    let payload_len = be16([ip[4], ip[5]]) as usize;
    if ctx.data() + offset + 40 + payload_len > ctx.data_end() {
        return Err(ParseError::Truncated);
    }
    if v4_mapped::<8>(ip) || v4_mapped::<24>(ip) {
        return Err(ParseError::Mapped);
    }
    p.family = 6;
    p.set_v6(ip);
    let mut next = ip[6];
    let mut off = offset + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-byte units, excluding the first 8.
            0 | 43 | 60 => {
                let ext: &[u8; 2] = bytes(ctx, off)?;
                next = ext[0];
                off += (ext[1] as usize + 1) * 8;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let ext: &[u8; 8] = bytes(ctx, off)?;
                next = ext[0];
                let frag = be16([ext[2], ext[3]]);
                let frag_offset = frag >> 3;
                p.later_fragment = (frag_offset != 0) as u8;
                p.first_fragment = (frag_offset == 0 && frag & 1 != 0) as u8;
                p.ip_id = u32::from_be_bytes([ext[4], ext[5], ext[6], ext[7]]);
                off += 8;
            }
            // Authentication header: length in 4-byte units, excluding the first 8.
            51 => {
                let ext: &[u8; 2] = bytes(ctx, off)?;
                next = ext[0];
                off += (ext[1] as usize + 2) * 4;
            }
            _ => {
                p.proto = next;
                p.l4_offset = off;
                return Ok(());
            }
        }
    }
    Err(ParseError::Malformed)
}

#[inline(always)]
fn parse_l4(ctx: &XdpContext, p: &mut Packet) -> Result<(), ParseError> {
    let off = p.l4_offset;
    if off > MAX_L4_OFFSET {
        return Err(ParseError::Malformed);
    }
    match p.proto {
        IPPROTO_TCP => {
            let tcp: &[u8; 20] = bytes(ctx, off)?;
            if (tcp[12] >> 4) < 5 {
                return Err(ParseError::Malformed);
            }
            p.sport = be16([tcp[0], tcp[1]]);
            p.dport = be16([tcp[2], tcp[3]]);
            p.tcp_flags = tcp[13];
        }
        IPPROTO_UDP => {
            let ports: &[u8; 8] = bytes(ctx, off)?;
            p.sport = be16([ports[0], ports[1]]);
            p.dport = be16([ports[2], ports[3]]);
        }
        IPPROTO_SCTP => {
            // The common header: ports, verification tag, checksum.
            let ports: &[u8; 12] = bytes(ctx, off)?;
            p.sport = be16([ports[0], ports[1]]);
            p.dport = be16([ports[2], ports[3]]);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let icmp: &[u8; 8] = bytes(ctx, off)?;
            p.icmp_type = icmp[0];
            p.icmp_code = icmp[1];
            p.sport = be16([icmp[4], icmp[5]]);
        }
        _ => {}
    }
    Ok(())
}

/// The header quoted inside an ICMP error: the packet that caused it.
#[derive(Clone, Copy)]
pub struct Quoted {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
}

/// True for ICMP errors that quote a packet of an existing flow: destination
/// unreachable, time exceeded, parameter problem (and packet too big for ICMPv6).
#[inline(always)]
pub fn is_icmp_error(p: &Packet) -> bool {
    match p.proto {
        IPPROTO_ICMP => matches!(p.icmp_type, 3 | 11 | 12),
        IPPROTO_ICMPV6 => matches!(p.icmp_type, 1..=4),
        _ => false,
    }
}

/// Parses the IP header and first transport bytes quoted by an ICMP error.
#[inline(always)]
pub fn quoted(ctx: &XdpContext, p: &Packet) -> Result<Quoted, ParseError> {
    if p.l4_offset > MAX_L4_OFFSET {
        return Err(ParseError::Malformed);
    }
    let off = p.l4_offset + 8;
    let mut q = Quoted {
        src: [0; 16],
        dst: [0; 16],
        proto: 0,
        sport: 0,
        dport: 0,
    };
    let l4 = if p.family == 4 {
        let ip: &[u8; 20] = bytes(ctx, off)?;
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        if ip[0] >> 4 != 4 || ihl < 20 {
            return Err(ParseError::Malformed);
        }
        q.proto = ip[9];
        q.src = wardgate_common::v4_mapped([ip[12], ip[13], ip[14], ip[15]]);
        q.dst = wardgate_common::v4_mapped([ip[16], ip[17], ip[18], ip[19]]);
        off + ihl
    } else {
        let ip: &[u8; 40] = bytes(ctx, off)?;
        q.proto = ip[6];
        q.src.copy_from_slice(&ip[8..24]);
        q.dst.copy_from_slice(&ip[24..40]);
        off + 40
    };
    // RFC 792 quotes at least 8 bytes of the transport header: enough for ports or the echo id.
    let ports: &[u8; 8] = bytes(ctx, l4)?;
    match q.proto {
        IPPROTO_ICMP | IPPROTO_ICMPV6 => q.sport = be16([ports[4], ports[5]]),
        _ => {
            q.sport = be16([ports[0], ports[1]]);
            q.dport = be16([ports[2], ports[3]]);
        }
    }
    Ok(q)
}
