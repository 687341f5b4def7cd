//! Parser fuzzing: random and mutated frames through the real program
//! (`BPF_PROG_TEST_RUN`), each compared with a reference parse in Rust built
//! on etherparse's header slices. The class of the verdict must agree:
//! *non-IP* (passes untouched), *malformed* (dropped as truncated, malformed
//! or IPv4-mapped) or *decided* (parsed; link control, connection tracking
//! or the policy decides). The program's class is read from its counters.
//!
//! The reference states the program's parsing contract:
//! - Ethernet; a frame too short for a VLAN tag it announces is not IP; up to
//!   two 802.1Q/802.1ad tags; any other EtherType is not IP;
//! - IPv4: version 4, IHL >= 5, total length >= IHL, the whole datagram
//!   (options included) in the frame (trailing padding allowed);
//! - IPv6: version 6, the payload length in the frame, no IPv4-mapped source
//!   or destination; extension headers (hop-by-hop, routing, destination
//!   options, fragment, authentication) are skipped while the bytes the
//!   program reads of each are in the frame; a packet is malformed once
//!   [`MAX_IPV6_EXT_HEADERS`] have been skipped and another follows;
//! - a non-first fragment has no transport header to read; otherwise the
//!   transport header must start within 2,048 bytes and its fixed part must
//!   be in the frame: TCP 20 bytes with a data offset >= 5, UDP 8, SCTP 12,
//!   ICMP/ICMPv6 8; other protocols need nothing.
//!
//! Bounds are the frame's, not the datagram's: the program reads a transport
//! header that lies in the frame even where the IP length fields end the
//! datagram before it, and does not require TCP options or the whole of an
//! extension header to be present. The kernel stack drops such packets
//! later; deciding on them lets nothing through that a well-formed packet
//! with the same addresses, protocol and ports would not, so the reference
//! follows the program there.
//!
//! `WARDGATE_FUZZ_SEED` and `WARDGATE_FUZZ_FRAMES` override the seed and the
//! number of frames (`cargo xtask bench fuzz` runs 1,000,000).

use std::net::Ipv6Addr;

use etherparse::{
    EtherType, Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, SingleVlanHeaderSlice, UdpHeaderSlice,
};
use wardgate_common::counter;
use wardgate_tests::{enforcer::Enforcer, privilege, testrun};

const DEFAULT_SEED: u64 = 0x000b_a5ed_f022_0013;
const DEFAULT_FRAMES: usize = 50_000;
/// Extension headers the program skips before it gives up.
const MAX_IPV6_EXT_HEADERS: usize = 5;
/// The transport header must start at or before this offset.
const MAX_L4_OFFSET: usize = 2048;

const POLICY: &str = r#"
zone a { networks 10.1.0.0/16, 2001:db8:a::/48 }
zone b { networks 10.2.0.0/16, 2001:db8:b::/48 }
allow a -> b : tcp/443, udp/53, icmp/echo-request, icmpv6/echo-request
"#;

/// The class of a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    NonIp,
    Malformed,
    Decided,
}

const CLASSES: [Class; 3] = [Class::NonIp, Class::Malformed, Class::Decided];

/// The reference parse: the class `frame` belongs to.
fn reference(frame: &[u8]) -> Class {
    let Ok(eth) = Ethernet2HeaderSlice::from_slice(frame) else {
        return Class::NonIp;
    };
    let mut ether_type = eth.ether_type();
    let mut offset = eth.slice().len();
    for _ in 0..2 {
        if ether_type != EtherType::VLAN_TAGGED_FRAME && ether_type != EtherType::PROVIDER_BRIDGING
        {
            break;
        }
        let Ok(tag) = SingleVlanHeaderSlice::from_slice(&frame[offset..]) else {
            return Class::NonIp;
        };
        ether_type = tag.ether_type();
        offset += tag.slice().len();
    }
    let l3 = match ether_type {
        EtherType::IPV4 => ipv4(frame, offset),
        EtherType::IPV6 => ipv6(frame, offset),
        _ => return Class::NonIp,
    };
    match l3 {
        None => Class::Malformed,
        // A non-first fragment: no transport header.
        Some(None) => Class::Decided,
        Some(Some((proto, l4))) => match transport(frame, proto, l4) {
            true => Class::Decided,
            false => Class::Malformed,
        },
    }
}

/// `None`: malformed; `Some(None)`: a later fragment; else the transport protocol and offset.
type L3 = Option<Option<(IpNumber, usize)>>;

fn ipv4(frame: &[u8], offset: usize) -> L3 {
    let ip = Ipv4HeaderSlice::from_slice(&frame[offset..]).ok()?;
    let header_len = usize::from(ip.ihl()) * 4;
    let total_len = usize::from(ip.total_len());
    if total_len < header_len || offset + total_len > frame.len() {
        return None;
    }
    if ip.fragments_offset().value() != 0 {
        return Some(None);
    }
    Some(Some((ip.protocol(), offset + header_len)))
}

