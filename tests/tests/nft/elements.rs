//! Every element the nftables backend writes reads back from the kernel
//! identical: each field of every concatenated, interval and map key, in its
//! own byte order, and every datum (issue 18: nft 1.0.6 byte-swapped the
//! `meta priority` field of the element that starts each netlink chunk of a
//! large `elements = { ... }` block).

use wardgate_compiler::nft::{self, ELEMENTS_PER_COMMAND};
use wardgate_tests::{
    enforcer::image,
    netns::Netns,
    privilege,
    scalegen::{Mix, Policy, Scale},
};

use crate::readback;

#[test]
fn every_element_reads_back_identical() {
    let name = "every_element_reads_back_identical";
    if !privilege::kernel_tests_can_run(name) || !privilege::tool_available(name, "nft") {
        return;
    }
    // Zone ids past 255; every map type; several commands per large map.
    let policy = Policy::generate(Scale {
        zones: 400,
        rules: 2_000,
        ipv6: true,
        mix: Mix::Rich,
        seed: 1,
    });
    let image = image(&policy.ward());
    let maps = nft::maps(&image);
    for m in &maps {
        assert!(!m.elements.is_empty(), "map {} is empty", m.name);
    }
    let ports = maps
        .iter()
        .find(|m| m.name == "policy_ports")
        .expect("policy_ports");
    assert!(
        ports.elements.len() > 4 * ELEMENTS_PER_COMMAND,
        "{} elements",
        ports.elements.len()
    );

    let ns = Netns::new("nft-el").expect("namespace");
    let path = std::env::temp_dir().join(format!("{}.nft", ns.name()));
    std::fs::write(&path, nft::render(&image)).expect("writing the ruleset");
    let loaded = ns.exec_ok("nft", &["-f", path.to_str().expect("utf-8 temp path")]);
    let _ = std::fs::remove_file(&path);
    loaded.expect("loading the ruleset");
    let read = readback::read(&ns).expect("reading the maps back");
    let diffs = readback::differences(&readback::written(&maps), &read);
    assert!(
        diffs.is_empty(),
        "the kernel holds other elements than written:\n{}",
        diffs.join("\n")
    );
}
