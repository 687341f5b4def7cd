//! `wardgate import mud` on real, public MUD files (NIST's reference
//! implementation and osMUD, `fixtures/mud/README.md` names the sources):
//! every file imports, the fragments are snapshots, and several files are
//! checked by hand against what they declare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wardgate_compiler::mud::{self, Bindings, Imported, Initiator, Section};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mud")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(fixtures().join(rel)).unwrap()
}

fn site_bindings() -> Bindings {
    Bindings::parse(&read("site-bindings.yaml")).unwrap()
}

fn import(rel: &str, bindings: &Bindings) -> Imported {
    let doc = mud::parse(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    mud::import(&doc, bindings)
}

/// The rules a file imports to, with the site bindings, for a zone `dev`.
fn rules_of(rel: &str) -> Vec<String> {
    import(rel, &site_bindings())
        .flows
        .iter()
        .map(|f| mud::import::rule_text("dev", f))
        .collect()
}

fn fragment(rel: &str, zone: &str, imported: &Imported) -> String {
    let none = BTreeMap::new();
    mud::render(
        zone,
        &[Section {
            file: rel,
            imported,
            withheld: &none,
        }],
    )
}

/// Every MUD file among the fixtures (not the bad ones).
fn real_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["nist-mud", "osmud"] {
        for entry in walk(&fixtures().join(dir)) {
            let name = entry.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("mudfile") || dir == "osmud" {
                files.push(
                    entry
                        .strip_prefix(fixtures())
                        .unwrap()
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
    }
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
    out
}

/// The site policy with a fragment appended, checked by the compiler.
fn check_with_site(fragment: &str) -> Vec<String> {
    let site = read("site.ward");
    let text = format!("{site}\n{fragment}");
    let loaded = wardgate_lang::parse_str("site.ward", &text);
    let mut errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    let analysis = wardgate_compiler::analyze(&loaded, &wardgate_compiler::Options::default());
    errors.extend(
        analysis
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone()),
    );
    errors
}

#[test]
fn every_real_file_imports_and_checks_with_the_site() {
    let files = real_files();
    assert_eq!(files.len(), 13, "{files:?}");
    let bindings = site_bindings();
    for rel in &files {
        let imported = import(rel, &bindings);
        let text = fragment(rel, "dev", &imported);
        // The only ACEs left out are the two of `mudfile.json` that restrict
        // the initiator's port (checked by hand below).
        if rel.ends_with("mud-local-networks-test/mudfile.json") {
            assert_eq!(imported.problems.len(), 2, "{rel}: {:?}", imported.problems);
        } else {
            assert!(
                imported.problems.is_empty(),
                "{rel}: {:?}",
                imported.problems
            );
        }
        assert!(!imported.flows.is_empty(), "{rel}");
        // The fragment parses and checks with the site policy (the
        // requirement there is about `tag:medical`, which no MUD file here
        // reaches except through `lan`; see the `--policy` test).
        let errors: Vec<String> = check_with_site(&text)
            .into_iter()
            .filter(|e| !e.contains("is violated"))
            .collect();
        assert!(errors.is_empty(), "{rel}: {errors:?}\n{text}");
        insta::assert_snapshot!(rel.replace(['/', '.'], "_"), text);
    }
}

#[test]
fn without_bindings_every_ace_is_reported_never_widened() {
    let none = Bindings::default();
    for rel in real_files() {
        let imported = import(&rel, &none);
        assert!(imported.flows.is_empty(), "{rel}: {:?}", imported.flows);
        let doc = mud::parse(&read(&rel)).unwrap();
        let aces: usize = doc.acls.acl.iter().map(|a| a.aces.ace.len()).sum();
        assert_eq!(imported.problems.len(), aces, "{rel}");
        let text = fragment(&rel, "dev", &imported);
        assert!(
            !text.lines().any(|l| l.starts_with("allow")),
            "{rel}:\n{text}"
        );
    }
}

/// `mud-dns-test`: TCP to `www.nist.local` port 80, opened by the device
/// (`direction-initiated: from-device`); the reply ACE names port 80 as its
/// source port. One rule naming both ACEs.
#[test]
fn hand_checked_dns_test() {
    let i = import(
        "nist-mud/mud-dns-test/mudfile-dns-test.json",
        &site_bindings(),
    );
    assert_eq!(i.url, "https://mud-dns-test.antd.nist.gov/super1");
    assert_eq!(i.manufacturer, "NIST");
    assert_eq!(i.flows.len(), 1);
    let f = &i.flows[0];
    assert_eq!(f.initiator, Initiator::Device);
    assert_eq!(f.peer, ["web"]);
    assert_eq!(f.services, ["tcp/80"]);
    let names: Vec<&str> = f.aces.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["cl0-frdev", "cl0-todev"]);
    assert_eq!(
        mud::import::rule_text("dev", f),
        "allow dev -> web : tcp/80"
    );
}

/// `mud-tcp-direction-test`: `loc0` is opened by the device to port 800 of
/// the local networks, `loc1` by the local networks to port 8000 of the
/// device.
#[test]
fn hand_checked_tcp_direction() {
    let rules = rules_of("nist-mud/mud-tcp-direction-test/mudfile-tcp-direction-test.json");
    assert_eq!(
        rules,
        [
            "allow dev -> lan, printers : tcp/800",
            "allow lan, printers -> dev : tcp/8000"
        ]
    );
}

/// `mud-mfg-test`: UDP 8008 to the toothbrush maker (no direction: the
/// from-device ACE names the destination port, the to-device ACE the source
/// port of the replies), TCP 8010 to the hairbrush maker.
#[test]
fn hand_checked_manufacturer() {
    let rules = rules_of("nist-mud/mud-mfg-test/mudfile-mfg-test.json");
    assert_eq!(
        rules,
        [
            "allow dev -> tag:toothbrush : udp/8008",
            "allow dev -> tag:hairbrush : tcp/8010"
        ]
    );
}

/// osMUD's lightbulb: the draft layout (`access-lists`, `rule-name`,
/// `ipv6-acl`, `*-port-range-or-operator`).
#[test]
fn hand_checked_osmud_draft_layout() {
    let i = import("osmud/lightbulb2000.json", &site_bindings());
    assert!(i.problems.is_empty(), "{:?}", i.problems);
    assert_eq!(i.flows.len(), 1);
    assert_eq!(
        mud::import::rule_text("bulb", &i.flows[0]),
        "allow bulb -> bms-cloud : tcp/443"
    );
}

/// `mud-local-networks-test/mudfile.json`: `loc0` lets the local networks
/// open connections *from* port 80 to any port of the device: the policy
/// language cannot restrict a source port, so both ACEs are reported.
#[test]
fn hand_checked_initiator_port_is_reported() {
    let i = import(
        "nist-mud/mud-local-networks-test/mudfile.json",
        &site_bindings(),
    );
    let names: Vec<&str> = i.problems.iter().map(|p| p.ace.as_str()).collect();
    assert_eq!(names, ["loc0-frdev", "loc0-todev"]);
    assert!(
        i.problems[0].message.contains("port 80"),
        "{:?}",
        i.problems
    );
    assert_eq!(i.flows.len(), 1);
    assert_eq!(i.flows[0].peer, ["world"], "www.nist.gov is bound to world");
}

/// NIST's quarantine extension: what stays allowed is spelled out.
#[test]
fn hand_checked_quarantine() {
    let i = import(
        "nist-mud/mud-quarantine-test/mudfile-quarantine-test.json",
        &site_bindings(),
    );
    let q = mud::import::quarantine_text("dev", &i).unwrap();
    assert!(q.contains("cl0-todev, cl0-frdev"), "{q}");
    assert!(q.contains("\n  allow dev -> web : tcp/800"), "{q}");
    assert!(
        !q.contains("tcp/80\n"),
        "loc0 is not kept under quarantine: {q}"
    );
}

/// The hybrid layout, an Ethernet-only ACE, a `drop`, a header field and
/// every other peer kind.
#[test]
fn hybrid_layout_and_inexpressible_matches() {
    let bindings = Bindings::parse(&read("pump-bindings.yaml")).unwrap();
    let i = import("hybrid-eapol.json", &bindings);
    let problems: Vec<(&str, &str)> = i
        .problems
        .iter()
        .map(|p| (p.ace.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(problems[0].0, "eapol-frdev");
    assert!(problems[0].1.contains("Ethernet-only"));
    assert_eq!(problems[1].0, "syslog-frdev");
    assert!(problems[1].1.contains("`dscp`"));
    assert_eq!(problems[2].0, "telnet-frdev");
    assert!(problems[2].1.contains("drop"));
    let rules: Vec<String> = i
        .flows
        .iter()
        .map(|f| mud::import::rule_text("pumps", f))
        .collect();
    assert_eq!(
        rules,
        [
            "allow pumps -> drug-library : tcp/8443-8444",
            "allow pumps -> pump-server : icmpv6/128",
            "allow pumps -> world : tcp/0-79, tcp/81-65535",
            "allow nurse-stations -> pumps : tcp/9000",
        ]
    );
    assert_eq!(
        i.flows[0].aces.len(),
        2,
        "both halves of the drug library flow"
    );
}

#[test]
fn bad_input_is_a_clear_error_with_the_json_path() {
    let cases = [
        ("bad/not-json.json", ".", "not JSON"),
        ("bad/truncated.json", ".", "not JSON"),
        ("bad/not-mud.json", "name", "not a MUD file"),
        (
            "bad/unknown-key.json",
            "ietf-access-control-list:acls.acl[0].aces.ace[0].matches.tcp.destinaton-port",
            "unknown field `destinaton-port`",
        ),
        (
            "bad/wrong-type.json",
            "ietf-access-control-list:acls.acl[0].aces.ace[0].matches.ipv4.protocol",
            "invalid type",
        ),
        (
            "bad/missing-acl.json",
            "ietf-mud:mud.from-device-policy.access-lists.access-list[0].name",
            "no ACL is named `no-such-acl`",
        ),
        (
            "bad/port-out-of-range.json",
            "ietf-access-control-list:acls.acl[0].aces.ace[0].matches.tcp.source-port.port",
            "70000",
        ),
    ];
    for (rel, path, words) in cases {
        let e = mud::parse(&read(rel)).expect_err(rel);
        assert_eq!(e.path, path, "{rel}: {e}");
        assert!(e.message.contains(words), "{rel}: {e}");
        if path != "." {
            assert!(e.message.contains(&format!("`{path}`")), "{rel}: {e}");
        }
    }
}

#[test]
fn bad_bindings_are_clear_errors() {
    assert!(Bindings::parse("local-networks: [world, lan, tag:x]\n").is_ok());
    let cases = [
        ("local-networks: any\n", "`any` is not a binding"),
        (
            "dnsname:\n  a.example: \"no such\"\n",
            "at `dnsname.a.example`",
        ),
        ("controlers: {}\n", "unknown field `controlers`"),
        ("local-networks: []\n", "an empty list binds nothing"),
        ("dnsname: [a, b]\n", "at `dnsname`"),
        (
            "local-networks: [lan, tag:zone]\n",
            "`tag:zone` is not a zone name",
        ),
        ("local-networks: [lan, tcp]\n", "`tcp` is not a zone name"),
    ];
    for (text, words) in cases {
        let e = Bindings::parse(text).expect_err(text);
        assert!(e.to_string().contains(words), "{text}: {e}");
    }
}

/// `--policy`: an ACE whose rule would break a site requirement is withheld
/// with the chain; the others are added.
#[test]
fn rules_that_break_a_requirement_are_withheld() {
    let rules = rules_of("nist-mud/mud-mycontrollerclass-test/mudfile-mycontrollerclass-test.json");
    let verdicts = mud::check::withhold(
        &fixtures().join("site.ward"),
        &mut |p: &Path| std::fs::read_to_string(p),
        &rules,
        None,
    )
    .unwrap();
    let withheld: Vec<(&str, &str)> = rules
        .iter()
        .zip(&verdicts)
        .filter_map(|(r, v)| v.as_deref().map(|v| (r.as_str(), v)))
        .collect();
    assert_eq!(withheld.len(), 1, "{withheld:?}");
    assert_eq!(withheld[0].0, "allow dev -> lan, printers : udp/8000");
    assert!(
        withheld[0]
            .1
            .starts_with("would break `require no-path dev -> tag:medical`: dev -> lan (imported), lan -> pumps ("),
        "{}",
        withheld[0].1
    );
}

/// A bound zone the site does not declare is an error, not a silent drop.
#[test]
fn a_binding_to_an_undeclared_zone_is_an_error() {
    let e = mud::check::withhold(
        &fixtures().join("site.ward"),
        &mut |p: &Path| std::fs::read_to_string(p),
        &["allow dev -> nowhere : tcp/80".to_string()],
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("nowhere"), "{e}");
}

/// The allowed flows of `zone` with other zones: (peer name, opened by the
/// zone, protocol) to the allowed port (or ICMP type) ranges.
type FlowSet = BTreeMap<(String, bool, u32), Vec<(u16, u16)>>;

fn flows_of(analysis: &wardgate_compiler::Analysis, zone: &str) -> FlowSet {
    let p = &analysis.policy;
    let z = p.zone_id(zone).unwrap();
    let mut out = FlowSet::new();
    for (key, intervals) in &analysis.lowered.as_ref().unwrap().tables {
        let (s, d) = (key.src_zone, key.dst_zone);
        let (peer, outbound) = match (s == z, d == z) {
            (true, false) => (d, true),
            (false, true) => (s, false),
            _ => continue,
        };
        let mut allowed: Vec<(u16, u16)> = intervals
            .iter()
            .filter(|i| i.verdict == wardgate_common::VERDICT_ALLOW)
            .map(|i| (i.lo, i.hi))
            .collect();
        // Join adjacent intervals (the tables split at every rule boundary).
        allowed.sort_unstable();
        let mut joined: Vec<(u16, u16)> = Vec::new();
        for (lo, hi) in allowed {
            match joined.last_mut() {
                Some(l) if u32::from(lo) == u32::from(l.1) + 1 => l.1 = hi,
                _ => joined.push((lo, hi)),
            }
        }
        if !joined.is_empty() {
            out.insert((p.zone(peer).name.clone(), outbound, key.proto), joined);
        }
    }
    out
}

fn analyze_text(text: &str) -> wardgate_compiler::Analysis {
    let loaded = wardgate_lang::parse_str("policy.ward", text);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let a = wardgate_compiler::analyze(&loaded, &wardgate_compiler::Options::default());
    assert!(!a.has_errors(), "{:?}\n{text}", a.diagnostics);
    a
}

/// Export then import gives back the same flows: the pump's allowed
/// (peer, direction, protocol, ports) with its own rules, and with the rules
/// imported from its exported MUD file instead.
#[test]
fn export_then_import_gives_back_the_same_flows() {
    let dir = fixtures().join("roundtrip");
    let zones = std::fs::read_to_string(dir.join("zones.ward")).unwrap();
    let device = std::fs::read_to_string(dir.join("device.ward")).unwrap();
    let original = analyze_text(&format!("{zones}\n{device}"));
    let today = wardgate_lang::date::Date::today_utc();
    let exported = mud::export::export(
        &original,
        "pump",
        "https://pumps.example.com/.well-known/mud/pump",
        today,
    )
    .unwrap();
    assert!(exported.problems.is_empty(), "{:?}", exported.problems);
    let json = serde_json::to_string_pretty(&exported.document).unwrap();
    let doc = mud::parse(&json).unwrap();
    let bindings = Bindings::parse(&exported.bindings).unwrap();
    let imported = mud::import(&doc, &bindings);
    assert!(imported.problems.is_empty(), "{:?}", imported.problems);
    let text = fragment("pump.json", "pump", &imported);
    let again = analyze_text(&format!("{zones}\n{text}"));
    let before = flows_of(&original, "pump");
    assert_eq!(before, flows_of(&again, "pump"), "{text}");
    // The flows are the ones device.ward declares (the deny holes included).
    assert_eq!(
        before.get(&("server".to_string(), true, 17)),
        Some(&vec![(514, 514), (6000, 6049), (6051, 6100)])
    );
    assert_eq!(
        before.get(&("biomed".to_string(), false, 6)),
        Some(&vec![(0, 22), (24, u16::MAX)])
    );
    assert_eq!(before.len(), 8, "{before:?}");
}

/// What MUD cannot say is reported, not widened: an `any` narrowed by a deny.
#[test]
fn export_reports_what_mud_cannot_say() {
    let a = analyze_text(
        "zone pump { hosts 10.9.1.5 }\nzone lab { hosts 10.9.2.5 }\n\
         allow pump -> lab : any\ndeny pump -> lab : tcp/23\n",
    );
    let e = mud::export::export(
        &a,
        "pump",
        "https://x.example/pump",
        wardgate_lang::date::Date::today_utc(),
    )
    .unwrap();
    assert_eq!(e.problems.len(), 1, "{:?}", e.problems);
    assert!(
        e.problems[0].starts_with("pump -> lab: every protocol but some"),
        "{:?}",
        e.problems
    );
    // The TCP part that the deny narrows is still exported exactly.
    let doc = mud::parse(&serde_json::to_string(&e.document).unwrap()).unwrap();
    let i = mud::import(&doc, &Bindings::parse(&e.bindings).unwrap());
    let rules: Vec<String> = i
        .flows
        .iter()
        .map(|f| mud::import::rule_text("pump", f))
        .collect();
    assert_eq!(
        rules,
        [
            "allow pump -> lab : tcp/0-22",
            "allow pump -> lab : tcp/24-65535"
        ]
    );
}

/// Bad input changes nothing: an existing output file keeps its content and
/// the exit code is 2.
#[test]
fn bad_input_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("wardgate-mud-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.ward");
    std::fs::write(&out, "# before\n").unwrap();
    let good = fixtures().join("osmud/lightbulb2000.json");
    for (files, bindings) in [
        (
            vec![good.clone(), fixtures().join("bad/wrong-type.json")],
            None,
        ),
        (
            vec![good.clone()],
            Some(fixtures().join("bad/not-mud.json")),
        ),
        (vec![good.clone(), dir.join("missing.json")], None),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wardgate"));
        cmd.args(["import", "mud"])
            .args(&files)
            .args(["--zone", "bulb", "-o"])
            .arg(&out);
        if let Some(b) = &bindings {
            cmd.arg("--bindings").arg(b);
        }
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{files:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "# before\n");
    }
    // Good input writes the fragment (exit 1: its ACEs have no binding).
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["import", "mud"])
        .arg(&good)
        .args(["--zone", "bulb", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("# not imported: ACE cl0-frdev")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The worked example of `docs/mud.md` runs as shown: its `site.ward` and
/// `bindings.yaml` blocks are written to a scratch directory with osMUD's
/// lightbulb file, and every command of its `console` blocks must print
/// what the page shows.
#[test]
fn docs_worked_example_runs_as_shown() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/mud.md"))
            .unwrap();
    let section = page
        .split("## Worked example")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("wardgate-mud-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixtures().join("osmud/lightbulb2000.json"),
        dir.join("lightbulb2000.json"),
    )
    .unwrap();
    // The site includes the fragment before it exists: `--policy` reads the
    // file `-o` replaces as empty.
    let mut commands = 0;
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = line.strip_prefix("```") else {
            continue;
        };
        let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        match kind {
            "ward" | "yaml" => {
                let name = block[0].trim_start_matches("# ");
                std::fs::write(dir.join(name), block.join("\n") + "\n").unwrap();
            }
            "console" => {
                let mut i = 0;
                while i < block.len() {
                    let cmd = block[i].strip_prefix("$ ").expect("a command line");
                    let expected: Vec<&str> = block[i + 1..]
                        .iter()
                        .take_while(|l| !l.starts_with("$ "))
                        .copied()
                        .collect();
                    i += 1 + expected.len();
                    let args: Vec<&str> = cmd.split_whitespace().collect();
                    let got = if args[0] == "cat" {
                        std::fs::read_to_string(dir.join(args[1])).unwrap()
                    } else {
                        assert_eq!(args[0], "wardgate");
                        let o = std::process::Command::new(env!("CARGO_BIN_EXE_wardgate"))
                            .args(&args[1..])
                            .current_dir(&dir)
                            .env("NO_COLOR", "1")
                            .output()
                            .unwrap();
                        assert!(
                            o.status.success(),
                            "{cmd}: {}",
                            String::from_utf8_lossy(&o.stderr)
                        );
                        String::from_utf8(o.stdout).unwrap()
                    };
                    commands += 1;
                    let want = expected.join("\n");
                    assert_eq!(got.trim_end(), want.trim_end(), "{cmd}");
                }
            }
            _ => {}
        }
    }
    assert_eq!(commands, 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `-o` naming the site policy itself is refused before anything is written.
#[test]
fn output_over_the_site_policy_is_refused() {
    let dir = std::env::temp_dir().join(format!("wardgate-mud-site-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let site = dir.join("site.ward");
    std::fs::write(&site, read("site.ward")).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["import", "mud"])
        .arg(fixtures().join("osmud/lightbulb2000.json"))
        .args(["--zone", "dev", "--bindings"])
        .arg(fixtures().join("site-bindings.yaml"))
        .arg("--policy")
        .arg(&site)
        .arg("-o")
        .arg(dir.join(".").join("site.ward"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("would overwrite the site policy"));
    assert_eq!(std::fs::read_to_string(&site).unwrap(), read("site.ward"));
    std::fs::remove_dir_all(&dir).unwrap();
}
