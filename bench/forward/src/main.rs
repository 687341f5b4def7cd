//! The forwarding benchmark (`cargo xtask bench forward`; method in
//! `bench/README.md`).
//!
//! ```text
//! sender [eth0] ==== [gw0] gateway [gw1] ==== [eth0] receiver
//!   `generate` (live frames)    filter under test       `sink` (count, drop)
//! ```
//!
//! A generator (`BPF_PROG_TEST_RUN` in live-frames mode) transmits small UDP
//! frames over many flows from the sender's veth; the gateway forwards them
//! with the filter under test; the receiver's XDP sink counts what arrives.
//! Configurations: no filter, a bare FIB-lookup-and-redirect XDP program (no
//! policy: the ceiling of an XDP fast path on this machine), wardgate XDP
//! without and with the fast path, and the nftables ruleset compiled from the
//! same policy, at 10, 1,000 and 10,000 rules; three repeats interleaved;
//! medians. The wardgate fast path at 10,000 rules is also reported as a
//! ratio of the bare redirect, measured right after it in each repeat (the
//! median of the repeats' ratios).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    os::fd::AsRawFd as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
use wardgate_agent::{loader::Program, programmer};
use wardgate_common::CONFIG_FAST_PATH;
use wardgate_compiler::{Options, PolicyImage, nft};
use wardgate_tests::netns::{Netns, Topology};

static GEN_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/wardgate-bench-gen-xdp"));

const RULES: [usize; 3] = [10, 1_000, 10_000];
/// The configuration compared with the ceiling (the bare FIB redirect).
const CEILING_PAIR: (Enforcer, usize) = (Enforcer::WardgateFastPath, 10_000);
const REPEATS: usize = 3;
/// Flows: UDP source ports counted up from `SPORT`.
const FLOWS: u32 = 1024;
const SPORT: u16 = 10_000;
const DPORT: u16 = 9;
const SRC: [u8; 4] = [10, 200, 0, 2];
const DST: [u8; 4] = [10, 201, 0, 2];
/// Minimum Ethernet frame without FCS: 64 bytes on the wire.
const FRAME_LEN: usize = 60;
/// Frames per `BPF_PROG_TEST_RUN` call, and per batch inside it.
const FRAMES_PER_CALL: u32 = 1 << 19;
const BATCH: u32 = 64;
/// How long one measurement sends.
const MEASURE: Duration = Duration::from_millis(1500);

/// The filter on the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Enforcer {
    None,
    /// `fib_forward` from `bench/gen-xdp`: the forwarding ceiling.
    FibRedirect,
    Wardgate,
    WardgateFastPath,
    Nftables,
}

impl Enforcer {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::FibRedirect => "bare-fib-redirect",
            Self::Wardgate => "wardgate-xdp",
            Self::WardgateFastPath => "wardgate-xdp-fast-path",
            Self::Nftables => "nftables",
        }
    }
}

/// A policy of `rules` rules, one of which allows the benchmark flow.
fn policy(rules: usize) -> String {
    let mut out = String::from(
        "zone sender { networks 10.200.0.0/24 }\nzone receiver { networks 10.201.0.0/24 }\n",
    );
    // Filler zones and rules between them, every one on its own port.
    let zones = rules.max(2);
    for i in 0..zones {
        let _ = writeln!(
            out,
            "zone f{i} {{ networks 172.{}.{}.0/24 }}",
            16 + (i >> 8),
            i & 255
        );
    }
    for i in 0..rules - 1 {
        let _ = writeln!(
            out,
            "allow f{i} -> f{} : udp/{}",
            (i + 1) % zones,
            1000 + i % 60_000
        );
    }
    let _ = writeln!(out, "allow sender -> receiver : udp/{DPORT}");
    out
}

fn image(source: &str) -> anyhow::Result<PolicyImage> {
    let loaded = wardgate_lang::parse_str("bench.ward", source);
    let (image, diags) = wardgate_compiler::compile(&loaded, &Options::default());
    image.with_context(|| format!("the generated policy does not compile: {diags:#?}"))
}

