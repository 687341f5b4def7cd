//! The built object defines exactly the maps `wardgate_common::maps::ALL`
//! names (`#[map(name = ...)]` takes only a literal, so nothing else ties them).

use std::collections::BTreeSet;

use wardgate_agent::Program;
use wardgate_common::maps;
use wardgate_tests::privilege;

#[test]
fn object_defines_every_declared_map_and_no_other() {
    if !privilege::kernel_tests_can_run("object_defines_every_declared_map_and_no_other") {
        return;
    }
    let program = Program::load().unwrap();
    let defined: BTreeSet<&str> = program
        .ebpf()
        .maps()
        .map(|(name, _)| name)
        // Data sections (`.rodata`, `.bss`) become maps too; they are not ours to name.
        .filter(|name| !name.starts_with('.'))
        .collect();
    let declared: BTreeSet<&str> = maps::ALL.iter().copied().collect();
    assert_eq!(defined, declared);
}
