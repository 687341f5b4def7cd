//! `wardgate lsp` spoken to over stdio by a small JSON-RPC client: the real
//! binary, real files in a temporary directory.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);

/// A language client on the server's stdin and stdout.
struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    /// Messages read while waiting for another.
    queue: VecDeque<Value>,
    next_id: i64,
}

impl Client {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wardgate lsp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, incoming) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("server sends content-length")];
                if r.read_exact(&mut body).is_err() {
                    return;
                }
                let v: Value = serde_json::from_slice(&body).expect("server sends JSON");
                assert_eq!(v["jsonrpc"], "2.0", "{v}");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            incoming,
            queue: VecDeque::new(),
            next_id: 1,
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    fn send(&mut self, message: &Value) {
        let body = serde_json::to_vec(message).unwrap();
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend(body);
        self.raw(&frame);
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next message that satisfies `want`; others are kept for later.
    fn wait(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.queue.iter().position(&want) {
            return self.queue.remove(i).unwrap();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .incoming
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} within {TIMEOUT:?}"));
            if want(&v) {
                return v;
            }
            self.queue.push_back(v);
        }
    }

    /// Sends a request; the whole response.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.wait(&format!("response to {method}"), |v| {
            v["id"] == id && v.get("method").is_none()
        })
    }

    /// A request's result (panics on an error response).
    fn result(&mut self, method: &str, params: Value) -> Value {
        let r = self.call(method, params);
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    fn initialize(&mut self) -> Value {
        let r = self.result(
            "initialize",
            json!({
                "processId": null,
                "rootUri": null,
                "capabilities": {},
                "initializationOptions": {"today": "2026-12-04"},
            }),
        );
        self.notify("initialized", json!({}));
        r
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Value {
        self.wait(&format!("diagnostics for {uri}"), |v| {
            v["method"] == "textDocument/publishDiagnostics" && v["params"]["uri"] == uri
        })["params"]
            .clone()
    }

    fn open(&mut self, uri: &str, text: &str) -> Value {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "ward", "version": 1, "text": text}}),
        );
        self.diagnostics(uri)
    }

    fn shutdown(mut self) -> i32 {
        self.result("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Only the server this client started, if it is still running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system's temporary directory, removed on
/// drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("wardgate-lsp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        uri(&p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Line and UTF-16 column (0-based) of the `n`th (0-based) `needle`.
fn pos(text: &str, needle: &str, n: usize) -> Value {
    let at = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("`{needle}` #{n} in the text"))
        .0;
    let line = text[..at].matches('\n').count();
    let col = text[..at]
        .rsplit('\n')
        .next()
        .unwrap()
        .encode_utf16()
        .count();
    json!({"line": line, "character": col})
}

fn range(text: &str, needle: &str, n: usize) -> Value {
    let start = pos(text, needle, n);
    let end = json!({
        "line": start["line"],
        "character": start["character"].as_u64().unwrap() + needle.encode_utf16().count() as u64,
    });
    json!({"start": start, "end": end})
}

fn codes(diags: &Value) -> Vec<String> {
    diags["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap().to_string())
        .collect()
}

fn find<'a>(diags: &'a Value, code: &str) -> &'a Value {
    diags["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == code)
        .unwrap_or_else(|| panic!("{code} in {diags}"))
}

const SERVICES: &str = "service dicom = tcp/104\nservice https = tcp/443\n";

// `pacz` is misspelt; the chain guest -> imaging -> pacs breaks the
// requirement; the last rule has expired; `lab`'s prefix has host bits
// set, after characters that make UTF-16 columns differ from byte and
// character columns.
const POLICY: &str = r#"include "services.ward"

zone imaging {
    networks 10.20.0.0/24
    tags medical
    criticality high
}

zone pacs { networks 10.30.0.0/24 }
zone guest { networks 10.99.0.0/24 }

allow imaging -> pacz : dicom
allow guest -> imaging : https
allow imaging -> pacs : dicom
require no-path guest -> pacs
allow guest -> pacs : https until 2020-01-01
zone lab { description "Labor für Bildgebung 𝄞" networks 10.40.0.1/24 }
"#;

#[test]
fn a_session_diagnostics_edits_and_every_request() {
    let dir = Dir::new("session");
    dir.write("services.ward", SERVICES);
    let main = dir.write("main.ward", POLICY);
    let mut c = Client::start();
    let init = c.initialize();
    let caps = &init["capabilities"];
    for cap in [
        "hoverProvider",
        "definitionProvider",
        "referencesProvider",
        "completionProvider",
        "documentFormattingProvider",
        "documentSymbolProvider",
        "codeActionProvider",
    ] {
        assert!(!caps[cap].is_null(), "{cap} in {caps}");
    }

    // Diagnostics with the right ranges.
    let d = c.open(&main, POLICY);
    assert_eq!(d["version"], 1);
    let undefined = find(&d, "WG203");
    assert_eq!(undefined["range"], range(POLICY, "pacz", 0));
    assert_eq!(undefined["severity"], 1);
    assert!(
        undefined["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `pacs`?"),
        "{undefined}"
    );
    // The proof: one related location per hop, at each hop's rule.
    let proof = find(&d, "WG402");
    assert_eq!(
        proof["range"]["start"],
        pos(POLICY, "require no-path", 0),
        "{proof}"
    );
    let hops = proof["relatedInformation"].as_array().unwrap();
    assert_eq!(hops.len(), 2, "{proof}");
    assert_eq!(hops[0]["location"]["uri"], main);
    assert_eq!(
        hops[0]["location"]["range"]["start"],
        pos(POLICY, "allow guest -> imaging", 0)
    );
    assert!(hops[0]["message"].as_str().unwrap().starts_with("hop 1"));
    assert_eq!(
        hops[1]["location"]["range"]["start"],
        pos(POLICY, "allow imaging -> pacs", 0)
    );
    let host_bits = find(&d, "WG206");
    assert_eq!(host_bits["range"], range(POLICY, "10.40.0.1/24", 0));
    // 58 UTF-16 units: 57 characters, 61 bytes.
    assert_eq!(host_bits["range"]["start"]["character"], 58);
    let expired = find(&d, "WG506");
    assert_eq!(
        expired["range"]["start"],
        pos(POLICY, "allow guest -> pacs", 0)
    );
    assert_eq!(expired["tags"], json!([1]));

    // The quick fix for the misspelt name.
    let fix = c.result(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": main}, "range": range(POLICY, "pacz", 0),
            "context": {"diagnostics": []}}),
    );
    assert_eq!(fix[0]["title"], "replace with `pacs`", "{fix}");
    assert_eq!(
        fix[0]["edit"]["changes"][&main][0],
        json!({"range": range(POLICY, "pacz", 0), "newText": "pacs"})
    );

    // An edit (incremental): fix the name; the error goes, the rule is now
    // the same as the next one, which is redundant.
    c.notify(
        "textDocument/didChange",
        json!({
            "textDocument": {"uri": main, "version": 2},
            "contentChanges": [{"range": range(POLICY, "pacz", 0), "text": "pacs"}],
        }),
    );
    let text = POLICY.replace("pacz", "pacs");
    let d = c.diagnostics(&main);
    assert_eq!(d["version"], 2);
    let got = codes(&d);
    assert!(!got.contains(&"WG203".to_string()), "{got:?}");
    assert!(got.contains(&"WG502".to_string()), "{got:?}");

    // Hover: a zone, a service, a rule, an `until` date.
    let at = |c: &mut Client, needle: &str, n: usize| {
        c.result(
            "textDocument/hover",
            json!({"textDocument": {"uri": main}, "position": pos(&text, needle, n)}),
        )
    };
    let h = at(&mut c, "imaging", 0)["contents"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    for want in [
        "**zone `imaging`**",
        "prefixes: 10.20.0.0/24",
        "tags: medical",
        "criticality: high",
        "mode: enforce",
        "reaches directly: `pacs`",
        "reached directly by: `guest`",
    ] {
        assert!(h.contains(want), "`{want}` in {h}");
    }
    let h = at(&mut c, "dicom", 0);
    assert!(
        h["contents"]["value"].as_str().unwrap().contains("tcp/104"),
        "{h}"
    );
    let h = at(&mut c, "allow guest -> imaging", 0);
    assert!(
        h["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("opens 1 zone pair: `guest` -> `imaging`"),
        "{h}"
    );
    let h = at(&mut c, "2020-01-01", 0);
    assert!(
        h["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("expired 2529 days ago"),
        "{h}"
    );
    assert_eq!(h["range"], range(&text, "2020-01-01", 0));

    // Definition across the include; references.
    let def = c.result(
        "textDocument/definition",
        json!({"textDocument": {"uri": main}, "position": pos(&text, "dicom", 1)}),
    );
    let services = uri(&dir.0.join("services.ward"));
    assert_eq!(def[0]["uri"], services, "{def}");
    assert_eq!(def[0]["range"], range(SERVICES, "dicom", 0));
    let refs = c.result(
        "textDocument/references",
        json!({
            "textDocument": {"uri": main},
            "position": pos(&text, "imaging", 2),
            "context": {"includeDeclaration": true},
        }),
    );
    let lines: Vec<u64> = refs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 11, 12, 13], "{refs}");

    // Completion: selectors, services, ICMP types.
    let complete = |c: &mut Client, line: &str| -> Vec<String> {
        let t = format!("{text}{line}");
        c.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": main, "version": 3}, "contentChanges": [{"text": t}]}),
        );
        let lines = t.lines().count() as u64;
        let r = c.result(
            "textDocument/completion",
            json!({
                "textDocument": {"uri": main},
                "position": {"line": lines - 1, "character": line.len()},
            }),
        );
        r.as_array()
            .unwrap()
            .iter()
            .map(|i| i["label"].as_str().unwrap().to_string())
            .collect()
    };
    let got = complete(&mut c, "allow guest -> ");
    for want in ["pacs", "imaging", "tag:medical", "world"] {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}");
    }
    let got = complete(&mut c, "allow guest -> pacs : ");
    for want in ["dicom", "https", "tcp", "ssh"] {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}");
    }
    let got = complete(&mut c, "allow guest -> pacs : icmp/");
    assert!(got.contains(&"echo-request".to_string()), "{got:?}");

    // Back to the fixed text: code actions remove the redundant and the
    // expired rule.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": main, "version": 4}, "contentChanges": [{"text": text}]}),
    );
    let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": 99, "character": 0}});
    let actions = c.result(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": main}, "range": whole, "context": {"diagnostics": []}}),
    );
    let titles: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"remove the expired rule"), "{titles:?}");
    assert!(
        titles.contains(&"remove the rule that does nothing"),
        "{titles:?}"
    );
    let expired = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "remove the expired rule")
        .unwrap();
    let edit = &expired["edit"]["changes"][&main][0];
    assert_eq!(edit["newText"], "");
    assert_eq!(edit["range"]["start"], pos(&text, "allow guest -> pacs", 0));
    assert_eq!(edit["range"]["end"]["line"], 16);

    // Document symbols: the root file's statements.
    let syms = c.result(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": main}}),
    );
    let names: Vec<&str> = syms
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &names[..4],
        ["include services.ward", "imaging", "pacs", "guest"]
    );
    assert_eq!(names.len(), 10, "{names:?}");

    // Formatting: `wardgate fmt`'s text.
    let messy =
        "zone a {networks 10.0.0.0/8}\nzone   b { networks 10.1.0.0/16 }\nallow a->b:tcp/22\n";
    let other = dir.write("messy.ward", messy);
    c.open(&other, messy);
    let edits = c.result(
        "textDocument/formatting",
        json!({"textDocument": {"uri": other}, "options": {"tabSize": 4, "insertSpaces": true}}),
    );
    assert_eq!(
        edits[0]["newText"],
        wardgate_lang::fmt::format_source(messy).unwrap()
    );
    assert_eq!(edits[0]["range"]["end"], json!({"line": 3, "character": 0}));

    // Closing a document clears its diagnostics.
    c.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": main}}),
    );
    // (Earlier publications may still be queued: the clearing one has no
    // version.)
    let d = loop {
        let d = c.diagnostics(&main);
        if d["version"].is_null() {
            break d;
        }
    };
    assert_eq!(d["diagnostics"], json!([]));

    assert_eq!(c.shutdown(), 0);
}

