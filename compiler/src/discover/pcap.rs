//! Packet captures (pcap and pcapng, from a SPAN port or `tcpdump`) to flow
//! observations, streamed packet by packet.
//!
//! Who opened a connection: for TCP the side that sent a SYN without ACK;
//! for UDP and other protocols the first sender of a conversation, unless
//! only the other side uses a well-known port (the capture started mid-way);
//! for ICMP the sender of a request (echo, timestamp, information, address
//! mask). Replies, ICMP errors, neighbour discovery and mid-stream TCP are
//! not connections. Memory: the flow keys, plus the UDP conversations seen
//! in the last [`IDLE`] seconds of capture time (older ones are forgotten,
//! like the datapath's connection table forgets them).
//!
//! A capture that ends in the middle of a packet, or holds a corrupt block,
//! is read up to there: the report says where it stopped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

use super::catalog::is_well_known;
use super::{FlowKey, Observations, Seconds, Window};

/// A UDP conversation idle this long (seconds of capture time) is forgotten.
pub const IDLE: Seconds = 120;

/// What reading a capture found besides the connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureReport {
    pub packets: u64,
    /// Packets that are not IP, or whose headers do not parse.
    pub undecoded: u64,
    /// Why the capture stopped before its end, if it did.
    pub stopped: Option<String>,
    /// The link type, if it is one this reader does not decode.
    pub unsupported_link: Option<u32>,
}

/// Why a capture cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("not a pcap or pcapng capture")]
    NotACapture,
    #[error("cannot read the capture header: {0}")]
    Header(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads a capture, adding each connection in `window` to `obs`.
///
/// # Errors
/// The input is not a capture, or its header is corrupt; a corrupt or
/// truncated body is reported in [`CaptureReport::stopped`] instead.
pub fn read(
    input: impl Read,
    window: Window,
    obs: &mut Observations,
) -> Result<CaptureReport, CaptureError> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    let magic: [u8; 4] = match input.fill_buf()?.get(..4) {
        Some(m) => m.try_into().unwrap_or_default(),
        None => return Err(CaptureError::NotACapture),
    };
    let mut conn = Connections::new(window);
    let mut report = CaptureReport::default();
    let stop = |e: &pcap_file::PcapError| match e {
        pcap_file::PcapError::IncompleteBuffer | pcap_file::PcapError::IoError(_) => {
            "the capture ends in the middle of a packet (truncated)".to_owned()
        }
        e => format!("corrupt packet record: {}", e.to_string().to_lowercase()),
    };
    match u32::from_le_bytes(magic) {
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
            let mut r = PcapReader::new(input).map_err(|e| CaptureError::Header(e.to_string()))?;
            let header = r.header();
            let link = u32::from(header.datalink);
            while let Some(p) = r.next_raw_packet() {
                match p {
                    Ok(p) => {
                        let caplen = usize::try_from(p.incl_len).unwrap_or(usize::MAX);
                        let data = &p.data[..p.data.len().min(caplen)];
                        report.packets += 1;
                        conn.packet(link, i64::from(p.ts_sec), data, obs, &mut report);
                    }
                    Err(e) => {
                        report.stopped =
                            Some(format!("after {} packets: {}", report.packets, stop(&e)));
                        break;
                    }
                }
            }
        }
        0x0a0d_0d0a => {
            let mut r =
                PcapNgReader::new(input).map_err(|e| CaptureError::Header(e.to_string()))?;
            // Link types by interface id, per section.
            let mut links: Vec<u32> = Vec::new();
            let link_of = |links: &[u32], i: u32| {
                links
                    .get(usize::try_from(i).unwrap_or(usize::MAX))
                    .copied()
                    .unwrap_or(ETHERNET)
            };
            while let Some(b) = r.next_block() {
                match b {
                    Ok(Block::SectionHeader(_)) => links.clear(),
                    Ok(Block::InterfaceDescription(i)) => links.push(u32::from(i.linktype)),
                    Ok(Block::EnhancedPacket(p)) => {
                        report.packets += 1;
                        let secs = i64::try_from(p.timestamp.as_secs()).unwrap_or(i64::MAX);
                        conn.packet(
                            link_of(&links, p.interface_id),
                            secs,
                            &p.data,
                            obs,
                            &mut report,
                        );
                    }
                    Ok(Block::SimplePacket(p)) => {
                        report.packets += 1;
                        // A simple packet block has no timestamp: the last one seen.
                        let now = conn.now;
                        conn.packet(link_of(&links, 0), now, &p.data, obs, &mut report);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        report.stopped =
                            Some(format!("after {} packets: {}", report.packets, stop(&e)));
                        break;
                    }
                }
            }
        }
        _ => return Err(CaptureError::NotACapture),
    }
    Ok(report)
}

