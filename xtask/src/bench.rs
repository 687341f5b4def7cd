//! `cargo xtask bench NAME`: the benchmarks that need root and the kernel.
//!
//! - `forward`: packets per second through a veth gateway namespace with no
//!   filter, wardgate XDP (with and without the fast path) and nftables from
//!   the same policy (`bench/forward`, method in `bench/README.md`); writes
//!   `target/bench/forward.json`.
//! - `datapath`: ns per packet of the XDP program under `BPF_PROG_TEST_RUN`
//!   beside an `XDP_PASS` program, as policies grow to 100,000 prefixes and
//!   10,000 rules (`tests/benches/datapath.rs`); writes `target/bench/datapath.json`.
//! - `nft [SIZE...]`: `wardgate compile --target nftables` beside Aerleon's
//!   `aclgen` (installed from PyPI into `target/aerleon-venv`) on the same
//!   generated policies: compile time, peak memory, `nft -c -f` time, and
//!   whether wardgate's loaded maps read back exactly (`bench/aerleon/run.sh`,
//!   results in `bench/nftables.md`); writes `target/bench/nft/results.tsv`.
//! - `suggest`: `wardgate suggest` on generated flows logs (2 and 4 million
//!   records) and a 1 GB pcap over the same flow keys: records per second
//!   and peak memory (`bench/discovery/run.sh`, results in `bench/discovery.md`).
//! - `fuzz`: the parser fuzz test (`tests/tests/kernel/fuzz.rs`) with
//!   1,000,000 frames instead of the test suite's 50,000
//!   (`WARDGATE_FUZZ_FRAMES` and `WARDGATE_FUZZ_SEED` override).

use anyhow::bail;

use crate::{setup, sh};

pub fn run(name: &str, args: &[String]) -> anyhow::Result<()> {
    if name != "nft" && !args.is_empty() {
        bail!("benchmark `{name}` takes no arguments");
    }
    match name {
        "forward" => forward(),
        "datapath" => datapath(),
        "nft" => nft(args),
        "fuzz" => fuzz(),
        "suggest" => suggest(),
        other => {
            bail!(
                "unknown benchmark `{other}` (expected `forward`, `datapath`, `nft`, `suggest` or `fuzz`)"
            )
        }
    }
}

fn nft(sizes: &[String]) -> anyhow::Result<()> {
    if let Some(bad) = sizes.iter().find(|s| s.parse::<u32>().is_err()) {
        bail!("`{bad}` is not a zone count (expected numbers such as 10 100 1000 10000)");
    }
    setup::debian_packages()?;
    if !sh::is_root() {
        bail!("the nftables benchmark needs root (nft in a scratch namespace)");
    }
    sh::cargo(&[
        "build",
        "--release",
        "--package",
        "wardgate-compiler",
        "--bin",
        "wardgate",
    ])?;
    sh::cargo(&[
        "build",
        "--release",
        "--package",
        "wardgate-tests",
        "--example",
        "scalegen",
    ])?;
    let root = sh::root();
    let target = root.join("target/release");
    let wardgate = target.join("wardgate");
    let scalegen = target.join("examples/scalegen");
    let script = root.join("bench/aerleon/run.sh");
    let args: Vec<&str> = sizes.iter().map(String::as_str).collect();
    sh::run_env(
        script.to_str().unwrap_or("bench/aerleon/run.sh"),
        &args,
        &[
            ("WARDGATE", wardgate.to_str().unwrap_or_default()),
            ("SCALEGEN", scalegen.to_str().unwrap_or_default()),
        ],
    )
}

fn forward() -> anyhow::Result<()> {
    setup::ebpf_toolchain()?;
    setup::debian_packages()?;
    if !sh::is_root() {
        bail!("the forwarding benchmark needs root (namespaces, XDP, nftables)");
    }
    let out = sh::root().join("target/bench/forward.json");
    let out = out.to_str().unwrap_or("target/bench/forward.json");
    sh::cargo(&[
        "run",
        "--release",
        "--package",
        "wardgate-bench-forward",
        "--",
        out,
    ])
}

fn datapath() -> anyhow::Result<()> {
    setup::ebpf_toolchain()?;
    if !sh::is_root() {
        bail!("the datapath benchmark needs root (CAP_BPF for BPF_PROG_TEST_RUN)");
    }
    sh::cargo(&[
        "bench",
        "--package",
        "wardgate-tests",
        "--bench",
        "datapath",
    ])
}

fn suggest() -> anyhow::Result<()> {
    sh::cargo(&[
        "build",
        "--release",
        "--package",
        "wardgate-compiler",
        "--bin",
        "wardgate",
        "--example",
        "discover_gen",
    ])?;
    let root = sh::root();
    let target = root.join("target/release");
    let script = root.join("bench/discovery/run.sh");
    sh::run_env(
        script.to_str().unwrap_or("bench/discovery/run.sh"),
        &[],
        &[
            (
                "WARDGATE",
                target.join("wardgate").to_str().unwrap_or_default(),
            ),
            (
                "GEN",
                target
                    .join("examples/discover_gen")
                    .to_str()
                    .unwrap_or_default(),
            ),
        ],
    )
}

fn fuzz() -> anyhow::Result<()> {
    setup::ebpf_toolchain()?;
    if !sh::is_root() {
        bail!("the parser fuzz needs root (CAP_BPF for BPF_PROG_TEST_RUN)");
    }
    let frames = std::env::var("WARDGATE_FUZZ_FRAMES").unwrap_or_else(|_| "1000000".into());
    sh::run_env(
        "cargo",
        &[
            "test",
            "--package",
            "wardgate-tests",
            "--test",
            "kernel",
            "--",
            "parser_fuzz",
            "--nocapture",
        ],
        &[("WARDGATE_FUZZ_FRAMES", &frames)],
    )
}