fn ipv6(frame: &[u8], offset: usize) -> L3 {
    let ip = Ipv6HeaderSlice::from_slice(&frame[offset..]).ok()?;
    if offset + 40 + usize::from(ip.payload_length()) > frame.len() {
        return None;
    }
    let mapped = |a: Ipv6Addr| a.to_ipv4_mapped().is_some();
    if mapped(ip.source_addr()) || mapped(ip.destination_addr()) {
        return None;
    }
    let mut next = ip.next_header();
    let mut at = offset + 40;
    let mut later_fragment = false;
    let mut skipped = 0;
    loop {
        let rest = frame.get(at..).unwrap_or(&[]);
        let len = match next {
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::IPV6_DESTINATION_OPTIONS => {
                let b = rest.get(..2)?;
                next = IpNumber(b[0]);
                (usize::from(b[1]) + 1) * 8
            }
            IpNumber::IPV6_FRAGMENTATION_HEADER => {
                let f = Ipv6FragmentHeaderSlice::from_slice(rest).ok()?;
                next = f.next_header();
                later_fragment = f.fragment_offset().value() != 0;
                8
            }
            IpNumber::AUTHENTICATION_HEADER => {
                let b = rest.get(..2)?;
                next = IpNumber(b[0]);
                (usize::from(b[1]) + 2) * 4
            }
            _ => break,
        };
        if skipped == MAX_IPV6_EXT_HEADERS {
            return None;
        }
        skipped += 1;
        at += len;
    }
    Some((!later_fragment).then_some((next, at)))
}

/// True if the transport header of protocol `proto` at `l4` is acceptable.
fn transport(frame: &[u8], proto: IpNumber, l4: usize) -> bool {
    if l4 > MAX_L4_OFFSET {
        return false;
    }
    let rest = frame.get(l4..).unwrap_or(&[]);
    match proto {
        IpNumber::TCP => rest.len() >= 20 && rest[12] >> 4 >= 5,
        IpNumber::UDP => UdpHeaderSlice::from_slice(rest).is_ok(),
        IpNumber::SCTP => rest.len() >= 12,
        IpNumber::ICMP | IpNumber::IPV6_ICMP => rest.len() >= 8,
        _ => true,
    }
}

/// The class of the program's verdict, from the counters before and after the run.
fn observed(before: &[u64], after: &[u64], action: u32) -> Class {
    let moved = |i: u32| after[i as usize] != before[i as usize];
    let malformed = [
        counter::DROP_TRUNCATED,
        counter::DROP_MALFORMED,
        counter::DROP_MAPPED,
    ]
    .into_iter()
    .any(moved);
    let class = if moved(counter::NON_IP) {
        Class::NonIp
    } else if malformed {
        Class::Malformed
    } else {
        Class::Decided
    };
    let consistent = match class {
        Class::NonIp => action == testrun::XDP_PASS,
        Class::Malformed => action == testrun::XDP_DROP,
        Class::Decided => matches!(
            action,
            testrun::XDP_PASS | testrun::XDP_DROP | testrun::XDP_REDIRECT
        ),
    };
    assert!(
        consistent,
        "{class:?} with action {}",
        testrun::action_name(action)
    );
    class
}

/// splitmix64: small, fast, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible for small n).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

