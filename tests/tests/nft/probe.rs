//! How the nftables tests send a probe through the gateway and recognise it
//! at the receiver, and what the reference evaluator says of it. Shared by
//! the differential test and the scale test (`tests/tests/nft_scale`).

use std::net::IpAddr;

use etherparse::PacketBuilder;
use wardgate_compiler::{Decision, PolicyImage, Verdict, decide};
use wardgate_tests::{
    packet::{self, tcp_flags},
    policygen::Probe,
};

/// `(src, dst, proto, sport or id, dport or id)`.
pub type Conn = (IpAddr, IpAddr, u8, u16, u16);

pub fn reverse(c: Conn) -> Conn {
    (c.1, c.0, c.2, c.4, c.3)
}

/// Marks a probe's payload; the probe's index follows.
pub const TAG: &[u8; 4] = b"WGNF";

/// How the nftables test sends and recognises a probe.
pub trait NftProbe {
    fn conn(&self, sport: u16) -> Conn;
    fn frame(&self, index: u32, sport: u16, gw_mac: [u8; 6]) -> Vec<u8>;
    fn is(&self, frame: &[u8]) -> bool;
}

impl NftProbe for Probe {
    /// The connection as conntrack keys it, with the source port (or echo
    /// id) the probe is sent with.
    fn conn(&self, sport: u16) -> Conn {
        match self.proto {
            6 | 17 | 132 => (self.src, self.dst, self.proto, sport, self.port),
            1 | 58 => (self.src, self.dst, self.proto, sport, sport),
            _ => (self.src, self.dst, self.proto, 0, 0),
        }
    }

    /// The frame, from the sender to the gateway, carrying `TAG` and `index`.
    fn frame(&self, index: u32, sport: u16, gw_mac: [u8; 6]) -> Vec<u8> {
        let mut payload = TAG.to_vec();
        payload.extend_from_slice(&index.to_be_bytes());
        let eth = PacketBuilder::ethernet2(packet::SRC_MAC, gw_mac);
        let mut out = Vec::new();
        let ip = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => unreachable!("probes never mix families"),
        };
        match self.proto {
            6 => {
                let mut b = ip.tcp(sport, self.port, 1000, 64240);
                if self.flags & tcp_flags::SYN != 0 {
                    b = b.syn();
                }
                if self.flags & tcp_flags::ACK != 0 {
                    b = b.ack(1);
                }
                if self.flags & tcp_flags::RST != 0 {
                    b = b.rst();
                }
                b.write(&mut out, &payload)
            }
            17 => ip.udp(sport, self.port).write(&mut out, &payload),
            1 | 58 => {
                let rest = sport.to_be_bytes();
                let rest = [rest[0], rest[1], 0, 1];
                #[expect(clippy::cast_possible_truncation, reason = "ICMP types are < 256")]
                let ty = self.port as u8;
                if self.src.is_ipv4() {
                    ip.icmpv4_raw(ty, 0, rest).write(&mut out, &payload)
                } else {
                    ip.icmpv6_raw(ty, 0, rest).write(&mut out, &payload)
                }
            }
            p => {
                let (IpAddr::V4(s), IpAddr::V4(d)) = (self.src, self.dst) else {
                    unreachable!("probes of other protocols are IPv4")
                };
                let mut l4 = Vec::new();
                if p == 132 {
                    // SCTP common header: ports, verification tag, checksum.
                    l4.extend_from_slice(&sport.to_be_bytes());
                    l4.extend_from_slice(&self.port.to_be_bytes());
                    l4.extend_from_slice(&[0; 8]);
                } else {
                    l4.extend_from_slice(&[0; 8]);
                }
                l4.extend_from_slice(&payload);
                let mut f = packet::ipv4_proto(s.octets(), d.octets(), p, &l4);
                f[..6].copy_from_slice(&gw_mac);
                return f;
            }
        }
        .expect("writing a probe");
        out
    }

    /// Is `frame` this probe, forwarded (same addresses, same protocol)?
    /// Only the IP header is parsed: some probes are deliberately short for
    /// their ICMP type.
    fn is(&self, frame: &[u8]) -> bool {
        let ip = frame.get(packet::IP_OFFSET..).unwrap_or_default();
        if let Ok(h) = etherparse::Ipv4HeaderSlice::from_slice(ip) {
            IpAddr::from(h.source()) == self.src
                && IpAddr::from(h.destination()) == self.dst
                && h.protocol().0 == self.proto
        } else if let Ok(h) = etherparse::Ipv6HeaderSlice::from_slice(ip) {
            IpAddr::from(h.source()) == self.src && IpAddr::from(h.destination()) == self.dst
        } else {
            false
        }
    }
}

/// The probe index a forwarded frame carries, if any.
pub fn tag(frame: &[u8]) -> Option<u32> {
    let at = frame.windows(4).position(|w| w == TAG)?;
    let n = frame.get(at + 4..at + 8)?;
    Some(u32::from_be_bytes(n.try_into().ok()?))
}

pub fn expected(image: &PolicyImage, p: &Probe) -> Option<Decision> {
    let pkt = wardgate_compiler::Packet {
        src: p.src,
        dst: p.dst,
        proto: p.proto,
        port: p.port,
    };
    // ICMPv6 link control passes whatever the policy says (not a decision),
    // unless an address is IPv4-mapped: then it drops as malformed.
    let link_control = u8::try_from(p.port).is_ok_and(wardgate_common::is_link_control_icmpv6);
    if p.proto == 58 && link_control && !pkt.is_malformed() {
        return None;
    }
    Some(decide(image, &pkt))
}

/// The table counter a decision is counted in.
pub fn counter_of(d: &Decision) -> String {
    match (d.verdict, d.rule) {
        (_, Some(r)) => format!("rule_{r}"),
        (Verdict::Allow, None) => "intra_zone".to_owned(),
        (Verdict::Deny, None) => "default_deny".to_owned(),
        (Verdict::Audit, None) => "default_audit".to_owned(),
    }
}