/// Link types decoded (the numbers of the pcap `LINKTYPE_` registry).
const ETHERNET: u32 = 1;
const RAW: u32 = 101;
const LINUX_SLL: u32 = 113;
const IPV4: u32 = 228;
const IPV6: u32 = 229;
const LINUX_SLL2: u32 = 276;

/// A conversation without handshake: both addresses, protocol and ports,
/// the lower endpoint first.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Conversation {
    a: IpAddr,
    b: IpAddr,
    proto: u8,
    pa: u16,
    pb: u16,
}

struct Connections {
    window: Window,
    /// Conversation to the capture time it was last seen.
    open: HashMap<Conversation, Seconds>,
    now: Seconds,
    swept: Seconds,
}

impl Connections {
    fn new(window: Window) -> Self {
        Self {
            window,
            open: HashMap::new(),
            now: 0,
            swept: 0,
        }
    }

    fn packet(
        &mut self,
        link: u32,
        t: Seconds,
        data: &[u8],
        obs: &mut Observations,
        report: &mut CaptureReport,
    ) {
        self.now = self.now.max(t);
        if self.now - self.swept > IDLE {
            let cutoff = self.now - IDLE;
            self.open.retain(|_, seen| *seen >= cutoff);
            self.swept = self.now;
        }
        let sliced = match link {
            ETHERNET => SlicedPacket::from_ethernet(data),
            RAW | IPV4 | IPV6 => SlicedPacket::from_ip(data),
            LINUX_SLL => SlicedPacket::from_linux_sll(data),
            LINUX_SLL2 if data.len() >= 20 => {
                let ether_type = u16::from_be_bytes([data[0], data[1]]);
                SlicedPacket::from_ether_type(ether_type.into(), &data[20..])
            }
            LINUX_SLL2 => {
                report.undecoded += 1;
                return;
            }
            other => {
                report.unsupported_link = Some(other);
                report.undecoded += 1;
                return;
            }
        };
        let Ok(p) = sliced else {
            report.undecoded += 1;
            return;
        };
        let (src, dst) = match &p.net {
            Some(NetSlice::Ipv4(v4)) => (
                IpAddr::V4(v4.header().source_addr()),
                IpAddr::V4(v4.header().destination_addr()),
            ),
            Some(NetSlice::Ipv6(v6)) => (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
            ),
            _ => {
                report.undecoded += 1;
                return;
            }
        };
        let ip_number = match &p.net {
            Some(NetSlice::Ipv4(v4)) => v4.payload().ip_number.0,
            Some(NetSlice::Ipv6(v6)) => v6.payload().ip_number.0,
            _ => return,
        };
        let key = |proto, port| FlowKey {
            src,
            dst,
            proto,
            port,
        };
        match &p.transport {
            Some(TransportSlice::Tcp(tcp)) => {
                if tcp.syn() && !tcp.ack() {
                    self.connection(key(6, tcp.destination_port()), t, obs);
                }
            }
            Some(TransportSlice::Udp(udp)) => {
                self.conversation(
                    src,
                    dst,
                    17,
                    udp.source_port(),
                    udp.destination_port(),
                    t,
                    obs,
                );
            }
            Some(TransportSlice::Icmpv4(icmp)) => {
                let ty = icmp.type_u8();
                // echo, timestamp, information and address mask requests
                if matches!(ty, 8 | 13 | 15 | 17) {
                    self.connection(key(1, u16::from(ty)), t, obs);
                }
            }
            Some(TransportSlice::Icmpv6(icmp)) => {
                let ty = icmp.type_u8();
                if ty == 128 {
                    self.connection(key(58, u16::from(ty)), t, obs);
                }
            }
            // IGMP is link-local signalling, not a connection.
            Some(TransportSlice::Igmp(_)) => {}
            // SCTP (INIT chunk) and other protocols: the first sender.
            None => {
                if ip_number == 132 {
                    if let Some(Some((dport, true))) =
                        p.ip_payload().map(|pl| sctp_init(pl.payload))
                    {
                        self.connection(key(132, dport), t, obs);
                    }
                } else if ip_number != 6 && ip_number != 17 {
                    // Fragments of TCP/UDP (no transport header) are skipped.
                    self.conversation(src, dst, ip_number, 0, 0, t, obs);
                }
            }
        }
    }

