//! Inputs for the `suggest` benchmark (`bench/discovery.md`): a flows log of
//! N records, or a pcap capture of about N bytes, both over a fixed set of
//! flow keys on `examples/hospital.ward`'s networks, so that the input grows
//! and the distinct keys do not.
//!
//! `discover_gen flows N OUT` | `discover_gen pcap BYTES OUT` [`KEYS`, default 20,000]

use std::io::{BufWriter, Write as _};
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

/// Deterministic xorshift, so that runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The `k`-th key: a source in one of the hospital's client networks, a
/// destination among its servers, a service port.
fn key(k: u64) -> ([u8; 4], [u8; 4], u8, u16) {
    const SRC: [[u8; 2]; 4] = [[20, 0], [55, 0], [65, 0], [45, 1]];
    const DST: [([u8; 4], u8, u16); 8] = [
        ([10, 30, 0, 10], 6, 104),
        ([10, 30, 0, 10], 6, 11112),
        ([10, 51, 0, 10], 6, 2575),
        ([10, 50, 0, 10], 6, 443),
        ([10, 0, 0, 53], 17, 53),
        ([10, 0, 0, 123], 17, 123),
        ([10, 41, 0, 10], 6, 443),
        ([10, 60, 0, 5], 6, 8000),
    ];
    let s = SRC[(k % 4) as usize];
    let host = (k / 8) % 2500;
    let src = [10, s[0], s[1] + (host / 250) as u8, 1 + (host % 250) as u8];
    let (dst, proto, port) = DST[(k % 8) as usize];
    (src, dst, proto, port)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        usage();
    }
    let n: u64 = args[2].parse().unwrap_or_else(|_| usage());
    let keys: u64 = args.get(4).and_then(|k| k.parse().ok()).unwrap_or(20_000);
    let out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&args[3])?);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0: u64 = 1_767_600_000;
    match args[1].as_str() {
        "flows" => {
            let mut out = out;
            for i in 0..n {
                let (s, d, proto, port) = key(rng.next() % keys);
                let t = t0 + i / 1000;
                let proto = if proto == 6 { "tcp" } else { "udp" };
                writeln!(
                    out,
                    r#"{{"time_first":"{}","time_last":"{}","interface":"eth0","src":"{}.{}.{}.{}","dst":"{}.{}.{}.{}","proto":"{proto}","dst_port":{port},"src_zone":null,"dst_zone":null,"verdict":"audit","rule":null,"connections":{},"generation":1}}"#,
                    ts(t),
                    ts(t + 5),
                    s[0],
                    s[1],
                    s[2],
                    s[3],
                    d[0],
                    d[1],
                    d[2],
                    d[3],
                    1 + rng.next() % 20
                )?;
            }
            out.into_inner().map_err(std::io::Error::other)?.flush()
        }
        "pcap" => {
            let mut w = PcapWriter::with_header(out, PcapHeader::default())
                .map_err(std::io::Error::other)?;
            let payload = vec![0x5a_u8; 900];
            let mut written = 0u64;
            let mut i = 0u64;
            while written < n {
                let (s, d, proto, port) = key(rng.next() % keys);
                let sport = 32768 + (rng.next() % 28000) as u16;
                let t = Duration::from_micros(t0 * 1_000_000 + i * 200);
                // A connection: the opening packet, then a data packet each way.
                for j in 0..3 {
                    let mut frame = Vec::with_capacity(1000);
                    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
                    let (src, dst, sp, dp) = if j == 1 {
                        (d, s, port, sport)
                    } else {
                        (s, d, sport, port)
                    };
                    let b = b.ipv4(src, dst, 64);
                    let body: &[u8] = if j == 0 { &[] } else { &payload };
                    if proto == 6 {
                        let tcp = b.tcp(sp, dp, 1, 1024);
                        let tcp = if j == 0 { tcp.syn() } else { tcp.ack(1) };
                        tcp.write(&mut frame, body).map_err(std::io::Error::other)?;
                    } else {
                        b.udp(sp, dp)
                            .write(&mut frame, body)
                            .map_err(std::io::Error::other)?;
                    }
                    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
                    w.write_packet(&PcapPacket::new(
                        t + Duration::from_micros(j * 10),
                        len,
                        &frame,
                    ))
                    .map_err(std::io::Error::other)?;
                    written += u64::from(len) + 16;
                }
                i += 1;
            }
            w.into_writer().flush()
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: discover_gen flows N OUT | discover_gen pcap BYTES OUT [KEYS]");
    std::process::exit(2)
}

fn ts(t: u64) -> String {
    jiff::Timestamp::from_second(i64::try_from(t).unwrap_or(0))
        .map_or_else(|_| t.to_string(), |x| x.to_string())
}
