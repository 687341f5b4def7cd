//! The nftables backend's output for the examples, as snapshots, and its
//! structural promises. That nftables decides like the reference evaluator
//! is the differential test's job (`tests/tests/nft`).

use std::path::Path;

use wardgate_compiler::{Options, PolicyImage, nft};

fn example(name: &str) -> PolicyImage {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_current_dir(&root).expect("workspace root");
    let loaded =
        wardgate_lang::load(Path::new("examples").join(name).as_path()).expect("example loads");
    let opts = Options {
        today: Some("2026-01-01".parse::<wardgate_lang::date::Date>().unwrap()),
    };
    let (image, diags) = wardgate_compiler::compile(&loaded, &opts);
    image.unwrap_or_else(|| panic!("{diags:#?}"))
}

#[test]
fn clinic_ruleset() {
    insta::assert_snapshot!(nft::render(&example("clinic.ward")));
}

#[test]
fn one_table_replaced_atomically() {
    let out = nft::render(&example("hospital.ward"));
    assert!(out.contains("table inet wardgate {}\ndelete table inet wardgate\n"));
    assert_eq!(out.matches("\ntable inet wardgate {\n").count(), 1);
    assert_eq!(out.matches("hook forward").count(), 1);
}

#[test]
fn same_image_same_ruleset() {
    assert_eq!(
        nft::render(&example("hospital.ward")),
        nft::render(&example("hospital.ward"))
    );
}