#[test]
fn unsaved_text_of_an_open_include_is_used() {
    let dir = Dir::new("overlay");
    let services = dir.write("services.ward", SERVICES);
    let main = dir.write("main.ward", POLICY);
    let mut c = Client::start();
    c.initialize();
    c.open(&main, POLICY);
    // The editor renames `dicom` in the include without saving: the root
    // now refers to an undefined service.
    c.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": services, "languageId": "ward", "version": 1,
            "text": SERVICES.replace("dicom", "dicom2")}}),
    );
    let d = loop {
        let d = c.diagnostics(&main);
        if codes(&d).contains(&"WG204".to_string()) {
            break d;
        }
    };
    assert_eq!(find(&d, "WG204")["range"], range(POLICY, "dicom", 0));
    assert_eq!(c.shutdown(), 0);
}

#[test]
fn a_half_typed_statement_hides_nothing_else() {
    let dir = Dir::new("partial");
    dir.write("services.ward", SERVICES);
    let text = POLICY.replace(
        "allow guest -> imaging : https\n",
        "allow guest -> imaging : https\nallow guest -> \nzone lab {\n",
    );
    let main = dir.write("main.ward", &text);
    let mut c = Client::start();
    c.initialize();
    let d = c.open(&main, &text);
    let got = codes(&d);
    // The syntax error, and every finding of the rest: the name error, the
    // proof, the expired rule.
    for want in ["WG101", "WG203", "WG402", "WG506"] {
        assert!(got.contains(&want.to_string()), "{want} in {got:?}");
    }
    // `allow guest -> ` ends where the next line's `zone` is no selector.
    assert_eq!(find(&d, "WG101")["range"], range(&text, "zone", 3));
    // Hovers and symbols after the broken lines.
    let h = c.result(
        "textDocument/hover",
        json!({"textDocument": {"uri": main}, "position": pos(&text, "pacs", 3)}),
    );
    assert!(
        h["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("reached directly by: `imaging`"),
        "{h}"
    );
    let syms = c.result(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": main}}),
    );
    let names: Vec<&str> = syms
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"require no-path guest -> pacs"),
        "{names:?}"
    );
    assert_eq!(c.shutdown(), 0);
}