    fn connection(&mut self, key: FlowKey, t: Seconds, obs: &mut Observations) {
        if self.window.contains(t, t) {
            obs.add(key, t, t, 1, None);
        } else {
            obs.outside_window += 1;
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one packet's fields")]
    fn conversation(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        sport: u16,
        dport: u16,
        t: Seconds,
        obs: &mut Observations,
    ) {
        let c = if (src, sport) <= (dst, dport) {
            Conversation {
                a: src,
                b: dst,
                proto,
                pa: sport,
                pb: dport,
            }
        } else {
            Conversation {
                a: dst,
                b: src,
                proto,
                pa: dport,
                pb: sport,
            }
        };
        if let Some(seen) = self.open.get_mut(&c) {
            *seen = t.max(*seen);
            return;
        }
        self.open.insert(c, t);
        // The first sender, unless only the sender uses a well-known port:
        // then this is a reply and the capture started after the request.
        let swap = proto != 0
            && sport != dport
            && is_well_known(proto, sport)
            && !is_well_known(proto, dport);
        let key = if swap {
            FlowKey {
                src: dst,
                dst: src,
                proto,
                port: sport,
            }
        } else {
            FlowKey {
                src,
                dst,
                proto,
                port: dport,
            }
        };
        self.connection(key, t, obs);
    }
}

/// An SCTP packet's destination port, and whether its first chunk is INIT.
fn sctp_init(payload: &[u8]) -> Option<(u16, bool)> {
    let b = payload.get(..13)?;
    Some((u16::from_be_bytes([b[2], b[3]]), b[12] == 1))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use etherparse::PacketBuilder;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;

    use super::*;

    const A: [u8; 4] = [10, 20, 0, 11];
    const B: [u8; 4] = [10, 30, 0, 5];

    fn eth() -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
    }

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, syn: bool, ack: bool) -> Vec<u8> {
        let mut b = eth().ipv4(src, dst, 64).tcp(sport, dport, 1, 1024);
        if syn {
            b = b.syn();
        }
        if ack {
            b = b.ack(1);
        }
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        out
    }

    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        eth()
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, b"x")
            .unwrap();
        out
    }

    fn ping(src: [u8; 4], dst: [u8; 4], reply: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let b = eth().ipv4(src, dst, 64);
        if reply {
            b.icmpv4_echo_reply(1, 1).write(&mut out, &[]).unwrap();
        } else {
            b.icmpv4_echo_request(1, 1).write(&mut out, &[]).unwrap();
        }
        out
    }

    /// A handshake, a mid-stream packet, UDP both ways, a reply seen before
    /// its request is not, ping and its reply.
    fn frames() -> Vec<Vec<u8>> {
        vec![
            tcp(A, B, 40000, 104, true, false),
            tcp(B, A, 104, 40000, true, true),
            tcp(A, B, 40000, 104, false, true),
            tcp(A, B, 40001, 2575, false, true),
            udp(A, B, 41000, 123),
            udp(B, A, 123, 41000),
            udp(B, A, 53, 42000),
            ping(A, B, false),
            ping(B, A, true),
        ]
    }

    fn pcap_bytes(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut w = PcapWriter::with_header(Vec::new(), PcapHeader::default()).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let t = Duration::from_secs(1_767_600_000 + u64::try_from(i).unwrap());
            w.write_packet(&PcapPacket::new(t, u32::try_from(f.len()).unwrap(), f))
                .unwrap();
        }
        w.into_writer()
    }

    fn keys(obs: &Observations) -> Vec<(IpAddr, IpAddr, u8, u16, u64)> {
        let mut v: Vec<_> = obs
            .flows
            .iter()
            .map(|(k, s)| (k.src, k.dst, k.proto, k.port, s.connections))
            .collect();
        v.sort_unstable();
        v
    }

    fn expected() -> Vec<(IpAddr, IpAddr, u8, u16, u64)> {
        let (a, b) = (IpAddr::from(A), IpAddr::from(B));
        let mut v = vec![
            (a, b, 6, 104, 1),
            (a, b, 17, 123, 1),
            // Only the server's side of this exchange was captured.
            (a, b, 17, 53, 1),
            (a, b, 1, 8, 1),
        ];
        v.sort_unstable();
        v
    }

    #[test]
    fn initiators_are_found_and_replies_and_mid_stream_are_not_connections() {
        let mut obs = Observations::default();
        let r = read(&pcap_bytes(&frames())[..], Window::default(), &mut obs).unwrap();
        assert_eq!(r.packets, 9);
        assert_eq!(r.stopped, None);
        assert_eq!(keys(&obs), expected());
    }

    #[test]
    fn pcapng_gives_the_same_connections() {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(
            pcap_file::DataLink::ETHERNET,
            65535,
        ))
        .unwrap();
        for (i, f) in frames().iter().enumerate() {
            let epb = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::from_secs(1_767_600_000 + u64::try_from(i).unwrap()),
                original_len: u32::try_from(f.len()).unwrap(),
                data: f.as_slice().into(),
                options: vec![],
            };
            w.write_pcapng_block(epb).unwrap();
        }
        let bytes = w.into_inner();
        let mut obs = Observations::default();
        read(&bytes[..], Window::default(), &mut obs).unwrap();
        assert_eq!(keys(&obs), expected());
    }

    #[test]
    fn a_truncated_capture_is_read_up_to_the_cut_and_says_so() {
        let bytes = pcap_bytes(&frames());
        let mut obs = Observations::default();
        let r = read(&bytes[..bytes.len() - 10], Window::default(), &mut obs).unwrap();
        assert_eq!(r.packets, 8);
        assert_eq!(
            r.stopped.as_deref(),
            Some("after 8 packets: the capture ends in the middle of a packet (truncated)")
        );
        assert_eq!(obs.flows.len(), 4);
    }

    #[test]
    fn corrupt_and_foreign_input_is_an_error_never_a_panic() {
        let mut obs = Observations::default();
        let e = read(
            &b"{\"not\": \"a capture\"}"[..],
            Window::default(),
            &mut obs,
        );
        assert_eq!(e.unwrap_err().to_string(), "not a pcap or pcapng capture");
        let e = read(&b"ab"[..], Window::default(), &mut obs);
        assert_eq!(e.unwrap_err().to_string(), "not a pcap or pcapng capture");
        // A packet record claiming 4 GB.
        let mut bytes = pcap_bytes(&frames()[..1]);
        bytes[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let r = read(&bytes[..], Window::default(), &mut obs).unwrap();
        assert!(r.stopped.is_some(), "{r:?}");
        // Every prefix and every single-byte corruption of a capture.
        let good = pcap_bytes(&frames());
        for cut in 0..good.len() {
            let _ = read(
                &good[..cut],
                Window::default(),
                &mut Observations::default(),
            );
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = read(&bad[..], Window::default(), &mut Observations::default());
        }
    }
}
