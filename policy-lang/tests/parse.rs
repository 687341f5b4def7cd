//! Parser, loader and checks: the cases of docs/language.md one by one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use wardgate_lang::ast::{
    Action, Criticality, IpNetwork, Mode, PortRange, RequireKind, Selector, ServiceAtom, Statement,
};
use wardgate_lang::{Loaded, parse_str};

fn clean(text: &str) -> Loaded {
    let loaded = parse_str("t.ward", text);
    assert!(
        loaded.diagnostics.is_empty(),
        "{text}\n{:#?}",
        loaded.diagnostics
    );
    loaded
}

fn codes(loaded: &Loaded) -> Vec<&'static str> {
    loaded.diagnostics.iter().map(|d| d.code).collect()
}

/// (line, column) of each diagnostic.
fn positions(loaded: &Loaded) -> Vec<(usize, usize)> {
    loaded
        .diagnostics
        .iter()
        .map(|d| {
            let lc = loaded.sources.start(d.primary);
            (lc.line, lc.column)
        })
        .collect()
}

/// Loads `root.ward` from an in-memory file system.
fn load_mem(files: &[(&str, &str)]) -> Loaded {
    let map: HashMap<String, String> = files
        .iter()
        .map(|(p, t)| ((*p).to_string(), (*t).to_string()))
        .collect();
    wardgate_lang::load_with(Path::new("root.ward"), &mut |p: &Path| {
        map.get(p.to_str().unwrap())
            .cloned()
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    })
    .unwrap()
}

#[test]
fn first_look_example_of_language_md_parses_clean() {
    let loaded = clean(include_str!("fixtures/first-look.ward"));
    assert_eq!(loaded.policy.zones.len(), 7);
    assert_eq!(loaded.policy.rules.len(), 6);
    assert_eq!(loaded.policy.requirements.len(), 2);
    assert_eq!(loaded.files[0].comments.len(), 4);
    let infusion = loaded.policy.zone("infusion").unwrap();
    assert!(infusion.is_isolated());
    assert_eq!(infusion.mode(), Mode::Monitor);
    assert!(infusion.has_tag("life-critical"));
    let imaging = loaded.policy.zone("imaging").unwrap();
    assert_eq!(imaging.criticality(), Some(Criticality::High));
    assert_eq!(imaging.description(), Some("CT, MR and X-ray modalities"));
    let biomed_rule = &loaded.policy.rules[3];
    assert_eq!(
        biomed_rule.until.as_ref().unwrap().to_string(),
        "2027-01-31"
    );
    assert_eq!(
        biomed_rule.comment.as_ref().unwrap().node,
        "vendor maintenance window"
    );
    assert_eq!(loaded.policy.rules[5].action.node, Action::Deny);
    assert_eq!(loaded.policy.requirements[1].kind.node, RequireKind::NoPath);
}

#[test]
fn every_service_form() {
    let loaded = clean(
        "service s = tcp/443, tcp/1000-2000, udp, sctp/9, icmp, icmp/echo-request, icmp/3, icmpv6/packet-too-big, icmpv6, proto/50, any, t\nservice t = udp/0, tcp/65535",
    );
    let atoms: Vec<ServiceAtom> = loaded.policy.services[0]
        .atoms
        .iter()
        .map(|a| a.node.clone())
        .collect();
    assert_eq!(atoms[0], ServiceAtom::Tcp(Some(PortRange::single(443))));
    assert_eq!(
        atoms[1],
        ServiceAtom::Tcp(Some(PortRange {
            low: 1000,
            high: 2000
        }))
    );
    assert_eq!(atoms[2], ServiceAtom::Udp(None));
    assert_eq!(atoms[3], ServiceAtom::Sctp(Some(PortRange::single(9))));
    assert_eq!(atoms[4], ServiceAtom::Icmp(None));
    assert!(
        matches!(&atoms[5], ServiceAtom::Icmp(Some(t)) if t.value == 8 && t.name.as_deref() == Some("echo-request"))
    );
    assert!(matches!(&atoms[6], ServiceAtom::Icmp(Some(t)) if t.value == 3 && t.name.is_none()));
    assert!(matches!(&atoms[7], ServiceAtom::Icmpv6(Some(t)) if t.value == 2));
    assert_eq!(atoms[8], ServiceAtom::Icmpv6(None));
    assert_eq!(atoms[9], ServiceAtom::Proto(50));
    assert_eq!(atoms[10], ServiceAtom::Any);
    assert!(matches!(&atoms[11], ServiceAtom::Named(n) if n.node == "t"));
}