#[test]
fn bad_input_gets_an_error_and_the_server_keeps_answering() {
    let dir = Dir::new("bad");
    let mut c = Client::start();
    // Before `initialize`.
    let r = c.call("textDocument/hover", json!({}));
    assert_eq!(r["error"]["code"], -32002, "{r}");
    c.initialize();

    // Not JSON.
    c.raw(b"Content-Length: 9\r\n\r\n{not json");
    let r = c.wait("parse error", |v| {
        v["id"].is_null() && v.get("error").is_some()
    });
    assert_eq!(r["error"]["code"], -32700, "{r}");
    // A content length that is not a number.
    c.raw(b"Content-Length: lots\r\n\r\n");
    let r = c.wait("parse error", |v| {
        v["id"].is_null() && v.get("error").is_some()
    });
    assert_eq!(r["error"]["code"], -32700, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("content-length")
    );
    // A document that is not UTF-8.
    let mut body = br#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///x.ward","languageId":"ward","version":1,"text":""#.to_vec();
    body.extend(b"zone \xff\xfe {}");
    body.extend(br#""}}}"#);
    let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    frame.extend(body);
    c.raw(&frame);
    let r = c.wait("parse error", |v| {
        v["id"].is_null() && v.get("error").is_some()
    });
    assert_eq!(r["error"]["code"], -32700, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("UTF-8"),
        "{r}"
    );
    // JSON that is not a message.
    c.send(&json!([1, 2, 3]));
    let r = c.wait("invalid request", |v| {
        v["id"].is_null() && v.get("error").is_some()
    });
    assert_eq!(r["error"]["code"], -32600, "{r}");
    // An unknown method; bad parameters.
    let r = c.call("textDocument/teleport", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let r = c.call("textDocument/hover", json!({"position": "here"}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // A request about a document that is not open.
    let r = c.result(
        "textDocument/hover",
        json!({"textDocument": {"uri": "file:///nowhere.ward"}, "position": {"line": 0, "character": 0}}),
    );
    assert!(r.is_null());

    // An include that does not exist, and an include that is not UTF-8:
    // diagnostics.
    std::fs::write(dir.0.join("latin1.ward"), b"# caf\xe9\n").unwrap();
    let text =
        "include \"missing.ward\"\ninclude \"latin1.ward\"\nzone a { networks 10.0.0.0/8 }\n";
    let main = dir.write("main.ward", text);
    let d = c.open(&main, text);
    let missing = find(&d, "WG215");
    assert_eq!(missing["range"], range(text, "\"missing.ward\"", 0));
    let got = codes(&d);
    assert_eq!(got.iter().filter(|c| *c == "WG215").count(), 2, "{d}");
    assert!(d.to_string().contains("UTF-8"), "{d}");

    // Still answering.
    let h = c.result(
        "textDocument/hover",
        json!({"textDocument": {"uri": main}, "position": pos(text, "a {", 0)}),
    );
    assert!(
        h["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("zone `a`"),
        "{h}"
    );
    assert_eq!(c.shutdown(), 0);
}

#[test]
fn exit_without_shutdown_is_exit_code_1() {
    let mut c = Client::start();
    c.initialize();
    c.notify("exit", Value::Null);
    let deadline = Instant::now() + TIMEOUT;
    let code = loop {
        if let Some(s) = c.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(code, Some(1));
}
