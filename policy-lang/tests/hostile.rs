//! Hostile and oversized inputs (issue 10): each test pins one way a policy
//! once crashed, hung or flooded `wardgate check`. Large inputs are generated
//! here, at test time.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use wardgate_lang::render::{self, MAX_SHOWN};
use wardgate_lang::{Loaded, parse_str};

fn all_formats(loaded: &Loaded) -> Vec<(&'static str, String)> {
    let (d, s) = (&loaded.diagnostics, &loaded.sources);
    let codes: Vec<_> = wardgate_lang::codes::ALL.iter().collect();
    vec![
        ("human", render::human(d, s)),
        ("concise", render::concise(d, s)),
        ("json", render::json(d, s)),
        ("sarif", render::sarif(d, s, &codes)),
        ("github", render::github(d, s)),
    ]
}

/// A `hosts` line of about `bytes` bytes ending in a bad address.
fn long_hosts_line(bytes: usize) -> String {
    let mut s = String::from("zone a { hosts ");
    let mut i = 1u32;
    while s.len() < bytes {
        let _ = write!(s, "10.{}.{}.{}, ", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        i += 1;
    }
    s.push_str("10.0.0.300 }\n");
    s
}

/// Issue 10 item 2: a diagnostic past column 65,535 panicked inside miette.
#[test]
fn issue10_diagnostic_past_column_65535_renders() {
    let text = long_hosts_line(72 * 1024);
    let loaded = parse_str("long.ward", &text);
    assert_eq!(loaded.diagnostics.len(), 1, "{:?}", loaded.diagnostics);
    let column = text.find("10.0.0.300").unwrap() + 1;
    assert!(column > 65_535);
    let human = render::human(&loaded.diagnostics, &loaded.sources);
    assert!(
        human.contains(&format!("[long.ward:1:{column}]")),
        "header gives the real column:\n{human}"
    );
    assert!(human.contains("10.0.0.300"), "{human}");
    assert!(
        human.contains('…'),
        "the line is cut, and says so:\n{human}"
    );
    let widest = human.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 300, "a line of {widest} characters:\n{human}");
}

/// Issue 10 item 10: control characters in a policy reached the terminal.
#[test]
fn issue10_escape_sequences_are_never_echoed() {
    let text = "zone a { hosts 10.0.0.1 description \"\x1b[31mred\x1b]0;title\x07\" }\n\
                allow a -> c : tcp/22 \"\x1b[2J\x1b[H\u{9b}31m\"\n\
                zone \x1b[5mb { }\n";
    let loaded = parse_str("esc\x1b[1m.ward", text);
    assert!(!loaded.diagnostics.is_empty());
    for (format, out) in all_formats(&loaded) {
        for bad in ['\x1b', '\x07', '\u{9b}'] {
            assert!(!out.contains(bad), "{format} output holds {bad:?}:\n{out}");
        }
    }
    let human = render::human(&loaded.diagnostics, &loaded.sources);
    assert!(human.contains('␛'), "shown as a picture:\n{human}");
}

/// Issue 10 item 10: human headers gave byte columns, JSON character columns.
#[test]
fn issue10_human_columns_count_characters_like_json() {
    let loaded = parse_str(
        "cols.ward",
        "zone a { description \"ééééé\" hosts 10.0.0.300 }\n",
    );
    let json: serde_json::Value =
        serde_json::from_str(&render::json(&loaded.diagnostics, &loaded.sources)).unwrap();
    let column = json["diagnostics"][0]["column"].as_u64().unwrap();
    assert_eq!(column, 36);
    let human = render::human(&loaded.diagnostics, &loaded.sources);
    assert!(human.contains("[cols.ward:1:36]"), "{human}");
}

/// `n` lines, each with one error (a port out of range).
fn errors(n: usize) -> String {
    let mut s = String::from("zone a { hosts 10.0.0.1 }\n");
    for i in 0..n {
        let _ = writeln!(s, "allow a -> a : tcp/{}", 70_000 + i % 1000);
    }
    s
}

fn check_and_render(text: &str) -> (usize, String, Duration) {
    let t = Instant::now();
    let loaded = parse_str("big.ward", text);
    let human = render::human(&loaded.diagnostics, &loaded.sources);
    let github = render::github(&loaded.diagnostics, &loaded.sources);
    let json = render::json(&loaded.diagnostics, &loaded.sources);
    let elapsed = t.elapsed();
    assert!(json.len() > human.len() && github.len() < json.len());
    (loaded.diagnostics.len(), human, elapsed)
}

/// Issue 10 item 3: checking and rendering grew with the square of the
/// number of errors (4,000 errors took 26 s). Four times the errors must
/// cost well under six times the time, and human output stops after
/// [`MAX_SHOWN`] diagnostics with a count of the rest.
#[test]
fn issue10_many_errors_render_in_linear_time_and_are_capped() {
    let n = 5_000;
    // Warm up allocator and caches, then measure N and 4N in the same run.
    let _ = check_and_render(&errors(n / 10));
    let (count_n, _, time_n) = check_and_render(&errors(n));
    let (count_4n, human, time_4n) = check_and_render(&errors(4 * n));
    assert_eq!((count_n, count_4n), (n, 4 * n));
    let ratio = time_4n.as_secs_f64() / time_n.as_secs_f64().max(1e-6);
    assert!(
        ratio < 6.0,
        "{n} errors: {time_n:?}, {} errors: {time_4n:?} (ratio {ratio:.1})",
        4 * n
    );
    assert!(
        time_4n < Duration::from_secs(20),
        "{} errors took {time_4n:?}",
        4 * n
    );
    assert_eq!(human.matches("WG207(port-out-of-range)").count(), MAX_SHOWN);
    let rest = 4 * n - MAX_SHOWN;
    assert!(
        human.contains(&format!(
            "too many diagnostics: {rest} more not shown ({rest} errors, 0 warnings)"
        )),
        "{}",
        &human[human.len().saturating_sub(400)..]
    );
}

/// Issue 10 item 3: a diagnostic with labels far apart printed every line
/// between them (180 MB of output at 50,000 rules).
#[test]
fn issue10_distant_labels_get_separate_snippets() {
    let mut text = String::from("zone a { hosts 10.0.0.1 }\n");
    for i in 0..40_000 {
        let _ = writeln!(text, "# filler {i}");
    }
    text.push_str("zone a { hosts 10.0.0.2 }\n");
    let loaded = parse_str("far.ward", &text);
    assert_eq!(loaded.diagnostics.len(), 1, "{:?}", loaded.diagnostics);
    let human = render::human(&loaded.diagnostics, &loaded.sources);
    assert!(human.lines().count() < 30, "{human}");
    assert!(human.contains("first declared here"), "{human}");
    assert!(human.contains("[far.ward:1:6]"), "{human}");
    assert!(human.contains("[far.ward:40002:6]"), "{human}");
    assert!(!human.contains("filler 2"), "{human}");
}
