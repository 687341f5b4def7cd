//! Compiler benchmark: generated policies from 10 to 10,000 zones and up to
//! 50,000 rules; time and peak memory of `check` (load + analyse) and
//! `compile` (lower + image bytes), each size in its own process so that
//! peak memory is that size's alone.
//!
//! ```text
//! cargo run --release -p wardgate-compiler --example bench_compiler
//! cargo run --release -p wardgate-compiler --example bench_compiler -- 10000 50000
//! ```
//!
//! The baseline column is parsing alone (text to AST, includes, name
//! checks): the compiler's own work is reported next to it, as a ratio, which
//! holds on a noisy machine where absolute times do not.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const SIZES: &[(usize, usize)] = &[
    (10, 50),
    (100, 500),
    (1_000, 5_000),
    (1_000, 50_000),
    (10_000, 10_000),
    (10_000, 50_000),
];

/// A deterministic policy: `zones` zones with one or two prefixes each,
/// tags (a group tag per 20 zones, every 7th medical, every 31st
/// life-critical, every 97th in monitor mode), `rules` rules between random
/// zones (one in ten from a group tag, one in twenty a deny), three
/// requirements that hold, so that compile builds an image.
pub fn generate(zones: usize, rules: usize) -> String {
    let mut seed: u64 = 0x5eed_0000 + zones as u64 * 31 + rules as u64;
    let mut rnd = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(seed >> 33).unwrap() % n
    };
    let mut s = String::with_capacity(rules * 60 + zones * 120);
    let services = [
        ("dicom", "tcp/104, tcp/11112"),
        ("hl7", "tcp/2575"),
        ("https", "tcp/443"),
        ("ntp", "udp/123"),
        ("dns", "udp/53, tcp/53"),
        ("app", "tcp/8000-8100"),
        ("ping", "icmp/echo-request, icmpv6/echo-request"),
        ("ipsec", "udp/500, udp/4500, proto/50"),
    ];
    for (n, v) in services {
        let _ = writeln!(s, "service {n} = {v}");
    }
    s.push_str("zone guest { networks 192.168.0.0/16 tags guest }\n");
    for z in 0..zones {
        let (a, b) = (z / 256, z % 256);
        let _ = write!(s, "zone z{z} {{ networks 10.{a}.{b}.0/24");
        if z % 3 == 0 {
            let _ = write!(s, ", 2001:db8:{z:x}::/64");
        }
        let group = format!("grp{}", z / 20);
        let mut tags = vec![group.as_str()];
        if z % 7 == 0 {
            tags.push("medical");
        }
        if z % 31 == 0 {
            tags.push("life-critical");
        }
        let _ = write!(s, " tags {}", tags.join(", "));
        if z % 97 == 1 {
            s.push_str(" mode monitor");
        }
        if z % 11 == 0 {
            s.push_str(" isolated");
        }
        s.push_str(" }\n");
    }
    let names: Vec<&str> = services.iter().map(|x| x.0).collect();
    for _ in 0..rules {
        let action = if rnd(20) == 0 { "deny" } else { "allow" };
        let src = if rnd(10) == 0 {
            format!("tag:grp{}", rnd(zones.div_ceil(20)))
        } else {
            format!("z{}", rnd(zones))
        };
        let dst = format!("z{}", rnd(zones));
        let svc = match rnd(4) {
            0 => format!("tcp/{}", 1024 + rnd(60_000)),
            1 => format!("{}, udp/{}", names[rnd(names.len())], 1 + rnd(1000)),
            _ => names[rnd(names.len())].to_owned(),
        };
        let _ = writeln!(s, "{action} {src} -> {dst} : {svc}");
    }
    s.push_str("require no-flow guest -> tag:medical\n");
    s.push_str("require no-path guest -> tag:life-critical\n");
    s.push_str("require no-path tag:life-critical -> guest\n");
    s
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn one(zones: usize, rules: usize) {
    let text = generate(zones, rules);
    let today = "2026-06-01".parse::<wardgate_compiler::model::Date>().ok();
    let t0 = Instant::now();
    let loaded = wardgate_lang::load_with(Path::new("bench.ward"), &mut |_| Ok(text.clone()))
        .expect("in memory");
    let parse = t0.elapsed();
    assert!(
        !loaded.has_errors(),
        "generated policy has errors: {:?}",
        &loaded.diagnostics[..1]
    );
    let t1 = Instant::now();
    let analysis = wardgate_compiler::analyze(&loaded, &wardgate_compiler::Options { today });
    let analyse = t1.elapsed();
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "generated policy has errors: {errors:?}");
    let t2 = Instant::now();
    let image = analysis.image.as_ref().expect("no errors, so an image");
    let bytes = image.to_bytes();
    let compile = t2.elapsed();
    let t3 = Instant::now();
    let back = wardgate_compiler::PolicyImage::from_bytes(&bytes).expect("loads");
    let load = t3.elapsed();
    assert!(back == *image);
    let check = parse + analyse;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {zones:>6} | {rules:>6} | {:>8.1} | {:>8.1} | {:>5.1}x | {:>8.1} | {:>8.1} | {:>9.1} | {:>7} | {:>8} | {:>7.1} |",
        ms(parse),
        ms(check),
        ms(check) / ms(parse).max(0.001),
        ms(compile),
        ms(check + compile),
        ms(load),
        image.pairs().len(),
        image.intervals().len(),
        peak_rss_mib(),
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if let [zones, rules] = args[..] {
        one(zones, rules);
        return;
    }
    println!(
        "| zones  | rules  | parse ms (baseline) | check ms | check/parse | write ms | compile ms | image load ms | pairs | intervals | peak MiB |"
    );
    println!(
        "|-------:|-------:|---------:|---------:|------:|---------:|---------:|----------:|--------:|---------:|--------:|"
    );
    let exe = std::env::current_exe().expect("own path");
    for &(z, r) in SIZES {
        let out = std::process::Command::new(&exe)
            .args([z.to_string(), r.to_string()])
            .output()
            .expect("runs");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
