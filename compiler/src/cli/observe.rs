//! What `suggest` and `drift` share: the inputs (flows logs, captures, the
//! time window) and the site policy, read with clear messages.

use std::fs::File;
use std::path::{Path, PathBuf};

use wardgate_compiler::PolicyImage;
use wardgate_compiler::discover::{Observations, Seconds, Window, flowlog, pcap};
use wardgate_compiler::model::Policy;
use wardgate_lang::date::Date;

use super::{io_reason, parse_date};

#[derive(clap::Args)]
pub struct Inputs {
    /// The agent's flows logs (JSON lines; several gateways' files at once).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub flows: Vec<PathBuf>,
    /// Packet captures (pcap or pcapng), for example from a SPAN port.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub pcap: Vec<PathBuf>,
    /// Only traffic seen in this long before `--now` (`30m`, `12h`, `7d`, `2w`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub since: Option<Seconds>,
    /// The end of the window (RFC 3339); default now.
    #[arg(long, value_parser = parse_now, value_name = "TIME")]
    pub now: Option<Seconds>,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

/// `30s`, `30m`, `12h`, `7d`, `2w` to seconds.
fn parse_duration(s: &str) -> Result<Seconds, String> {
    let bad = || format!("`{s}` is not a duration (for example `30m`, `12h`, `7d`, `2w`)");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

fn parse_now(s: &str) -> Result<Seconds, String> {
    flowlog::parse_time(s)
}

/// A policy that checks, and its image.
pub struct Site {
    pub policy: Policy,
    pub image: PolicyImage,
}

/// Loads and compiles the site policy; an error names what to run.
pub fn load_policy(path: &Path, today: Date) -> Result<Site, String> {
    let loaded = wardgate_lang::load(path)
        .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))?;
    let opts = wardgate_compiler::Options { today: Some(today) };
    let analysis = wardgate_compiler::analyze(&loaded, &opts);
    match analysis.image {
        Some(image) if !loaded.has_errors() => Ok(Site {
            policy: analysis.policy,
            image,
        }),
        _ => Err(format!(
            "`{}` has errors: run `wardgate check {}`",
            path.display(),
            path.display()
        )),
    }
}

/// Reads every flows log and capture; bad lines and truncated captures are
/// warnings (the rest is used), an unreadable file or an empty window an error.
pub fn read_inputs(inputs: &Inputs) -> Result<Observations, String> {
    if inputs.flows.is_empty() && inputs.pcap.is_empty() {
        return Err("nothing to read: give `--flows FILE` or `--pcap FILE`".to_owned());
    }
    let now = inputs
        .now
        .unwrap_or_else(|| jiff::Timestamp::now().as_second());
    let window = Window {
        since: inputs.since.map(|s| now - s),
        until: inputs.now,
    };
    let open = |p: &Path| {
        File::open(p).map_err(|e| format!("cannot read `{}`: {}", p.display(), io_reason(&e)))
    };
    let mut obs = Observations::default();
    for path in &inputs.flows {
        let r = flowlog::read(open(path)?, window, &mut obs)
            .map_err(|e| format!("cannot read `{}`: {}", path.display(), io_reason(&e)))?;
        for b in &r.bad_lines {
            eprintln!("warning: {}:{}: {}", path.display(), b.line, b.reason);
        }
        let hidden = r.bad - r.bad_lines.len() as u64;
        if hidden > 0 {
            eprintln!(
                "warning: {}: {hidden} more bad lines skipped",
                path.display()
            );
        }
        for n in &r.notes {
            eprintln!("note: {}: {n}", path.display());
        }
    }
    for path in &inputs.pcap {
        let r = pcap::read(open(path)?, window, &mut obs)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        if let Some(why) = &r.stopped {
            eprintln!(
                "warning: {}: stopped {why}; the packets before are used",
                path.display()
            );
        }
        if let Some(link) = r.unsupported_link {
            eprintln!(
                "warning: {}: link type {link} is not decoded (Ethernet, Linux cooked and raw IP are)",
                path.display()
            );
        }
    }
    if obs.is_empty() {
        return Err(if obs.outside_window > 0 {
            format!(
                "no traffic in the window: all {} records are outside it (widen `--since`)",
                obs.outside_window
            )
        } else {
            "no traffic in the inputs".to_owned()
        });
    }
    Ok(obs)
}
