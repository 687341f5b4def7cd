//! Header parsing: Ethernet, 802.1Q/802.1ad tags, IPv4/IPv6, transport.
//!
//! Every read is preceded by a bounds check against `data_end` (the verifier
//! insists, and a malformed packet must never read past the frame). Offsets are
//! kept small and bounded so the verifier can follow them.

use core::mem;

use aya_ebpf::programs::XdpContext;
use wardgate_common::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers skipped before giving up (the packet then drops as malformed).
const MAX_IPV6_EXT_HEADERS: usize = 6;

/// Why a packet could not be parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The frame ends inside a header.
    Truncated,
    /// A header field is impossible (IPv4 IHL < 5, wrong version, too many extension headers).
    Malformed,
}

/// An IP packet's addresses, protocol and transport fields.
#[derive(Clone, Copy)]
pub struct Packet {
    /// 4 or 6.
    pub family: u8,
    pub vlan_tags: u8,
    /// The transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// TCP flags, 0 for other protocols.
    pub tcp_flags: u8,
    /// Addresses in the 16-byte key form (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// TCP/UDP/SCTP ports; for ICMP echo the identifier in `sport`.
    pub sport: u16,
    pub dport: u16,
    /// ICMP/ICMPv6 type and code (0 for other protocols).
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// A non-first fragment: no transport header.
    pub later_fragment: u8,
    /// IPv4: the first fragment of a fragmented datagram (MF set, offset 0).
    pub first_fragment: u8,
    /// IPv4 identification as on the wire (fragments only).
    pub ip_id: u16,
    /// Offset of the transport header from the start of the frame.
    pub l4_offset: usize,
}

pub enum Parsed {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): segmentation does not apply.
    NonIp,
    Ip(Packet),
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

/// Reads `N` bytes at `offset`, bounds-checked.
#[inline(always)]
pub fn bytes<const N: usize>(ctx: &XdpContext, offset: usize) -> Result<[u8; N], ParseError> {
    let ptr = ptr_at::<[u8; N]>(ctx, offset)?;
    // SAFETY: `ptr_at` checked that `offset + N` lies within the frame.
    Ok(unsafe { ptr.read_unaligned() })
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

pub fn parse(ctx: &XdpContext) -> Result<Parsed, ParseError> {
    let eth: [u8; ETH_HLEN] = bytes(ctx, 0)?;
    let mut ethertype = be16([eth[12], eth[13]]);
    let mut offset = ETH_HLEN;
    let mut vlan_tags = 0u8;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let tag: [u8; 4] = bytes(ctx, offset)?;
        ethertype = be16([tag[2], tag[3]]);
        offset += 4;
        vlan_tags += 1;
    }
    let mut packet = Packet {
        family: 0,
        vlan_tags,
        proto: 0,
        tcp_flags: 0,
        src: [0; 16],
        dst: [0; 16],
        sport: 0,
        dport: 0,
        icmp_type: 0,
        icmp_code: 0,
        later_fragment: 0,
        first_fragment: 0,
        ip_id: 0,
        l4_offset: 0,
    };
    match ethertype {
        ETH_P_IP => parse_ipv4(ctx, offset, &mut packet)?,
        ETH_P_IPV6 => parse_ipv6(ctx, offset, &mut packet)?,
        _ => return Ok(Parsed::NonIp),
    }
    if packet.later_fragment == 0 {
        parse_l4(ctx, &mut packet)?;
    }
    Ok(Parsed::Ip(packet))
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, offset: usize, p: &mut Packet) -> Result<(), ParseError> {
    let ip: [u8; 20] = bytes(ctx, offset)?;
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
    // The options, if any, must be in the frame too.
    if ctx.data() + offset + ihl > ctx.data_end() {
        return Err(ParseError::Truncated);
    }
    let frag = be16([ip[6], ip[7]]);
    let more_fragments = frag & 0x2000 != 0;
    let frag_offset = frag & 0x1fff;
    p.family = 4;
    p.proto = ip[9];
    p.ip_id = be16([ip[4], ip[5]]);
    p.later_fragment = (frag_offset != 0) as u8;
    p.first_fragment = (frag_offset == 0 && more_fragments) as u8;
    p.src = wardgate_common::v4_mapped([ip[12], ip[13], ip[14], ip[15]]);
    p.dst = wardgate_common::v4_mapped([ip[16], ip[17], ip[18], ip[19]]);
    p.l4_offset = offset + ihl;
    Ok(())
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, offset: usize, p: &mut Packet) -> Result<(), ParseError> {
    let ip: [u8; 40] = bytes(ctx, offset)?;
    if ip[0] >> 4 != 6 {
        return Err(ParseError::Malformed);
    }
    p.family = 6;
    p.src.copy_from_slice(&ip[8..24]);
    p.dst.copy_from_slice(&ip[24..40]);
    let mut next = ip[6];
    let mut off = offset + 40;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-byte units, excluding the first 8.
            0 | 43 | 60 => {
                let ext: [u8; 2] = bytes(ctx, off)?;
                next = ext[0];
                off += (ext[1] as usize + 1) * 8;
            }
            // Fragment header: fixed 8 bytes.
            44 => {
                let ext: [u8; 8] = bytes(ctx, off)?;
                next = ext[0];
                let frag_offset = be16([ext[2], ext[3]]) >> 3;
                if frag_offset != 0 {
                    p.later_fragment = 1;
                }
                off += 8;
            }
            // Authentication header: length in 4-byte units, excluding the first 8.
            51 => {
                let ext: [u8; 2] = bytes(ctx, off)?;
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
    match p.proto {
        IPPROTO_TCP => {
            let tcp: [u8; 20] = bytes(ctx, off)?;
            if (tcp[12] >> 4) < 5 {
                return Err(ParseError::Malformed);
            }
            p.sport = be16([tcp[0], tcp[1]]);
            p.dport = be16([tcp[2], tcp[3]]);
            p.tcp_flags = tcp[13];
        }
        IPPROTO_UDP | IPPROTO_SCTP => {
            let ports: [u8; 8] = bytes(ctx, off)?;
            p.sport = be16([ports[0], ports[1]]);
            p.dport = be16([ports[2], ports[3]]);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let icmp: [u8; 8] = bytes(ctx, off)?;
            p.icmp_type = icmp[0];
            p.icmp_code = icmp[1];
            p.sport = be16([icmp[4], icmp[5]]);
        }
        _ => {}
    }
    Ok(())
}