#[test]
fn addresses_in_every_standard_form() {
    let loaded = clean(
        "zone a {\n  networks 0.0.0.0/0, 10.0.0.0/8, 2001:DB8::/32, ::/0, ::ffff:10.0.0.0/104, 2001:db8:0:0:0:0:0:0/64, 10.1.2.3\n  hosts ::1, fe80::1, 192.0.2.7, 2001:0db8:0000:0000:0000:0000:0000:0001\n}",
    );
    let zone = loaded.policy.zone("a").unwrap();
    let nets: Vec<IpNetwork> = zone.networks().map(|n| n.node).collect();
    assert_eq!(nets[2], "2001:db8::/32".parse::<IpNetwork>().unwrap());
    assert_eq!(
        nets[6],
        "10.1.2.3/32".parse::<IpNetwork>().unwrap(),
        "a bare address is a host"
    );
    let hosts: Vec<IpAddr> = zone.hosts().map(|h| h.addr).collect();
    assert_eq!(hosts[3], "2001:db8::1".parse::<IpAddr>().unwrap());
    assert_eq!(zone.prefixes().count(), 11);
}

#[test]
fn selectors_and_tight_spacing() {
    let loaded = clean(
        "zone a { tags x }\nzone b-1 {}\nallow a,tag:x->b-1,world:tcp/22\ndeny any -> any : any\nrequire no-flow a -> b-1\n",
    );
    let rule = &loaded.policy.rules[0];
    assert_eq!(rule.src.len(), 2);
    assert!(matches!(&rule.src[1].node, Selector::Tag(t) if t.node == "x"));
    assert!(matches!(&rule.dst[0].node, Selector::Zone(z) if z.node == "b-1"));
    assert_eq!(rule.dst[1].node, Selector::World);
    assert_eq!(loaded.policy.rules[1].src[0].node, Selector::Any);
}

#[test]
fn spans_cover_the_written_text() {
    let text = "zone imaging { networks 10.20.0.0/23 }\nallow imaging -> world : tcp/104 until 2030-01-01 \"why\"   # c\n";
    let loaded = clean(text);
    let rule = &loaded.policy.rules[0];
    let snip = |s| loaded.sources.snippet(s);
    assert_eq!(snip(rule.src[0].span), "imaging");
    assert_eq!(snip(rule.dst[0].span), "world");
    assert_eq!(snip(rule.services[0].span), "tcp/104");
    assert_eq!(snip(rule.until.as_ref().unwrap().span), "2030-01-01");
    assert_eq!(snip(rule.comment.as_ref().unwrap().span), "\"why\"");
    assert_eq!(snip(loaded.policy.rules[0].action.span), "allow");
    // A statement's span ends at its last token, not at the comment after it.
    let stmt = &loaded.files[0].statements[1];
    assert!(snip(stmt.span).ends_with("\"why\""));
    let zone = loaded.policy.zone("imaging").unwrap();
    assert_eq!(snip(zone.items[0].span), "networks 10.20.0.0/23");
    assert_eq!(loaded.sources.start(rule.services[0].span).line, 2);
    assert_eq!(loaded.sources.start(rule.services[0].span).column, 26);
}

#[test]
fn statements_ignore_newlines_and_order() {
    let a = clean("allow a -> b : tcp/1\nzone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }");
    let b =
        clean("zone b { hosts 10.0.0.2 } zone a {\nhosts\n10.0.0.1\n}\nallow a\n->\nb\n:\ntcp/1");
    assert_eq!(a.policy.rules, b.policy.rules);
    assert_eq!(a.policy.zone("a"), b.policy.zone("a"));
}

