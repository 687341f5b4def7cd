//! The VS Code extension's TextMate grammar
//! (`editors/vscode/syntaxes/ward.tmLanguage.json`) on the examples: every
//! regular expression compiles, every line of every example is tokenized,
//! the well-formed examples leave no character unscoped or illegal, and
//! keywords, names, comments, strings, addresses, ports and dates get their
//! scopes.
//!
//! A small TextMate tokenizer: at each position the pattern whose match
//! starts first wins (the earlier pattern on a tie), `captures` scope their
//! groups, a `begin`/`end` rule scopes everything up to its end with its
//! inner patterns. The grammar uses only what it implements (no nested
//! `begin` rules, no back-references to `begin` captures). Regexes run on
//! fancy-regex, whose syntax is Oniguruma's for what the grammar uses
//! (look-around, classes, anchors).

use std::path::{Path, PathBuf};

use fancy_regex::Regex;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Pattern {
    regex: Regex,
    name: Option<String>,
    captures: Vec<(usize, String)>,
    /// A `begin` rule: its end and inner patterns.
    end: Option<(Regex, Vec<Pattern>)>,
}

fn regex(s: &str) -> Regex {
    Regex::new(s).unwrap_or_else(|e| panic!("`{s}` does not compile: {e}"))
}

/// Flattens `patterns` (following `include`s) into leaf rules.
fn patterns(list: &Value, repo: &Value) -> Vec<Pattern> {
    let mut out = Vec::new();
    for p in list.as_array().expect("patterns is a list") {
        if let Some(inc) = p["include"].as_str() {
            let key = inc.strip_prefix('#').expect("repository include");
            let entry = &repo[key];
            assert!(!entry.is_null(), "no repository entry `{key}`");
            if entry.get("patterns").is_some() && entry.get("begin").is_none() {
                out.extend(patterns(&entry["patterns"], repo));
            } else {
                out.extend(patterns(&Value::Array(vec![entry.clone()]), repo));
            }
            continue;
        }
        let name = p["name"].as_str().map(str::to_string);
        let captures = p["captures"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| (k.parse().unwrap(), v["name"].as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(m) = p["match"].as_str() {
            out.push(Pattern {
                regex: regex(m),
                name,
                captures,
                end: None,
            });
        } else if let Some(b) = p["begin"].as_str() {
            let inner = p
                .get("patterns")
                .map_or_else(Vec::new, |l| patterns(l, repo));
            out.push(Pattern {
                regex: regex(b),
                name,
                captures,
                end: Some((regex(p["end"].as_str().expect("end")), inner)),
            });
        } else if let Some(list) = p.get("patterns") {
            out.extend(patterns(list, repo));
        }
    }
    out
}

fn grammar() -> Vec<Pattern> {
    let path = root().join("editors/vscode/syntaxes/ward.tmLanguage.json");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(g["scopeName"], "source.ward");
    patterns(&g["patterns"], &g["repository"])
}

/// The earliest match at or after `pos`: (pattern index, start, end).
fn first(pats: &[Pattern], line: &str, pos: usize) -> Option<(usize, usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None;
    for (i, p) in pats.iter().enumerate() {
        if let Ok(Some(m)) = p.regex.find_from_pos(line, pos)
            && best.is_none_or(|b| m.start() < b.1)
        {
            best = Some((i, m.start(), m.end()));
        }
    }
    best
}

/// Scopes of one pattern's match over `line[start..end]`.
fn scope_match(p: &Pattern, line: &str, start: usize, scopes: &mut [Option<String>]) {
    let caps = p
        .regex
        .captures_from_pos(line, start)
        .unwrap()
        .expect("matched before");
    let whole = caps.get(0).unwrap();
    for s in &mut scopes[whole.start()..whole.end()] {
        s.clone_from(&p.name);
    }
    for (group, name) in &p.captures {
        if let Some(g) = caps.get(*group) {
            // Nested in the pattern's own scope, as TextMate does.
            let nested = match &p.name {
                Some(outer) => format!("{outer} {name}"),
                None => name.clone(),
            };
            for s in &mut scopes[g.start()..g.end()] {
                *s = Some(nested.clone());
            }
        }
    }
}

/// The scope of every byte of a line (`None`: no rule matched it).
fn tokenize(pats: &[Pattern], line: &str) -> Vec<Option<String>> {
    let mut scopes = vec![None; line.len()];
    let mut pos = 0;
    while pos < line.len() {
        let Some((i, start, end)) = first(pats, line, pos) else {
            break;
        };
        let p = &pats[i];
        scope_match(p, line, start, &mut scopes);
        let mut next = end;
        if let Some((end_re, inner)) = &p.end {
            // Inside a begin/end rule: inner patterns until the end.
            let mut at = end;
            loop {
                let close = end_re.find_from_pos(line, at).unwrap();
                let inner_first = first(inner, line, at);
                match (close, inner_first) {
                    (Some(c), Some((j, s, e))) if s < c.start() => {
                        for x in &mut scopes[at..s] {
                            x.clone_from(&p.name);
                        }
                        scope_match(&inner[j], line, s, &mut scopes);
                        at = e.max(s + 1);
                    }
                    (Some(c), _) => {
                        for x in &mut scopes[at..c.end()] {
                            x.clone_from(&p.name);
                        }
                        next = c.end();
                        break;
                    }
                    (None, _) => {
                        for x in &mut scopes[at..] {
                            x.clone_from(&p.name);
                        }
                        next = line.len();
                        break;
                    }
                }
            }
        }
        // An empty match moves on by one character.
        pos = if next > pos {
            next
        } else {
            pos + line[pos..].chars().next().map_or(1, char::len_utf8)
        };
    }
    scopes
}

fn examples() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(&root().join("examples"));
    out.sort();
    assert!(out.len() > 10, "{out:?}");
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "ward") {
            out.push(p);
        }
    }
    out
}