/// Moves the calling thread into a namespace; back with the returned guard's drop.
struct InNetns {
    home: std::fs::File,
}

impl InNetns {
    fn enter(ns: &Netns) -> anyhow::Result<Self> {
        let home = std::fs::File::open("/proc/thread-self/ns/net")?;
        setns(&std::fs::File::open(format!("/run/netns/{}", ns.name()))?)?;
        Ok(Self { home })
    }
}

impl Drop for InNetns {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.home) {
            eprintln!("warning: could not return to the original namespace: {e}");
        }
    }
}

fn setns(file: &std::fs::File) -> anyhow::Result<()> {
    // SAFETY: setns on a valid, open netns file descriptor; it changes only
    // the calling thread's network namespace.
    #[allow(unsafe_code, reason = "setns(2) has no safe wrapper in std")]
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn mac(ns: &Netns, iface: &str) -> anyhow::Result<[u8; 6]> {
    wardgate_tests::rawsock::mac(ns, iface)
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits above")]
    let folded = sum as u16;
    !folded
}

/// The UDP frame the generator sends (Ethernet, IPv4, UDP, zero payload).
fn frame(dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_LEN);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_len = u16::try_from(FRAME_LEN - 14).expect("small");
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&ip_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&SRC);
    ip.extend_from_slice(&DST);
    let csum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&SPORT.to_be_bytes());
    f.extend_from_slice(&DPORT.to_be_bytes());
    f.extend_from_slice(&(ip_len - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(FRAME_LEN, 0);
    f
}

struct Bench {
    /// Hosts `snd` and `rcv` around the gateway, linked as `gw0` and `gw1`.
    topology: Topology,
    gen_obj: Ebpf,
    wardgate: Program,
    frame: Vec<u8>,
    sender_ifindex: u32,
    ruleset_path: PathBuf,
}

impl Bench {
    fn new() -> anyhow::Result<Self> {
        let topology = Topology::builder()
            .host("snd", &["10.200.0.2/24"])
            .host("rcv", &["10.201.0.2/24"])
            .build()?;
        let (sender, gateway, receiver) = (
            &topology.host("snd").ns,
            &topology.gateway,
            &topology.host("rcv").ns,
        );
        let rcv_mac = mac(receiver, "eth0")?;
        let rcv_mac = rcv_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        gateway.ip(&[
            "neigh",
            "add",
            "10.201.0.2",
            "lladdr",
            &rcv_mac,
            "dev",
            "gw1",
            "nud",
            "permanent",
        ])?;
        let frame = frame(mac(gateway, "gw0")?, mac(sender, "eth0")?);
        let sender_ifindex = sender.ifindex("eth0")?;

        let mut gen_obj = Ebpf::load(GEN_OBJECT).context("loading the generator object")?;
        for name in ["generate", "sink", "pass", "fib_forward"] {
            let prog: &mut Xdp = gen_obj
                .program_mut(name)
                .with_context(|| format!("no program `{name}`"))?
                .try_into()?;
            prog.load().with_context(|| format!("loading `{name}`"))?;
        }
        let mut template = [0u8; 64];
        template[..frame.len()].copy_from_slice(&frame);
        Array::<_, [u8; 64]>::try_from(gen_obj.map_mut("GEN_TEMPLATE").context("template map")?)?
            .set(0, template, 0)?;
        Array::<_, u32>::try_from(gen_obj.map_mut("GEN_FLOWS").context("flows map")?)?
            .set(0, FLOWS, 0)?;
        {
            let _in = InNetns::enter(receiver)?;
            xdp(&mut gen_obj, "sink")
                .attach("eth0", XdpMode::Driver)
                .context("attaching the sink")?;
        }
        let wardgate = Program::load().context("loading the wardgate XDP program")?;
        let ruleset_path = std::env::temp_dir().join(format!("{}.nft", gateway.name()));
        Ok(Self {
            topology,
            gen_obj,
            wardgate,
            frame,
            sender_ifindex,
            ruleset_path,
        })
    }

    fn sink_count(&self) -> anyhow::Result<u64> {
        let map = self.gen_obj.map("SINK_COUNT").context("sink map")?;
        let counts = PerCpuArray::<_, u64>::try_from(map)?.get(&0, 0)?;
        Ok(counts.iter().sum())
    }

    /// Received packets per second with the gateway as it is now.
    fn measure(&mut self) -> anyhow::Result<f64> {
        let mut ctx = [0u8; 24];
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
        ctx[4..8].copy_from_slice(&u32::try_from(self.frame.len())?.to_ne_bytes());
        ctx[12..16].copy_from_slice(&self.sender_ifindex.to_ne_bytes());
        let _in = InNetns::enter(&self.topology.host("snd").ns)?;
        let before = self.sink_count()?;
        let start = Instant::now();
        while start.elapsed() < MEASURE {
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(&self.frame);
            opts.ctx_in = Some(&ctx);
            opts.repeat = FRAMES_PER_CALL;
            opts.attrs = TestRunAttrs::new().xdp_live_frames(BATCH);
            xdp(&mut self.gen_obj, "generate")
                .test_run(opts)
                .context("BPF_PROG_TEST_RUN (live frames) of the generator")?;
        }
        let elapsed = start.elapsed();
        // Let the last batches drain through the gateway.
        std::thread::sleep(Duration::from_millis(50));
        let received = self.sink_count()? - before;
        #[expect(clippy::cast_precision_loss, reason = "packet counts far below 2^52")]
        Ok(received as f64 / elapsed.as_secs_f64())
    }

    /// Sets the gateway up for `enforcer`, measures, and takes it down again.
    fn run(&mut self, enforcer: Enforcer, image: Option<&PolicyImage>) -> anyhow::Result<f64> {
        match enforcer {
            Enforcer::None | Enforcer::Nftables => {
                if enforcer == Enforcer::Nftables {
                    let image = image.context("nftables needs a policy")?;
                    std::fs::write(&self.ruleset_path, nft::render(image))?;
                    let path = self.ruleset_path.to_str().context("temp path")?.to_owned();
                    self.topology.gateway.exec_ok("nft", &["-f", &path])?;
                }
                let link = {
                    let _in = InNetns::enter(&self.topology.gateway)?;
                    xdp(&mut self.gen_obj, "pass").attach("gw0", XdpMode::Driver)?
                };
                let pps = self.measure();
                {
                    let _in = InNetns::enter(&self.topology.gateway)?;
                    xdp(&mut self.gen_obj, "pass").detach(link)?;
                }
                if enforcer == Enforcer::Nftables {
                    self.topology
                        .gateway
                        .exec_ok("nft", &["delete", "table", "inet", nft::TABLE])?;
                }
                pps
            }
            Enforcer::FibRedirect => {
                let links: Vec<XdpLinkId> = {
                    let _in = InNetns::enter(&self.topology.gateway)?;
                    ["gw0", "gw1"]
                        .iter()
                        .map(|i| xdp(&mut self.gen_obj, "fib_forward").attach(i, XdpMode::Driver))
                        .collect::<Result<_, _>>()?
                };
                let pps = self.measure();
                let _in = InNetns::enter(&self.topology.gateway)?;
                for link in links {
                    xdp(&mut self.gen_obj, "fib_forward").detach(link)?;
                }
                pps
            }
            Enforcer::Wardgate | Enforcer::WardgateFastPath => {
                let image = image.context("wardgate needs a policy")?;
                let flags = if enforcer == Enforcer::WardgateFastPath {
                    CONFIG_FAST_PATH
                } else {
                    0
                };
                programmer::load(self.wardgate.ebpf_mut(), image, flags)?;
                let links: Vec<XdpLinkId> = {
                    let _in = InNetns::enter(&self.topology.gateway)?;
                    ["gw0", "gw1"]
                        .iter()
                        .map(|i| self.wardgate.attach(i).map(|a| a.link))
                        .collect::<Result<_, _>>()?
                };
                let pps = self.measure();
                let _in = InNetns::enter(&self.topology.gateway)?;
                for link in links {
                    self.wardgate.xdp().detach(link)?;
                }
                pps
            }
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ruleset_path);
        // The namespaces (and every attachment in them) go with the topology.
    }
}

fn xdp<'a>(obj: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    obj.program_mut(name)
        .and_then(|p| p.try_into().ok())
        .expect("loaded in Bench::new")
}