#[test]
fn strings_unescape() {
    let loaded = clean(r#"zone a { description "a \"quoted\" \\ back # not a comment" }"#);
    assert_eq!(
        loaded.policy.zones[0].description(),
        Some(r#"a "quoted" \ back # not a comment"#)
    );
    assert!(loaded.files[0].comments.is_empty());
}

#[test]
fn syntax_errors_point_at_the_token_and_recover() {
    let loaded = parse_str(
        "t.ward",
        "zone a { hosts 10.0.0.1 }\nallow a -> a tcp/80\nzone b {\n  mode sometimes\n}\nzone c {\nzone d { hosts 10.0.0.4 }\n",
    );
    assert_eq!(codes(&loaded), ["WG101", "WG101", "WG101"]);
    assert_eq!(positions(&loaded), [(2, 14), (4, 8), (7, 1)]);
    let msgs: Vec<&str> = loaded
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert!(msgs[0].contains("expected `:`"), "{}", msgs[0]);
    assert!(msgs[1].contains("`enforce` or `monitor`"), "{}", msgs[1]);
    assert!(msgs[2].contains("found `zone`"), "{}", msgs[2]);
    // Statements around the errors are kept.
    let names: Vec<&str> = loaded
        .policy
        .zones
        .iter()
        .map(|z| z.name.as_str())
        .collect();
    assert_eq!(names, ["a", "d"]);
    // No message names a grammar rule.
    for d in &loaded.diagnostics {
        assert!(!d.message.contains('_'), "{}", d.message);
    }
}

#[test]
fn keywords_cannot_be_names() {
    let loaded = parse_str(
        "t.ward",
        "zone zone { tags any, ok }\nservice tcp = udp/1\n",
    );
    assert_eq!(
        codes(&loaded),
        ["WG105", "WG105", "WG105"],
        "{:#?}",
        loaded.diagnostics
    );
    let loaded = parse_str("t.ward", "zone hosts { }\n");
    assert_eq!(codes(&loaded), ["WG105"]);
    // Values are not reserved.
    clean("zone high { tags life-critical, monitor }\nrequire no-path world -> tag:life-critical");
}

#[test]
fn value_errors() {
    let cases = [
        ("zone a { networks 10.0.0.1/24 }", "WG206"),
        ("zone a { networks 2001:db8::1/64 }", "WG206"),
        ("zone a { networks 10.0.0.0/33 }", "WG212"),
        ("zone a { networks ::/129 }", "WG212"),
        ("zone a { hosts 1.2.3 }", "WG104"),
        ("zone a { hosts 2001:db8:::1 }", "WG104"),
        ("service s = tcp/65536", "WG207"),
        ("service s = udp/10-9", "WG208"),
        ("service s = icmp/256", "WG209"),
        ("service s = icmpv6/redirect", "WG209"),
        ("service s = proto/256", "WG211"),
        ("zone a {}\nallow a -> a : tcp until 2026-13-01", "WG210"),
        ("zone a { description \"x\\n\" }", "WG103"),
        ("zone a { description \"x }", "WG102"),
        (
            "zone a { mode monitor criticality low criticality high }",
            "WG213",
        ),
        ("service a = b\nservice b = c\nservice c = a", "WG214"),
    ];
    for (text, code) in cases {
        let loaded = parse_str("t.ward", text);
        assert_eq!(codes(&loaded), [code], "{text}: {:#?}", loaded.diagnostics);
    }
    let host_bits = parse_str("t.ward", "zone a { networks 10.20.0.1/24 }");
    assert_eq!(
        host_bits.diagnostics[0].help.as_deref(),
        Some("write the network `10.20.0.0/24`, or the single host `10.20.0.1`")
    );
}

#[test]
fn name_errors() {
    let loaded = parse_str(
        "t.ward",
        "zone a {}\nzone a {}\nservice s = tcp\nservice s = udp\nallow a -> b, tag:nope : s, t\n",
    );
    assert_eq!(
        codes(&loaded),
        ["WG201", "WG202", "WG203", "WG205", "WG204"]
    );
    // The duplicate points at the second and labels the first.
    assert_eq!(loaded.sources.start(loaded.diagnostics[0].primary).line, 2);
    assert_eq!(
        loaded.sources.start(loaded.diagnostics[0].labels[0].0).line,
        1
    );
}

#[test]
fn includes_are_relative_and_read_once() {
    let loaded = load_mem(&[
        (
            "root.ward",
            "include \"sub/a.ward\"\ninclude \"b.ward\"\nallow x -> y : dicom",
        ),
        (
            "sub/a.ward",
            "include \"../common.ward\"\nzone x { hosts 10.0.0.1 }",
        ),
        (
            "b.ward",
            "include \"common.ward\"\nzone y { hosts 10.0.0.2 }",
        ),
        ("common.ward", "service dicom = tcp/104"),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.files.len(), 4);
    assert_eq!(loaded.policy.services.len(), 1, "common.ward is read once");
    let paths: Vec<String> = loaded
        .sources
        .ids()
        .map(|id| loaded.sources.path(id).display().to_string())
        .collect();
    assert_eq!(paths, ["root.ward", "sub/a.ward", "common.ward", "b.ward"]);
}

#[test]
fn include_errors_point_into_the_right_file() {
    let loaded = load_mem(&[
        (
            "root.ward",
            "include \"a.ward\"\ninclude \"missing.ward\"\n",
        ),
        (
            "a.ward",
            "include \"root.ward\"\nzone a { networks 10.0.0.1/8 }\n",
        ),
    ]);
    let found: Vec<(String, &str, usize)> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            (
                loaded.sources.path(d.primary.file).display().to_string(),
                d.code,
                loaded.sources.start(d.primary).line,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("root.ward".to_string(), "WG215", 2),
            ("a.ward".to_string(), "WG216", 1),
            ("a.ward".to_string(), "WG206", 2),
        ]
    );
}

#[test]
fn root_file_io_error_is_an_error_value() {
    let err = wardgate_lang::load(Path::new("/nonexistent/wardgate/root.ward")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn inventory_devices_become_hosts() {
    let loaded = load_mem(&[
        (
            "root.ward",
            "inventory \"inv/assets.yaml\"\nzone imaging {}\nzone lab { networks 10.65.0.0/24 }\n",
        ),
        (
            "inv/assets.yaml",
            "devices:\n  - name: ct-1\n    address: 10.20.0.11\n    zone: imaging\n    vendor: Siemens\n    extra: ignored\n  - {name: an-1, address: \"2001:db8::5\", zone: lab, firmware: 1.2}\n",
        ),
    ]);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let imaging = loaded.policy.zone("imaging").unwrap();
    let host = imaging.hosts().next().unwrap();
    assert_eq!(host.addr, "10.20.0.11".parse::<IpAddr>().unwrap());
    let device = host.device.as_ref().unwrap();
    assert_eq!(
        (device.name.as_str(), device.vendor.as_deref()),
        ("ct-1", Some("Siemens"))
    );
    assert_eq!(loaded.sources.start(host.span).line, 3);
    let lab_host = loaded.policy.zone("lab").unwrap().hosts().next().unwrap();
    assert_eq!(
        lab_host.device.as_ref().unwrap().firmware.as_deref(),
        Some("1.2")
    );
    // The file AST is as written: the zone there has no hosts.
    let Statement::Zone(z) = &loaded.files[0].statements[1].node else {
        panic!()
    };
    assert!(!z.has_addresses());
}

#[test]
fn inventory_errors_point_at_yaml_lines() {
    let loaded = load_mem(&[
        (
            "root.ward",
            "inventory \"a.yaml\"\ninventory \"missing.yaml\"\nzone imaging {}\n",
        ),
        (
            "a.yaml",
            "devices:\n  - name: a\n    address: 10.0.0.1\n    zone: imagin\n  - name: b\n    address: 10.0.0.1/32\n    zone: imaging\n  - name: c\n    address: 10.0.0.3\n    zone: imaging\n  - name: d\n    address: 10.0.0.3\n    zone: imaging\n",
        ),
    ]);
    let found: Vec<(&str, usize)> = loaded
        .diagnostics
        .iter()
        .map(|d| (d.code, loaded.sources.start(d.primary).line))
        .collect();
    assert_eq!(
        found,
        [("WG217", 2), ("WG218", 4), ("WG219", 6), ("WG220", 12)]
    );
    assert_eq!(
        loaded.diagnostics[1].help.as_deref(),
        Some("did you mean `imaging`?")
    );
    let bad_yaml = load_mem(&[
        ("root.ward", "inventory \"b.yaml\""),
        ("b.yaml", "devices:\n  - name: [\n"),
    ]);
    // The root declares no zone either, but the unreadable inventory is the
    // error to report: WG221 `no-zones` says nothing new then.
    assert_eq!(codes(&bad_yaml), ["WG217"]);
    assert_eq!(
        bad_yaml.sources.path(bad_yaml.diagnostics[0].primary.file),
        Path::new("b.yaml")
    );
}

#[test]
fn reference_checks_wait_for_syntax_fixes() {
    // The zone `a` is lost to the syntax error: no echo about `a`.
    let loaded = parse_str(
        "t.ward",
        "zone a {\n  netwroks 10.0.0.0/8\n}\nallow a -> a : tcp\n",
    );
    assert_eq!(codes(&loaded), ["WG101"]);
}
