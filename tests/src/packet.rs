//! Crafted frames for `BPF_PROG_TEST_RUN`.
//!
//! Well-formed frames come from etherparse (checksums and lengths right);
//! tests make malformed ones by truncating or editing these bytes.

use std::net::IpAddr;

use etherparse::{PacketBuilder, PacketBuilderStep, TransportHeader};

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

/// The transport header etherparse reads back from `frame`, for test assertions.
pub fn transport(frame: &[u8]) -> Option<TransportHeader> {
    etherparse::PacketHeaders::from_ethernet_slice(frame)
        .ok()?
        .transport
}