fn be16(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

/// A transport header (and a little payload) of protocol `proto`.
fn l4(rng: &mut Rng, proto: u8, v6: bool) -> Vec<u8> {
    let port = |rng: &mut Rng| {
        let any = rng.next() as u16;
        rng.pick(&[443u16, 53, 80, 8080, 40000, 0, any])
    };
    let mut out = Vec::new();
    match proto {
        6 => {
            out.extend(be16(port(rng)));
            out.extend(be16(port(rng)));
            out.extend(rng.bytes(8));
            let options = rng.pick(&[0usize, 0, 1, 3]);
            out.push(((5 + options as u8) << 4) & 0xf0);
            let any = rng.byte();
            out.push(rng.pick(&[0x02, 0x10, 0x12, 0x04, 0x14, 0x11, any]));
            out.extend(rng.bytes(6 + options * 4));
        }
        17 => {
            out.extend(be16(port(rng)));
            out.extend(be16(port(rng)));
            out.extend(be16(8 + 8));
            out.extend([0, 0]);
        }
        132 => {
            out.extend(be16(port(rng)));
            out.extend(be16(port(rng)));
            out.extend(rng.bytes(8));
        }
        1 | 58 => {
            let types: &[u8] = if v6 {
                &[128, 129, 1, 2, 3, 4, 133, 135, 136, 143]
            } else {
                &[8, 0, 3, 11, 12, 5]
            };
            out.push(if rng.chance(90) {
                rng.pick(types)
            } else {
                rng.byte()
            });
            out.push(rng.below(4) as u8);
            out.extend([0, 0]);
            out.extend(be16(rng.next() as u16));
            out.extend(be16(1));
            if rng.chance(30) {
                // An ICMP error's quote: an inner IP header and 8 transport bytes.
                let inner = if v6 {
                    ipv6_packet(rng, 17, 0)
                } else {
                    ipv4_packet(rng, 17)
                };
                out.extend(&inner[..inner.len().min(if v6 { 48 } else { 28 })]);
            }
        }
        _ => {}
    }
    let n = rng.below(12);
    out.extend(rng.bytes(n));
    out
}

fn v4_addr(rng: &mut Rng) -> [u8; 4] {
    let net = rng.pick(&[[10u8, 1], [10, 2], [192, 0], [203, 0]]);
    [net[0], net[1], rng.byte(), rng.byte()]
}

fn v6_addr(rng: &mut Rng) -> [u8; 16] {
    let mut a = [0u8; 16];
    if rng.chance(5) {
        // IPv4-mapped.
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&v4_addr(rng));
        return a;
    }
    a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, rng.pick(&[0x0a, 0x0b, 0x0c])]);
    a[15] = rng.byte();
    a
}

/// An IPv4 packet (no Ethernet header), options and fragmentation at random.
fn ipv4_packet(rng: &mut Rng, proto: u8) -> Vec<u8> {
    let options = rng.pick(&[0usize, 0, 0, 1, 2, 10]) * 4;
    let payload = l4(rng, proto, false);
    let total = 20 + options + payload.len();
    let mut out = vec![0x40 | (5 + options / 4) as u8, 0];
    out.extend(be16(total as u16));
    out.extend(be16(rng.next() as u16));
    let more = if rng.chance(50) { 0x2000 } else { 0 };
    let frag = match rng.below(10) {
        // A first fragment.
        0 => 0x2000,
        // A later fragment (the last one, or one with more to come).
        1 => (1 + rng.below(0x1fff)) as u16 | more,
        // Don't fragment.
        _ => 0x4000,
    };
    out.extend(be16(frag));
    out.extend([64, proto, 0, 0]);
    out.extend(v4_addr(rng));
    out.extend(v4_addr(rng));
    out.extend((0..options).map(|_| rng.pick(&[1u8, 1, 0, 7, 4])));
    out.extend(payload);
    out
}

/// An IPv6 packet (no Ethernet header) with `ext` extension headers.
fn ipv6_packet(rng: &mut Rng, proto: u8, ext: usize) -> Vec<u8> {
    let mut headers = Vec::new();
    let kinds: Vec<u8> = (0..ext).map(|_| rng.pick(&[0u8, 43, 60, 44, 51])).collect();
    for (i, &kind) in kinds.iter().enumerate() {
        let next = kinds.get(i + 1).copied().unwrap_or(proto);
        match kind {
            44 => {
                let offset: u16 = if rng.chance(20) {
                    rng.below(100) as u16 + 1
                } else {
                    0
                };
                headers.extend([next, 0]);
                headers.extend(be16(offset << 3 | rng.below(2) as u16));
                headers.extend(rng.bytes(4));
            }
            51 => {
                let len = rng.below(3);
                headers.extend([next, len as u8]);
                headers.extend(rng.bytes((len + 2) * 4 - 2));
            }
            _ => {
                let len = rng.below(3);
                headers.extend([next, len as u8]);
                headers.extend(rng.bytes((len + 1) * 8 - 2));
            }
        }
    }
    let first = kinds.first().copied().unwrap_or(proto);
    let payload = l4(rng, proto, true);
    let mut out = vec![0x60, 0, 0, 0];
    out.extend(be16((headers.len() + payload.len()) as u16));
    out.extend([first, 64]);
    out.extend(v6_addr(rng));
    out.extend(v6_addr(rng));
    out.extend(headers);
    out.extend(payload);
    out
}

