use wardgate_lang::parse_str;

#[test]
fn first_look_parses_clean() {
    let text = include_str!("fixtures/first-look.ward");
    let loaded = parse_str("first-look.ward", text);
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.policy.zones.len(), 7);
    assert_eq!(loaded.policy.rules.len(), 6);
    assert_eq!(loaded.policy.requirements.len(), 2);
    assert_eq!(loaded.files[0].comments.len(), 4);
}

#[test]
fn errors() {
    for t in [
        "zone a {\n netwroks 10.0.0.0/8\n}\n",
        "zone a { networks 10.0.0.1/8 }",
        "service x = tcp/99999, icmp/foo",
        "zone a { description \"x }\nzone b {}",
    ] {
        let loaded = parse_str("t.ward", t);
        println!("{t}\n{:#?}", loaded.diagnostics);
    }
}
