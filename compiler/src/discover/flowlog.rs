//! The agent's flows log (JSON lines, `docs/agent.md`, "Flows log") read as
//! a stream, a block at a time, each record added to the [`Observations`] at
//! once.
//!
//! A line that is not a flow record is reported with its line number and
//! skipped; the rest of the file is used. Lines with a `note` field (the
//! agent's notices, such as a full flow table) are counted, not used.

use std::net::IpAddr;

use serde::Deserialize;

use super::{FlowKey, LoggedVerdict, Observations, Seconds, Window, parse_proto};

/// One line of the flows log. Strings are borrowed when they have no escapes.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    note: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    time_first: Option<&'a str>,
    #[serde(borrow, default)]
    time_last: Option<&'a str>,
    #[serde(default)]
    src: Option<IpAddr>,
    #[serde(default)]
    dst: Option<IpAddr>,
    #[serde(borrow, default)]
    proto: Option<&'a str>,
    #[serde(default)]
    dst_port: Option<u16>,
    #[serde(default)]
    icmp_type: Option<u8>,
    #[serde(borrow, default)]
    verdict: Option<&'a str>,
    #[serde(default)]
    connections: Option<u64>,
}

/// A line that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub line: u64,
    pub reason: String,
}

/// What reading one file found besides the records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// The first bad lines (at most [`ReadReport::KEEP`]); `bad` counts all.
    pub bad_lines: Vec<BadLine>,
    pub bad: u64,
    /// The agent's notices, in order (at most [`ReadReport::KEEP`]).
    pub notes: Vec<String>,
}

impl ReadReport {
    pub const KEEP: usize = 20;
}

/// Parses an RFC 3339 time to seconds.
///
/// # Errors
/// Not an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<Seconds, String> {
    s.parse::<jiff::Timestamp>()
        .map(jiff::Timestamp::as_second)
        .map_err(|_| format!("`{s}` is not an RFC 3339 time"))
}

/// Bytes read at a time; each block is cut at its last newline and its
/// lines are parsed on two threads.
const BLOCK: usize = 4 << 20;

/// Reads a flows log, adding each record in `window` to `obs`.
///
/// Memory is bounded by the distinct keys and one block, not by the input:
/// the log is read in blocks of [`BLOCK`] bytes, and the two halves of each
/// block are parsed side by side (parsing JSON is nearly all of the cost),
/// each thread into observations of its own, merged at the end.
///
/// # Errors
/// Only an I/O error of the reader; bad lines are in the report.
pub fn read(
    mut input: impl std::io::Read,
    window: Window,
    obs: &mut Observations,
) -> std::io::Result<ReadReport> {
    let mut halves = [Half::default(), Half::default()];
    let mut report = ReadReport::default();
    let mut block: Vec<u8> = Vec::with_capacity(BLOCK + 4096);
    let mut lines_before = 0u64;
    loop {
        let eof = fill(&mut input, &mut block)?;
        // Whole lines only; the tail waits for the next block (or is the
        // last line when the input ends without a newline).
        let cut = if eof {
            block.len()
        } else {
            block
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(block.len(), |i| i + 1)
        };
        let (lines, _) = block.split_at(cut);
        let mid = lines[..lines.len() / 2]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let (a, b) = lines.split_at(mid);
        let base_b = lines_before + newlines(a);
        let [ha, hb] = &mut halves;
        std::thread::scope(|scope| {
            scope.spawn(|| ha.parse(a, lines_before, window));
            hb.parse(b, base_b, window);
        });
        for h in &mut halves {
            report.absorb(std::mem::take(&mut h.report));
        }
        lines_before = base_b + newlines(b);
        if eof {
            break;
        }
        block.drain(..cut);
    }
    for h in halves {
        obs.merge(h.obs);
    }
    Ok(report)
}

/// Reads until `block` holds [`BLOCK`] bytes or the input ends (true).
fn fill(input: &mut impl std::io::Read, block: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 64 * 1024];
    while block.len() < BLOCK {
        let n = match input.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(true);
        }
        block.extend_from_slice(&chunk[..n]);
    }
    Ok(false)
}

fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// What one parsing thread keeps between blocks.
#[derive(Default)]
struct Half {
    obs: Observations,
    report: ReadReport,
    times: TimeCache,
}

impl Half {
    /// Parses whole lines; `before` lines precede them in the file.
    fn parse(&mut self, lines: &[u8], before: u64, window: Window) {
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', lines).chain(std::iter::once(lines.len()));
        for (i, end) in ends.enumerate() {
            let line = &lines[start..end];
            start = (end + 1).min(lines.len());
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            match record(text, &mut self.times) {
                Ok(Parsed::Note(note)) => {
                    if self.report.notes.len() < ReadReport::KEEP {
                        self.report.notes.push(note);
                    }
                }
                Ok(Parsed::Record(key, first, last, connections, verdict)) => {
                    if window.contains(first, last) {
                        self.obs.add(key, first, last, connections, verdict);
                    } else {
                        self.obs.outside_window += 1;
                    }
                }
                Err(reason) => {
                    self.report.bad += 1;
                    if self.report.bad_lines.len() < ReadReport::KEEP {
                        self.report.bad_lines.push(BadLine {
                            line: before + i as u64 + 1,
                            reason,
                        });
                    }
                }
            }
        }
    }
}

impl ReadReport {
    /// Appends a later part of the same file.
    fn absorb(&mut self, later: ReadReport) {
        self.bad += later.bad;
        let room = Self::KEEP.saturating_sub(self.bad_lines.len());
        self.bad_lines
            .extend(later.bad_lines.into_iter().take(room));
        let room = Self::KEEP.saturating_sub(self.notes.len());
        self.notes.extend(later.notes.into_iter().take(room));
    }
}

enum Parsed {
    Note(String),
    Record(FlowKey, Seconds, Seconds, u64, Option<LoggedVerdict>),
}

/// The last two times parsed: a drain writes the same few timestamps on
/// many lines, and parsing them is a third of the cost of a line.
#[derive(Default)]
struct TimeCache {
    slots: [(String, Seconds); 2],
    next: usize,
}

impl TimeCache {
    fn parse(&mut self, s: &str) -> Result<Seconds, String> {
        if let Some((_, t)) = self.slots.iter().find(|(k, _)| k == s) {
            return Ok(*t);
        }
        let t = parse_time(s)?;
        self.slots[self.next] = (s.to_owned(), t);
        self.next = (self.next + 1) % self.slots.len();
        Ok(t)
    }
}

