//! `conntrack-limit N` in a zone: parsed, formatted back, given once.

use wardgate_lang::{ast::ZoneItem, fmt::format_source, parse_str};

#[test]
fn conntrack_limit_parses_and_formats_back() {
    let src = "zone guest {\n    networks 192.168.100.0/22\n    conntrack-limit 20000\n}\n";
    let loaded = parse_str("t.ward", src);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let zone = &loaded.policy.zones[0];
    assert_eq!(zone.conntrack_limit(), Some(20000));
    assert!(
        zone.items
            .iter()
            .any(|i| i.node == ZoneItem::ConntrackLimit(20000))
    );
    assert_eq!(format_source(src).expect("formats"), src);
}

#[test]
fn conntrack_limit_out_of_range_or_twice_is_an_error() {
    for (src, code) in [
        ("zone g { hosts 10.0.0.1 conntrack-limit 0 }\n", "WG226"),
        (
            "zone g { hosts 10.0.0.1 conntrack-limit 4294967296 }\n",
            "WG226",
        ),
        (
            "zone g { hosts 10.0.0.1 conntrack-limit 5 conntrack-limit 6 }\n",
            "WG213",
        ),
    ] {
        let loaded = parse_str("t.ward", src);
        let mut codes: Vec<_> = loaded.diagnostics.iter().map(|d| d.code).collect();
        codes.extend(
            wardgate_lang::check::check_policy(&loaded.policy, true)
                .iter()
                .map(|d| d.code),
        );
        assert!(codes.contains(&code), "{src}: {codes:?}");
    }
}
