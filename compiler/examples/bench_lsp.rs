//! Language server latency: from an edit to its diagnostics, for a
//! generated policy (200 zones and 1,000 rules by default), against `check`
//! on the same text.
//!
//! ```text
//! cargo run --release -p wardgate-compiler --example bench_lsp
//! cargo run --release -p wardgate-compiler --example bench_lsp -- 1000 5000
//! ```
//!
//! The server runs in-process (`wardgate_compiler::lsp::serve`, what
//! `wardgate lsp` runs) on OS pipes; the client sends `didChange` with one
//! line changed, as an editor does, and waits for the `publishDiagnostics`
//! of that version. Exits 1 if the median is above 50 ms.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "bench_compiler.rs"]
#[allow(dead_code)]
mod compiler_bench;

const EDITS: usize = 40;
const TARGET: Duration = Duration::from_millis(50);

fn send(w: &mut impl Write, v: &Value) {
    let body = serde_json::to_vec(v).unwrap();
    write!(w, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
    w.write_all(&body).unwrap();
    w.flush().unwrap();
}

fn recv(r: &mut impl BufRead) -> Value {
    let mut length = 0;
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "server ended");
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Waits for the diagnostics of `version`; returns how many there were.
fn diagnostics(r: &mut impl BufRead, version: i64) -> usize {
    loop {
        let v = recv(r);
        if v["method"] == "textDocument/publishDiagnostics" && v["params"]["version"] == version {
            return v["params"]["diagnostics"].as_array().unwrap().len();
        }
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ZONES RULES"))
        .collect();
    let (zones, rules) = match args[..] {
        [z, r] => (z, r),
        [] => (200, 1000),
        _ => panic!("usage: bench_lsp [ZONES RULES]"),
    };
    let text = compiler_bench::generate(zones, rules);
    let path = Path::new("/bench/policy.ward");

    // Baseline: `check` (load, analyse, suppressions) on the same text.
    let mut check_times = Vec::new();
    for _ in 0..EDITS {
        let t = Instant::now();
        let loaded = wardgate_lang::load_with(path, &mut |_| Ok(text.clone())).unwrap();
        let opts = wardgate_compiler::Options {
            today: Some(wardgate_lang::date::Date::today_utc()),
        };
        let mut diags = loaded.diagnostics.clone();
        diags.extend(wardgate_compiler::analyze(&loaded, &opts).diagnostics);
        loaded.suppress(&mut diags, &wardgate_compiler::lsp::documents::all_codes());
        std::hint::black_box(diags);
        check_times.push(t.elapsed());
    }

    let (client_in, server_out) = std::io::pipe().unwrap();
    let (server_in, mut client_out) = std::io::pipe().unwrap();
    let server = std::thread::spawn(move || {
        wardgate_compiler::lsp::serve(BufReader::new(server_in), server_out).unwrap()
    });
    let mut r = BufReader::new(client_in);
    let uri = "file:///bench/policy.ward";
    send(
        &mut client_out,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"processId": null, "rootUri": null, "capabilities": {}}}),
    );
    recv(&mut r);
    let t = Instant::now();
    send(
        &mut client_out,
        &json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument":
            {"uri": uri, "languageId": "ward", "version": 1, "text": text}}}),
    );
    let found = diagnostics(&mut r, 1);
    let open = t.elapsed();

    // Each edit rewrites one rule's line (the last rules: `allow ... : ...`).
    let lines: Vec<&str> = text.lines().collect();
    let rule_lines: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("allow "))
        .collect();
    let mut edit_times = Vec::new();
    for e in 0..EDITS {
        let line = rule_lines[rule_lines.len() - 1 - (e * 7) % rule_lines.len()];
        let new = format!("{} # edit {e}", lines[line]);
        let version = 2 + e as i64;
        let t = Instant::now();
        send(
            &mut client_out,
            &json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{
                    "range": {"start": {"line": line, "character": 0},
                              "end": {"line": line, "character": lines[line].len()}},
                    "text": new,
                }],
            }}),
        );
        diagnostics(&mut r, version);
        edit_times.push(t.elapsed());
        // Undo, so that every edit starts from the generated text.
        send(
            &mut client_out,
            &json!({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
                "textDocument": {"uri": uri, "version": 1000 + version},
                "contentChanges": [{"text": text}],
            }}),
        );
        diagnostics(&mut r, 1000 + version);
    }
    send(
        &mut client_out,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}),
    );
    send(
        &mut client_out,
        &json!({"jsonrpc": "2.0", "method": "exit"}),
    );
    drop(client_out);
    assert!(server.join().unwrap());

    let max = *edit_times.iter().max().unwrap();
    let edit = median(&mut edit_times);
    let check = median(&mut check_times);
    println!(
        "{zones} zones, {rules} rules, {} bytes, {found} diagnostics",
        text.len()
    );
    println!("| what | median | max |");
    println!("| --- | ---: | ---: |");
    println!(
        "| `check` in-process (load + analyse) | {} | {} |",
        ms(check),
        ms(*check_times.iter().max().unwrap())
    );
    println!("| didOpen -> publishDiagnostics | {} | |", ms(open));
    println!(
        "| didChange (one line) -> publishDiagnostics | {} | {} |",
        ms(edit),
        ms(max)
    );
    if edit > TARGET {
        eprintln!("median above the {} target", ms(TARGET));
        std::process::exit(1);
    }
}