fn median(runs: &[f64]) -> f64 {
    let mut v = runs.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/bench/forward.json"), PathBuf::from);
    if let Some(reason) = wardgate_tests::privilege::missing() {
        bail!("the forwarding benchmark needs root: {reason}");
    }
    println!("forward: compiling policies of {RULES:?} rules");
    let images: Vec<(usize, PolicyImage)> = RULES
        .iter()
        .map(|&n| image(&policy(n)).map(|i| (n, i)))
        .collect::<Result<_, _>>()?;
    let mut bench = Bench::new()?;
    // `WARDGATE_BENCH_CEILING=1`: the ceiling pair only (more repeats with
    // `WARDGATE_BENCH_REPEATS`), for quick work on the fast path.
    let ceiling_only = std::env::var_os("WARDGATE_BENCH_CEILING").is_some();
    let repeats = std::env::var("WARDGATE_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REPEATS);
    let mut configs = vec![(Enforcer::None, 0usize)];
    if ceiling_only {
        configs = vec![(Enforcer::FibRedirect, 0), CEILING_PAIR];
    }
    for &n in RULES.iter().filter(|_| !ceiling_only) {
        for e in [
            Enforcer::Wardgate,
            Enforcer::WardgateFastPath,
            Enforcer::Nftables,
        ] {
            if (e, n) == CEILING_PAIR {
                // Measured right after the ceiling, so that the two meet the
                // same load: their ratio is taken per repeat.
                configs.push((Enforcer::FibRedirect, 0));
            }
            configs.push((e, n));
        }
    }
    let mut runs: BTreeMap<(Enforcer, usize), Vec<f64>> = BTreeMap::new();
    for rep in 1..=repeats {
        for &(e, n) in &configs {
            let image = images.iter().find(|(k, _)| *k == n).map(|(_, i)| i);
            let pps = bench
                .run(e, image)
                .with_context(|| format!("{} at {n} rules", e.name()))?;
            println!(
                "forward: repeat {rep}/{repeats}: {:<24} {n:>6} rules {:>12.0} pps",
                e.name(),
                pps
            );
            runs.entry((e, n)).or_default().push(pps);
        }
    }
    let baseline = runs
        .get(&(Enforcer::None, 0))
        .map_or(f64::NAN, |r| median(r));
    println!(
        "\n{:<24} {:>7} {:>14} {:>10}",
        "enforcer", "rules", "pps (median)", "x no filter"
    );
    let mut json = Vec::new();
    for ((e, n), r) in &runs {
        let m = median(r);
        println!("{:<24} {n:>7} {m:>14.0} {:>10.2}", e.name(), m / baseline);
        json.push(serde_json::json!({
            "enforcer": e.name(),
            "rules": n,
            "pps_median": m.round(),
            "pps_runs": r.iter().map(|p| p.round()).collect::<Vec<_>>(),
        }));
    }
    let ratios: Vec<f64> = runs[&CEILING_PAIR]
        .iter()
        .zip(&runs[&(Enforcer::FibRedirect, 0)])
        .map(|(f, c)| f / c)
        .collect();
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!(
        "\nwardgate fast path at 10,000 rules / bare FIB redirect: {:.2} (median of the repeats' ratios: {})",
        median(&ratios),
        listed.join(" / ")
    );
    json.push(serde_json::json!({
        "fast_path_10000_rules_over_bare_fib_redirect": median(&ratios),
        "fast_path_10000_rules_over_bare_fib_redirect_runs": ratios,
    }));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")?;
    println!("\nforward: wrote {}", out.display());
    Ok(())
}
