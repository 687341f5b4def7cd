//! Writes one generated policy (`wardgate_tests::scalegen`, plain mix) as
//! `.ward` source and as Aerleon input, for `bench/aerleon/run.sh`.
//!
//! ```text
//! cargo run --release -p wardgate-tests --example scalegen -- ZONES RULES [v4|v6] DIR
//! ```
//! writes `DIR/policy.ward`, `DIR/def/NETWORK.net`, `DIR/def/SERVICES.svc`
//! and `DIR/policies/pol/policy.pol`.

use std::path::Path;

use wardgate_tests::scalegen::{Mix, Policy, Scale};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zones, rules, family, dir] = args.as_slice() else {
        eprintln!("usage: scalegen ZONES RULES v4|v6 DIR");
        std::process::exit(2);
    };
    let (Ok(zones), Ok(rules)) = (zones.parse(), rules.parse()) else {
        eprintln!("scalegen: ZONES and RULES must be numbers");
        std::process::exit(2);
    };
    let policy = Policy::generate(Scale {
        zones,
        rules,
        ipv6: family == "v6",
        mix: Mix::Plain,
        seed: 18,
    });
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir.join("def"))?;
    std::fs::create_dir_all(dir.join("policies/pol"))?;
    std::fs::write(dir.join("policy.ward"), policy.ward())?;
    let (nets, svcs, pol) = policy.aerleon();
    std::fs::write(dir.join("def/NETWORK.net"), nets)?;
    std::fs::write(dir.join("def/SERVICES.svc"), svcs)?;
    std::fs::write(dir.join("policies/pol/policy.pol"), pol)?;
    Ok(())
}
