//! Crafted frames for `BPF_PROG_TEST_RUN`.
//!
//! Well-formed frames come from etherparse (checksums and lengths right);
//! tests make malformed ones by truncating or editing these bytes.

use std::net::IpAddr;

use etherparse::{PacketBuilder, PacketBuilderStep};

pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// TCP flag bits as on the wire.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

/// The transport part of a crafted packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP for IPv4 sources, ICMPv6 for IPv6; `id` goes in bytes 4-5 (echo identifier).
    Icmp {
        ty: u8,
        code: u8,
        id: u16,
    },
}

/// Builds an Ethernet frame carrying `l4` from `src` to `dst` (same family).
pub fn ip(src: IpAddr, dst: IpAddr, l4: L4) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(SRC_MAC, DST_MAC);
    let step = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families: {src} -> {dst}"),
    };
    finish(step, l4, src.is_ipv4())
}

/// A TCP segment between two addresses written as text (tests' shorthand).
///
/// # Panics
/// An address does not parse, or the two are of different families.
pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let addr = |s: &str| -> IpAddr { s.parse().unwrap_or_else(|_| panic!("not an address: {s}")) };
    ip(
        addr(src),
        addr(dst),
        L4::Tcp {
            sport,
            dport,
            flags,
        },
    )
}

fn finish(step: PacketBuilderStep<etherparse::IpHeaders>, l4: L4, v4: bool) -> Vec<u8> {
    let payload = b"wardgate";
    let mut out = Vec::new();
    match l4 {
        L4::Tcp {
            sport,
            dport,
            flags,
        } => {
            let mut b = step.tcp(sport, dport, 1000, 64240);
            if flags & tcp_flags::SYN != 0 {
                b = b.syn();
            }
            if flags & tcp_flags::ACK != 0 {
                b = b.ack(1);
            }
            if flags & tcp_flags::FIN != 0 {
                b = b.fin();
            }
            if flags & tcp_flags::RST != 0 {
                b = b.rst();
            }
            b.write(&mut out, payload)
        }
        L4::Udp { sport, dport } => step.udp(sport, dport).write(&mut out, payload),
        L4::Icmp { ty, code, id } => {
            let rest = [(id >> 8) as u8, id as u8, 0, 1];
            if v4 {
                step.icmpv4_raw(ty, code, rest).write(&mut out, payload)
            } else {
                step.icmpv6_raw(ty, code, rest).write(&mut out, payload)
            }
        }
    }
    .expect("writing a crafted packet");
    out
}

/// An ARP request (non-IP: must pass).
pub fn arp() -> Vec<u8> {
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&SRC_MAC);
    frame.extend_from_slice(&[0x08, 0x06]);
    // htype 1, ptype IPv4, hlen 6, plen 4, op request.
    frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&SRC_MAC);
    frame.extend_from_slice(&[10, 0, 0, 1]);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&[10, 0, 0, 2]);
    frame
}

/// Inserts an 802.1Q (or, for `outer`, 802.1ad) tag after the MAC addresses.
pub fn with_vlan(frame: &[u8], vid: u16, outer: bool) -> Vec<u8> {
    let tpid: u16 = if outer { 0x88a8 } else { 0x8100 };
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&tpid.to_be_bytes());
    out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

/// Offset of the IP header in a frame without VLAN tags.
pub const IP_OFFSET: usize = 14;

/// Turns an IPv4 frame into a fragment: sets the identification, the
/// more-fragments flag and the fragment offset (in 8-byte units). The IP
/// checksum is recomputed. A fragment with a non-zero offset carries no
/// transport header: its bytes after the IP header are just data.
pub fn ipv4_fragment(frame: &[u8], id: u16, more: bool, offset: u16) -> Vec<u8> {
    let mut out = frame.to_vec();
    let ip = &mut out[IP_OFFSET..];
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    let flags_offset = (if more { 0x2000 } else { 0 }) | (offset & 0x1fff);
    ip[6..8].copy_from_slice(&flags_offset.to_be_bytes());
    fix_ipv4_checksum(&mut out);
    out
}

/// Recomputes the IPv4 header checksum of a frame without VLAN tags.
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[IP_OFFSET] & 0x0f) * 4;
    let header = &mut frame[IP_OFFSET..IP_OFFSET + ihl];
    header[10] = 0;
    header[11] = 0;
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    header[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// An ICMP (or ICMPv6) error from `from` to `to` quoting the IP packet of
/// `quoted_frame` (its IP header and the first transport bytes), as a router
/// or host sends about a packet it could not deliver.
pub fn icmp_error(from: IpAddr, to: IpAddr, ty: u8, code: u8, quoted_frame: &[u8]) -> Vec<u8> {
    let quoted = &quoted_frame[IP_OFFSET..quoted_frame.len().min(IP_OFFSET + 48 + 8)];
    let eth = PacketBuilder::ethernet2(SRC_MAC, DST_MAC);
    let mut out = Vec::new();
    match (from, to) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth
            .ipv4(s.octets(), d.octets(), 64)
            .icmpv4_raw(ty, code, [0; 4])
            .write(&mut out, quoted),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth
            .ipv6(s.octets(), d.octets(), 64)
            .icmpv6_raw(ty, code, [0; 4])
            .write(&mut out, quoted),
        _ => panic!("mixed address families: {from} -> {to}"),
    }
    .expect("writing an ICMP error");
    out
}

/// An IPv4 frame of any protocol number with `payload` after the IP header.
pub fn ipv4_proto(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&DST_MAC);
    out.extend_from_slice(&SRC_MAC);
    out.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + payload.len()) as u16;
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
    out.extend_from_slice(payload);
    fix_ipv4_checksum(&mut out);
    out
}