fn record(text: &[u8], times: &mut TimeCache) -> Result<Parsed, String> {
    let line: Line<'_> = serde_json::from_slice(text).map_err(|e| {
        let e = e.to_string();
        // serde_json says "at line 1 column N": the column is what helps.
        let e = e.split(" at line ").next().unwrap_or(&e).to_owned();
        format!("not a flow record: {e}")
    })?;
    if let Some(note) = line.note {
        return Ok(Parsed::Note(note.into_owned()));
    }
    let missing = |f: &str| format!("not a flow record: no `{f}`");
    let first = times.parse(line.time_first.ok_or_else(|| missing("time_first"))?)?;
    let last = times.parse(line.time_last.ok_or_else(|| missing("time_last"))?)?;
    if last < first {
        return Err("`time_last` is before `time_first`".to_owned());
    }
    let src = line.src.ok_or_else(|| missing("src"))?;
    let dst = line.dst.ok_or_else(|| missing("dst"))?;
    let proto_s = line.proto.ok_or_else(|| missing("proto"))?;
    let proto = parse_proto(proto_s).ok_or_else(|| format!("`{proto_s}` is not a protocol"))?;
    let port = match proto {
        1 | 58 => u16::from(line.icmp_type.ok_or_else(|| missing("icmp_type"))?),
        6 | 17 | 132 => line.dst_port.ok_or_else(|| missing("dst_port"))?,
        _ => 0,
    };
    let verdict = match line.verdict {
        None => None,
        Some("allow") => Some(LoggedVerdict::Allow),
        Some("drop") => Some(LoggedVerdict::Drop),
        Some("audit") => Some(LoggedVerdict::Audit),
        Some(v) => return Err(format!("`{v}` is not a verdict")),
    };
    Ok(Parsed::Record(
        FlowKey {
            src,
            dst,
            proto,
            port,
        },
        first,
        last,
        line.connections.unwrap_or(1),
        verdict,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"time_first":"2026-01-05T10:00:00Z","time_last":"2026-01-05T10:00:09Z","interface":"eth0","src":"10.20.0.11","dst":"10.30.0.5","proto":"tcp","dst_port":104,"src_zone":"imaging","dst_zone":"pacs","verdict":"audit","rule":null,"connections":3,"generation":1}"#;

    #[test]
    fn garbage_lines_are_reported_with_their_numbers_and_the_rest_is_used() {
        let text = format!(
            "{GOOD}\nnot json at all\n{{\"time_first\":\"2026-01-05T10:00:00Z\"}}\n\n{}\n",
            GOOD.replace("10.20.0.11", "10.20.0.12")
        );
        let mut obs = Observations::default();
        let r = read(text.as_bytes(), Window::default(), &mut obs).unwrap();
        assert_eq!(obs.flows.len(), 2);
        assert_eq!(r.bad, 2);
        assert_eq!(r.bad_lines[0].line, 2);
        assert!(
            r.bad_lines[0].reason.starts_with("not a flow record"),
            "{r:?}"
        );
        assert_eq!(r.bad_lines[1].line, 3);
        assert_eq!(r.bad_lines[1].reason, "not a flow record: no `time_last`");
    }

    #[test]
    fn records_aggregate_by_key_and_the_window_filters() {
        let later = GOOD
            .replace("2026-01-05T10:00:00Z", "2026-01-07T10:00:00Z")
            .replace("2026-01-05T10:00:09Z", "2026-01-07T11:00:00Z");
        let text = format!("{GOOD}\n{later}\n");
        let mut obs = Observations::default();
        read(text.as_bytes(), Window::default(), &mut obs).unwrap();
        let s = obs.flows.values().next().unwrap();
        assert_eq!(s.connections, 6);
        assert_eq!(s.days.len(), 2);
        assert_eq!(s.verdicts, vec![LoggedVerdict::Audit]);

        let since = parse_time("2026-01-06T00:00:00Z").unwrap();
        let mut obs = Observations::default();
        let window = Window {
            since: Some(since),
            until: None,
        };
        read(text.as_bytes(), window, &mut obs).unwrap();
        assert_eq!(obs.flows.values().next().unwrap().connections, 3);
        assert_eq!(obs.outside_window, 1);
    }

    /// Lines are numbered right and every record counted across the halves
    /// and blocks that the reader parses apart, also without a final newline.
    #[test]
    fn line_numbers_and_counts_hold_across_blocks() {
        let lines = 3 * BLOCK / GOOD.len();
        let bad_at = [1, lines / 4, BLOCK / GOOD.len() + 3, lines / 2 + 1, lines];
        let mut text = String::new();
        for n in 1..=lines {
            if bad_at.contains(&n) {
                text.push_str("garbage");
            } else {
                // Distinct sources: one key per line.
                text.push_str(
                    &GOOD.replace("10.20.0.11", &format!("10.{}.{}.1", n / 250, n % 250)),
                );
            }
            if n < lines {
                text.push('\n');
            }
        }
        let mut obs = Observations::default();
        let r = read(text.as_bytes(), Window::default(), &mut obs).unwrap();
        let found: Vec<u64> = r.bad_lines.iter().map(|b| b.line).collect();
        assert_eq!(found, bad_at.iter().map(|&n| n as u64).collect::<Vec<_>>());
        assert_eq!(obs.records, (lines - bad_at.len()) as u64);
        assert_eq!(obs.flows.len(), lines - bad_at.len());
    }

    #[test]
    fn notes_are_kept_apart() {
        let text =
            format!("{{\"time\":\"2026-01-05T10:00:00Z\",\"note\":\"flow table full\"}}\n{GOOD}\n");
        let mut obs = Observations::default();
        let r = read(text.as_bytes(), Window::default(), &mut obs).unwrap();
        assert_eq!(r.notes, vec!["flow table full".to_owned()]);
        assert_eq!(r.bad, 0);
        assert_eq!(obs.records, 1);
    }
}
