//! Loading with includes and inventories from an in-memory file system:
//! the input is split into a root file, an included file and an inventory.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\u{0}');
    let root = parts.next().unwrap_or("").to_string();
    let included = parts.next().unwrap_or("").to_string();
    let yaml = parts.next().unwrap_or("").to_string();
    let mut read = |p: &Path| -> std::io::Result<String> {
        match p.to_str() {
            Some("root.ward") => Ok(root.clone()),
            Some(s) if s.ends_with(".yaml") => Ok(yaml.clone()),
            Some(s) if s.ends_with(".ward") => Ok(included.clone()),
            _ => Err(std::io::ErrorKind::NotFound.into()),
        }
    };
    if let Ok(loaded) = wardgate_lang::load_with(Path::new("root.ward"), &mut read) {
        let _ = wardgate_lang::render::human(&loaded.diagnostics, &loaded.sources);
    }
});