/// A well-formed-looking frame: Ethernet, VLAN tags, an IP packet or something else.
fn seed_frame(rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for _ in 0..rng.pick(&[0usize, 0, 0, 1, 2, 3]) {
        out.extend(be16(rng.pick(&[0x8100u16, 0x88a8])));
        out.extend(be16(rng.below(4096) as u16));
    }
    let proto = rng.pick(&[6u8, 6, 17, 17, 1, 58, 132, 47, 50, 59]);
    match rng.below(10) {
        0..=4 => {
            out.extend(be16(0x0800));
            out.extend(ipv4_packet(rng, if proto == 58 { 1 } else { proto }));
        }
        5..=8 => {
            out.extend(be16(0x86dd));
            let ext = rng.pick(&[0usize, 0, 1, 2, 3, 5, 6, 7]);
            out.extend(ipv6_packet(rng, if proto == 1 { 58 } else { proto }, ext));
        }
        _ => {
            let any = rng.next() as u16;
            out.extend(be16(rng.pick(&[0x0806u16, 0x88cc, 0x9100, any])));
            let n = 28 + rng.below(20);
            out.extend(rng.bytes(n));
        }
    }
    if rng.chance(20) {
        // Ethernet padding.
        out.resize(out.len().max(60), 0);
    }
    out
}

/// Bytes worth writing over a header field.
const INTERESTING: &[u8] = &[
    0, 1, 2, 4, 5, 6, 8, 0x0f, 0x10, 0x3f, 0x40, 0x45, 0x46, 0x4f, 0x50, 0x60, 0x7f, 0x80, 0x81,
    0x86, 0x88, 0xa8, 0xdd, 0xfe, 0xff,
];

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        if frame.is_empty() {
            return;
        }
        // Most edits hit the first 80 bytes, where the headers are.
        let window = if rng.chance(80) { 80 } else { usize::MAX };
        let at = rng.below(frame.len().min(window));
        match rng.below(6) {
            0 => frame[at] ^= 1 << rng.below(8),
            1 => frame[at] = rng.pick(INTERESTING),
            2 => frame[at] = rng.byte(),
            3 => frame.truncate(at.max(14)),
            4 => {
                let n = 1 + rng.below(40);
                frame.extend(rng.bytes(n));
            }
            _ => {
                // A 16-bit length or type field set to an edge value.
                if at + 1 < frame.len() {
                    let v =
                        rng.pick(&[0u16, 1, 19, 20, 21, 40, 0x7fff, 0xffff, frame.len() as u16]);
                    frame[at..at + 2].copy_from_slice(&be16(v));
                }
            }
        }
    }
}

fn frame(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        // Random bytes behind an EtherType that is usually IP or VLAN.
        0 => {
            let n = 14 + rng.below(100);
            let mut f = rng.bytes(n);
            if rng.chance(80) {
                let t = rng.pick(&[0x0800u16, 0x86dd, 0x8100, 0x88a8]);
                f[12..14].copy_from_slice(&be16(t));
            }
            f
        }
        // Well-formed seeds, unchanged.
        1 | 2 => seed_frame(rng),
        _ => {
            let mut f = seed_frame(rng);
            mutate(rng, &mut f);
            f
        }
    }
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    let v = std::env::var(name).ok()?;
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|n| n.to_string()),
        None => Some(v.clone()),
    };
    let value = parsed.and_then(|s| s.parse().ok());
    assert!(value.is_some(), "{name}={v} is not a number");
    value
}

#[test]
fn parser_fuzz_agrees_with_the_reference_parse() {
    if !privilege::kernel_tests_can_run("parser_fuzz_agrees_with_the_reference_parse") {
        return;
    }
    let seed: u64 = env("WARDGATE_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let frames: usize = env("WARDGATE_FUZZ_FRAMES").unwrap_or(DEFAULT_FRAMES);
    println!("parser fuzz: seed {seed:#x}, {frames} frames");
    let mut rng = Rng(seed);
    let mut e = Enforcer::new(POLICY);
    let mut counts = [0usize; 3];
    let mut disagreements = 0usize;
    let mut examples = Vec::new();
    let mut before = e.counters();
    let started = std::time::Instant::now();
    for i in 0..frames {
        let f = frame(&mut rng);
        let want = reference(&f);
        let action = e.run(&f);
        let after = e.counters();
        let got = observed(&before, &after, action);
        before = after;
        counts[CLASSES.iter().position(|&c| c == want).unwrap()] += 1;
        if got != want {
            disagreements += 1;
            if examples.len() < 10 {
                let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
                examples.push(format!(
                    "frame {i}: reference {want:?}, program {got:?}: {hex}"
                ));
            }
        }
    }
    println!(
        "parser fuzz: {frames} frames in {:.1?}: non-IP {}, malformed {}, decided {}; {disagreements} disagreements",
        started.elapsed(),
        counts[0],
        counts[1],
        counts[2]
    );
    assert!(
        disagreements == 0,
        "{disagreements} disagreements (seed {seed:#x}):\n{}",
        examples.join("\n")
    );
    // The generator must reach every class in earnest, or agreement means little.
    for (class, &n) in CLASSES.iter().zip(&counts) {
        assert!(n * 20 >= frames, "only {n} {class:?} frames of {frames}");
    }
}
