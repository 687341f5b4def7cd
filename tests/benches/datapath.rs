//! `cargo xtask bench datapath`: ns per packet of the XDP program under
//! `BPF_PROG_TEST_RUN`, beside an `XDP_PASS` program measured in the same
//! run, for five cases (established connection from the cache and through
//! the table, new allowed, new denied, non-IP) as the policy grows in prefixes and rules.
//!
//! Method: each case is measured in `ROUNDS` rounds; a round times the
//! baseline and the case back to back (`REPEAT` runs each, the order swapped
//! every other round), so a burst of machine noise hits both halves of the
//! round's ratio. Only *quiet* rounds count: those whose baseline ran within
//! 15% of the 5th percentile of the run's baselines, and whose case ran
//! within 15% of the 5th percentile of its own rounds (a case measures more rounds,
//! pausing after slow ones, for up to 60 s to find them; if too few are
//! quiet, all count). The
//! bench reports the interquartile mean of the per-round ratios (the mean
//! of their middle half) and their spread (min and max), the median ns per
//! packet, and how many rounds were kept.
//!
//! Cases: *established* is an ACK of a connection whose SYN passed before
//! (after the first run it passes from the connection cache); *est. table*
//! is a FIN of another established connection (through the connection
//! table: what the first packet of a flow on a CPU costs);
//! *new allowed* is a TCP RST+ACK that a rule allows (decided in full on every
//! repeat, since a reset never starts tracking); *new denied* is a SYN no rule
//! allows; *non-IP* is an ARP request.
//!
//! Prints a table and writes `target/bench/datapath.json`.

use std::{fmt::Write as _, net::IpAddr, time::Duration};

use aya::programs::Xdp;
use serde_json::json;
use wardgate_agent::{loader, programmer};
use wardgate_common::{CONFIG_FLOWS, counter};
use wardgate_tests::{
    enforcer::{Enforcer, image},
    packet::{self, L4, tcp_flags},
    privilege, testrun,
};

/// Runs per measurement (the kernel reports their mean).
const REPEAT: u32 = 200_000;
/// Rounds per case (`WARDGATE_BENCH_ROUNDS` overrides).
const ROUNDS: usize = 21;
const PREFIXES: &[usize] = &[10, 1_000, 100_000];
const RULES: &[usize] = &[10, 1_000, 10_000];

/// The `k`-th generated prefix: distinct /28s in 10.0.0.0/8.
fn prefix(k: usize) -> (u32, String) {
    let base = (10u32 << 24) | ((k as u32) << 4);
    let a = std::net::Ipv4Addr::from(base);
    (base, format!("{a}/28"))
}

