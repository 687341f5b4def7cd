//! The parser, the checks, the formatter and every renderer never panic, and
//! formatting a policy that parses cleanly round-trips and is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wardgate_lang::fmt::format_file;
use wardgate_lang::parser::parse_file;
use wardgate_lang::render;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let loaded = wardgate_lang::parse_str("fuzz.ward", text);
    let _ = render::human(&loaded.diagnostics, &loaded.sources);
    let _ = render::concise(&loaded.diagnostics, &loaded.sources);
    let _ = render::json(&loaded.diagnostics, &loaded.sources);
    let _ = render::sarif(&loaded.diagnostics, &loaded.sources, &wardgate_lang::codes::ALL.iter().collect::<Vec<_>>());
    let _ = render::github(&loaded.diagnostics, &loaded.sources);

    let (file, diags) = parse_file(wardgate_lang::FileId(0), text);
    if diags.is_empty() {
        let once = format_file(&file, text);
        let (again, diags2) = parse_file(wardgate_lang::FileId(0), &once);
        assert!(diags2.is_empty(), "formatted text does not parse:\n{once}");
        assert_eq!(file.statements, again.statements, "formatting changed the policy");
        assert_eq!(format_file(&again, &once), once, "formatting is not idempotent");
    }
});