#[test]
fn every_line_of_the_examples_is_tokenized() {
    let pats = grammar();
    for path in examples() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let good = !path.components().any(|c| c.as_os_str() == "bad");
        for (n, line) in text.lines().enumerate() {
            let scopes = tokenize(&pats, line);
            if !good {
                continue;
            }
            for (i, c) in line.char_indices() {
                if c.is_whitespace() {
                    continue;
                }
                let s = scopes[i].as_deref().unwrap_or("none");
                assert!(
                    s != "none" && !s.starts_with("invalid"),
                    "{}:{}:{}: `{c}` is scoped {s}: {line}",
                    path.display(),
                    n + 1,
                    i + 1
                );
            }
        }
    }
}

/// The scope of every byte of `needle` (its `nth` occurrence) in the line
/// of the example that contains `line_has`; all must be the same.
fn scope(pats: &[Pattern], text: &str, line_has: &str, needle: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.contains(line_has))
        .unwrap_or_else(|| panic!("a line with `{line_has}`"));
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` in {line}"));
    let scopes = tokenize(pats, line);
    let first = scopes[at].clone().unwrap_or_default();
    for s in &scopes[at..at + needle.len()] {
        assert_eq!(
            s.as_deref().unwrap_or(""),
            first,
            "`{needle}` in `{line}` is not scoped as one token"
        );
    }
    first
}

#[test]
fn keywords_names_comments_strings_and_addresses_get_their_scopes() {
    let pats = grammar();
    let text = std::fs::read_to_string(root().join("examples/hospital.ward")).unwrap();
    let s = |line_has: &str, needle: &str| scope(&pats, &text, line_has, needle);
    assert_eq!(
        s("# St. Example", "St. Example General"),
        "comment.line.number-sign.ward"
    );
    assert_eq!(
        s("isolated  # bedside", "bedside monitors"),
        "comment.line.number-sign.ward"
    );
    assert_eq!(
        s("isolated  # bedside", "isolated"),
        "keyword.other.item.ward"
    );
    assert_eq!(s("inventory \"", "inventory"), "keyword.control.ward");
    assert_eq!(
        s("inventory \"", "\"hospital-assets.yaml\""),
        "string.quoted.double.ward"
    );
    assert_eq!(
        s("zone imaging {", "zone"),
        "keyword.control.declaration.ward"
    );
    assert_eq!(s("zone imaging {", "imaging"), "entity.name.type.ward");
    assert_eq!(s("service dicom ", "dicom"), "entity.name.type.ward");
    assert_eq!(s("service dicom ", "tcp"), "support.type.protocol.ward");
    assert_eq!(s("service dicom ", "11112"), "constant.numeric.port.ward");
    assert_eq!(
        s("service ping ", "echo-request"),
        "constant.numeric.port.ward"
    );
    assert_eq!(s("service ipsec ", "50"), "constant.numeric.port.ward");
    assert_eq!(
        s("networks 10.20.0.0/23", "10.20.0.0/23"),
        "constant.numeric.address.ipv4.ward"
    );
    assert_eq!(
        s("networks 10.20.0.0/23", "2001:db8:20::/64"),
        "constant.numeric.address.ipv6.ward"
    );
    assert_eq!(
        s("networks 10.20.0.0/23", "networks"),
        "keyword.other.item.ward"
    );
    assert_eq!(
        s("description \"CT", "\"CT, MR and X-ray modalities\""),
        "string.quoted.double.ward"
    );
    assert_eq!(
        s("criticality life-critical", "life-critical"),
        "constant.language.ward"
    );
    assert_eq!(s("until 2030-01-31", "until"), "keyword.control.ward");
    assert_eq!(
        s("until 2030-01-31", "2030-01-31"),
        "constant.numeric.date.ward"
    );
    assert_eq!(s("until 2030-01-31", "allow"), "keyword.control.ward");
    assert_eq!(s("until 2030-01-31", "->"), "keyword.operator.ward");
    assert_eq!(s("until 2030-01-31", "biomed"), "variable.other.name.ward");
    assert_eq!(
        s("require no-flow guest -> tag:medical", "no-flow"),
        "keyword.other.requirement.ward"
    );
    assert_eq!(
        s("require no-flow guest -> tag:medical", "medical"),
        "entity.name.tag.ward"
    );
    assert_eq!(
        s("require no-path world", "world"),
        "constant.language.ward"
    );
    assert_eq!(
        s("require no-path world", "life-critical"),
        "entity.name.tag.ward"
    );

    // Keywords inside names are names; a `#` in a string is no comment; an
    // address in a comment is comment.
    let line = r#"allow my-zone -> any-more : tcp/22 "ticket #42, 10.0.0.1" # 10.0.0.0/8"#;
    let s = |needle: &str| scope(&pats, line, "allow", needle);
    assert_eq!(s("my-zone"), "variable.other.name.ward");
    assert_eq!(s("any-more"), "variable.other.name.ward");
    assert_eq!(s("\"ticket #42, 10.0.0.1\""), "string.quoted.double.ward");
    assert_eq!(s("10.0.0.0/8"), "comment.line.number-sign.ward");
    assert_eq!(
        s("#"),
        "string.quoted.double.ward",
        "the first `#` is in the string"
    );
    // A stray character is illegal.
    assert_eq!(
        scope(&pats, "zone a { ; }", "zone", ";"),
        "invalid.illegal.ward"
    );
}