/// A policy with `prefixes` prefixes spread over zones and `rules` allow rules
/// spread over zone pairs; zone z0 -> z1 on tcp/443 is allowed, tcp/444 is not.
fn policy(prefixes: usize, rules: usize) -> String {
    let zones = (prefixes / 10).clamp(2, 10_000);
    let mut nets: Vec<Vec<String>> = vec![Vec::new(); zones];
    for k in 0..prefixes {
        nets[k % zones].push(prefix(k).1);
    }
    let mut out = String::new();
    for (z, n) in nets.iter().enumerate() {
        writeln!(out, "zone z{z} {{ networks {} }}", n.join(", ")).unwrap();
    }
    writeln!(out, "allow z0 -> z1 : tcp/443").unwrap();
    for i in 1..rules {
        let src = i % zones;
        let dst = (i + 1) % zones;
        // Ports above 1000 keep tcp/444 outside every rule.
        writeln!(
            out,
            "allow z{src} -> z{dst} : tcp/{}",
            1000 + (i * 7) % 60_000
        )
        .unwrap();
    }
    out
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn measure(program: &Xdp, frame: &[u8], expect: u32) -> f64 {
    let r = testrun::run_repeat(program, frame, REPEAT).expect("BPF_PROG_TEST_RUN");
    assert_eq!(
        r.action,
        expect,
        "got {}, expected {}",
        testrun::action_name(r.action),
        testrun::action_name(expect)
    );
    ns(r.duration)
}

/// The median of `values` (sorted in place); for an even count, the mean of the middle two.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The mean of the middle half of `values` (sorted in place): as robust to
/// outliers as the median, but not stuck to one value of a quantity that
/// jumps by steps. The kernel reports whole nanoseconds, so a 21.5 ns
/// baseline reads 21 in some rounds and 22 in others, ratios 5% apart, and
/// a median would pick one side or the other by chance.
fn interquartile_mean(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let middle = &values[n / 4..n - n / 4];
    middle.iter().sum::<f64>() / middle.len() as f64
}

/// The first three fields of `/proc/loadavg` (the machine's noise, for the record).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A round is *quiet* when each side took at most this much more than its
/// usual fast speed: the baseline against the 5th percentile of every
/// baseline measured in the run so far ([`Baselines`]), the case against
/// the 5th percentile of its own rounds. This VM has slow phases (a
/// neighbour's load) that slow the program more than the baseline, or the
/// program alone (a larger policy's maps evicted from the cache), so their
/// ratios are not those of a quiet machine; noise only ever adds time.
/// (Not the minimum: the kernel reports whole nanoseconds, and one lucky
/// 19 ns among 21s would make every round look slow.)
const QUIET: f64 = 1.15;

/// The slowest a quiet round may take, given every time measured so far.
fn quiet_limit(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(sorted.len() / 20)
        .copied()
        .unwrap_or(f64::INFINITY)
        * QUIET
}

/// Every baseline measured in the run: what a quiet round is judged against.
#[derive(Default)]
struct Baselines(Vec<f64>);

impl Baselines {
    fn add(&mut self, ns: f64) {
        self.0.push(ns);
    }

    /// The slowest baseline a quiet round may have.
    fn quiet_limit(&self) -> f64 {
        quiet_limit(&self.0)
    }
}
/// How long a case waits for enough quiet rounds (a slow phase can last
/// tens of seconds: then the case counts every round, and says so);
/// after a round that was not quiet it pauses
/// [`QUIET_PAUSE`] before the next.
const QUIET_WAIT: Duration = Duration::from_secs(60);
const QUIET_PAUSE: Duration = Duration::from_millis(200);

/// One case over `rounds` quiet rounds, interleaved with the baseline.
struct Rounds {
    ratios: Vec<f64>,
    ns: Vec<f64>,
    base_ns: Vec<f64>,
    /// Rounds measured in all, quiet or not.
    measured: usize,
}

impl Rounds {
    /// Measures rounds until `rounds` of them are quiet (or [`QUIET_WAIT`]
    /// has passed; then all of them count). Every baseline measured goes
    /// into `baselines`.
    fn measure(
        rounds: usize,
        baselines: &mut Baselines,
        baseline: &Xdp,
        program: &Xdp,
        frame: &[u8],
        expect: u32,
    ) -> Self {
        let mut all: Vec<(f64, f64)> = Vec::new();
        // Rounds where both sides ran at their usual speed.
        let is_quiet = |all: &[(f64, f64)], limit: f64| {
            let values: Vec<f64> = all.iter().map(|(v, _)| *v).collect();
            let case_limit = quiet_limit(&values);
            move |(value, base): &(f64, f64)| *base <= limit && *value <= case_limit
        };
        let quiet = |all: &[(f64, f64)], limit: f64| {
            let keep = is_quiet(all, limit);
            all.iter().filter(|round| keep(round)).count()
        };
        let started = std::time::Instant::now();
        for round in 0.. {
            let (value, base) = if round % 2 == 0 {
                let base = measure(baseline, frame, testrun::XDP_PASS);
                (measure(program, frame, expect), base)
            } else {
                let value = measure(program, frame, expect);
                (value, measure(baseline, frame, testrun::XDP_PASS))
            };
            baselines.add(base);
            let limit = baselines.quiet_limit();
            all.push((value, base));
            if round + 1 >= rounds
                && (quiet(&all, limit) >= rounds || started.elapsed() > QUIET_WAIT)
            {
                break;
            }
            if !is_quiet(&all, limit)(&(value, base)) {
                std::thread::sleep(QUIET_PAUSE);
            }
        }
        let measured = all.len();
        let limit = baselines.quiet_limit();
        let enough = quiet(&all, limit) >= rounds;
        let keep = is_quiet(&all, limit);
        let kept: Vec<(f64, f64)> = all
            .iter()
            .copied()
            .filter(|round| !enough || keep(round))
            .collect();
        Rounds {
            ratios: kept.iter().map(|(v, b)| v / b).collect(),
            ns: kept.iter().map(|(v, _)| *v).collect(),
            base_ns: kept.iter().map(|(_, b)| *b).collect(),
            measured,
        }
    }

    /// (interquartile mean of the ratios, min ratio, max ratio, median ns,
    /// median baseline ns).
    fn summary(&mut self) -> (f64, f64, f64, f64, f64) {
        let ratio = interquartile_mean(&mut self.ratios);
        (
            ratio,
            self.ratios[0],
            self.ratios[self.ratios.len() - 1],
            median(&mut self.ns),
            median(&mut self.base_ns),
        )
    }
}

/// What flow records cost a new-connection case: the same program run with
/// `CONFIG_FLOWS` and without it, interleaved over `rounds` rounds like the
/// baseline; (median, min, max) of the with/without ratios.
fn flow_cost(e: &mut Enforcer, rounds: usize, frame: &[u8], expect: u32) -> (f64, f64, f64) {
    let mut run = |on: bool| {
        programmer::update_config(e.program.ebpf_mut(), |c| {
            if on {
                c.flags |= CONFIG_FLOWS;
            } else {
                c.flags &= !CONFIG_FLOWS;
            }
        })
        .expect("writing the config");
        measure(e.program.xdp(), frame, expect)
    };
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (with, without) = if round % 2 == 0 {
            let without = run(false);
            (run(true), without)
        } else {
            let with = run(true);
            (with, run(false))
        };
        ratios.push(with / without);
    }
    let median = median(&mut ratios);
    (median, ratios[0], ratios[ratios.len() - 1])
}

fn main() {
    if !privilege::kernel_tests_can_run("bench datapath") {
        return;
    }
    let cpu = testrun::stay_on_this_cpu();
    let mut baseline_ebpf = loader::load_baseline().expect("loading the baseline program");
    let baseline: &mut Xdp = baseline_ebpf
        .program_mut(loader::BASELINE_NAME)
        .unwrap()
        .try_into()
        .unwrap();
    let src: IpAddr = std::net::Ipv4Addr::from(prefix(0).0 + 1).into();
    let dst: IpAddr = std::net::Ipv4Addr::from(prefix(1).0 + 1).into();
    let tcp_from = |sport, dport, flags| {
        packet::ip(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags,
            },
        )
    };
    let tcp = |dport, flags| tcp_from(40000, dport, flags);
    let cases: [(&str, Vec<u8>, u32); 5] = [
        ("established", tcp(443, tcp_flags::ACK), testrun::XDP_PASS),
        (
            // A FIN of a second established connection: it changes the
            // connection's state, so it never passes from the connection
            // cache (neither does the first packet of a flow on a CPU, nor
            // one a second after the last).
            "est. table",
            tcp_from(40002, 443, tcp_flags::FIN | tcp_flags::ACK),
            testrun::XDP_PASS,
        ),
        (
            "new allowed",
            // Another source port: not the tracked connection.
            packet::ip(
                src,
                dst,
                L4::Tcp {
                    sport: 40001,
                    dport: 443,
                    flags: tcp_flags::RST | tcp_flags::ACK,
                },
            ),
            testrun::XDP_PASS,
        ),
        ("new denied", tcp(444, tcp_flags::SYN), testrun::XDP_DROP),
        ("non-IP", packet::arp(), testrun::XDP_PASS),
    ];
    let mut results = Vec::new();
    let rounds = std::env::var("WARDGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(ROUNDS);
    println!(
        "{rounds} quiet rounds of {REPEAT} runs per case and per baseline, interleaved \
         (quiet: the baseline within {:.0}% of the run's 5th percentile; a case waits up to {} s for them)",
        100.0 * (QUIET - 1.0),
        QUIET_WAIT.as_secs()
    );
    println!(
        "load average at start: {}; pinned to CPU {cpu}",
        load_average()
    );
    // Two seconds of baseline runs first find the machine's usual speed.
    let mut baselines = Baselines::default();
    let probe = packet::arp();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        baselines.add(measure(baseline, &probe, testrun::XDP_PASS));
    }
    println!(
        "XDP_PASS baseline in 2 s: 5th percentile {:.0} ns (quiet rounds up to {:.1} ns)",
        baselines.quiet_limit() / QUIET,
        baselines.quiet_limit()
    );
    println!(
        "{:<12} {:>9} {:>7} {:>10} {:>10} {:>7} {:>15} {:>7}",
        "case", "prefixes", "rules", "ns/packet", "XDP_PASS", "ratio", "spread", "quiet"
    );
    // `WARDGATE_BENCH_QUICK=1` measures the smallest policy only (for quick iteration).
    let quick = std::env::var_os("WARDGATE_BENCH_QUICK").is_some();
    // `WARDGATE_BENCH_CASES=established,new allowed` measures those cases only.
    let only = std::env::var("WARDGATE_BENCH_CASES").ok();
    // `WARDGATE_BENCH_SIZES=1000/1000,100000/10` measures those policy
    // sizes (prefixes/rules) only.
    let sizes: Vec<(usize, usize)> = match std::env::var("WARDGATE_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|size| {
                size.split_once('/')
                    .and_then(|(p, r)| Some((p.parse().ok()?, r.parse().ok()?)))
                    .unwrap_or_else(|| {
                        panic!("WARDGATE_BENCH_SIZES: `{size}` is not PREFIXES/RULES")
                    })
            })
            .collect(),
        Err(_) if quick => vec![(PREFIXES[0], RULES[0])],
        Err(_) => PREFIXES
            .iter()
            .flat_map(|&p| RULES.iter().map(move |&r| (p, r)))
            .collect(),
    };
    for (prefixes, rules) in sizes {
        let started = std::time::Instant::now();
        let mut e = Enforcer::with_image(image(&policy(prefixes, rules)));
        let load_time = started.elapsed();
        // The connections the established cases ride on: a SYN, and
        // the SYN-ACK that moves it to the established table.
        for sport in [40000, 40002] {
            assert!(e.passes(&tcp_from(sport, 443, tcp_flags::SYN)));
            assert!(e.passes(&packet::ip(
                dst,
                src,
                L4::Tcp {
                    sport: 443,
                    dport: sport,
                    flags: tcp_flags::SYN | tcp_flags::ACK,
                },
            )));
        }
        if std::env::var_os("WARDGATE_BENCH_HOLD").is_some() {
            eprintln!("holding for 120 s (inspect with bpftool)");
            std::thread::sleep(Duration::from_secs(120));
        }
        for (case, frame, expect) in &cases {
            if only
                .as_ref()
                .is_some_and(|only| !only.split(',').any(|c| c == *case))
            {
                continue;
            }
            let (tracked, cached) = (
                e.counter(counter::PASS_TRACKED),
                e.counter(counter::CT_CACHE_HIT),
            );
            let mut r = Rounds::measure(
                rounds,
                &mut baselines,
                baseline,
                e.program.xdp(),
                frame,
                *expect,
            );
            // Each case must take the path it names: *established* from
            // the connection cache (all but the first run and one a
            // second), *est. table* through the table.
            let tracked = e.counter(counter::PASS_TRACKED) - tracked;
            let cached = e.counter(counter::CT_CACHE_HIT) - cached;
            assert_eq!(
                tracked > 0,
                case.starts_with("est"),
                "{case}: {tracked} tracked passes"
            );
            if *case == "established" {
                assert!(
                    cached * 100 >= tracked * 99,
                    "{case}: {cached} of {tracked} tracked passes from the cache"
                );
            } else {
                assert_eq!(cached, 0, "{case}: {cached} passes from the cache");
            }
            let (ratio, min, max, value, base) = r.summary();
            println!(
                "{case:<12} {prefixes:>9} {rules:>7} {value:>10.1} {base:>10.1} {ratio:>6.2}x {:>15} {:>7}",
                format!("{min:.2}-{max:.2}x"),
                format!("{}/{}", r.ratios.len(), r.measured)
            );
            let flows = case
                .starts_with("new")
                .then(|| flow_cost(&mut e, rounds, frame, *expect));
            if let Some((median, min, max)) = flows {
                println!(
                    "{:<12} {prefixes:>9} {rules:>7}   flow records cost {:+.1}% of the path ({:+.1}% to {:+.1}%)",
                    "",
                    100.0 * (median - 1.0),
                    100.0 * (min - 1.0),
                    100.0 * (max - 1.0)
                );
            }
            results.push(json!({
                "flow_records_cost_median": flows.map(|f| f.0 - 1.0),
                "case": case,
                "prefixes": prefixes,
                "rules": rules,
                "rounds": rounds,
                "rounds_measured": r.measured,
                "rounds_kept": r.ratios.len(),
                "repeat": REPEAT,
                "ratio_median": ratio,
                "ratio_min": min,
                "ratio_max": max,
                "ns_per_packet_median": value,
                "baseline_ns_per_packet_median": base,
                "ratios": r.ratios,
            }));
        }
        eprintln!(
            "  (policy of {prefixes} prefixes, {rules} rules: compiled and loaded in {load_time:.2?})"
        );
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("datapath.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    println!("load average at end: {}", load_average());
    println!("wrote {}", path.display());
}
