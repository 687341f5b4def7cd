//! Bad bundles and keys: each refused with its reason.

use super::*;

const IMAGE_BYTES: &[u8] = b"WGIMG fake image bytes";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn good(revision: u64) -> Vec<u8> {
    let m = manifest_for(IMAGE_BYTES, revision, None);
    build(
        &m,
        IMAGE_BYTES,
        &[("main.ward".into(), b"zone a { hosts 10.0.0.1 }\n".to_vec())],
        &key(1),
    )
    .unwrap()
}

/// A gzip tar of raw entries: (name bytes, type, content), names written
/// into the header as they are (tar::Builder refuses the bad ones).
fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_old();
        let field = &mut h.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// The files of a good bundle, re-packed with `edit` applied.
fn repack(edit: impl FnOnce(&mut Vec<(String, tar::EntryType, Vec<u8>)>)) -> Vec<u8> {
    let files = unpack(&good(1)).unwrap();
    let mut entries: Vec<(String, tar::EntryType, Vec<u8>)> = files
        .into_iter()
        .map(|(n, d)| (n, tar::EntryType::Regular, d))
        .collect();
    edit(&mut entries);
    let refs: Vec<(&str, tar::EntryType, &[u8])> = entries
        .iter()
        .map(|(n, k, d)| (n.as_str(), *k, d.as_slice()))
        .collect();
    raw_tar(&refs)
}

#[test]
fn a_good_bundle_verifies() {
    let v = verify(&good(7), &key(1).verifying_key()).unwrap();
    assert_eq!(v.manifest.revision, 7);
    assert_eq!(v.image, IMAGE_BYTES);
    assert_eq!(v.sources.keys().collect::<Vec<_>>(), ["main.ward"]);
    assert_eq!(v.key_id, key_id(&key(1).verifying_key()));
}

#[test]
fn the_signatures_file_has_opa_shape() {
    let files = unpack(&good(1)).unwrap();
    let sigs: serde_json::Value = serde_json::from_slice(&files[SIGNATURES]).unwrap();
    let jws = sigs["signatures"][0].as_str().unwrap();
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3);
    let payload: serde_json::Value =
        serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    let names: Vec<&str> = payload["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [MANIFEST, IMAGE, "src/main.ward"]);
    assert_eq!(payload["files"][0]["algorithm"], "SHA-256");
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
}

#[test]
fn any_changed_byte_is_refused() {
    // Flip a byte of the image inside the archive (re-packed, so the tar and
    // gzip layers stay valid and only the signed content differs).
    let bytes = repack(|e| {
        let img = e.iter_mut().find(|(n, ..)| n == IMAGE).unwrap();
        img.2[0] ^= 1;
    });
    let err = verify(&bytes, &key(1).verifying_key()).unwrap_err();
    assert!(
        matches!(err, Error::HashMismatch(ref n) if n == IMAGE),
        "{err}"
    );
    assert_eq!(err.reason(), "hash");
    // A flipped byte in the compressed stream itself.
    let mut raw = good(1);
    let mid = raw.len() / 2;
    raw[mid] ^= 0x40;
    assert!(verify(&raw, &key(1).verifying_key()).is_err());
}

#[test]
fn an_unknown_key_is_refused() {
    let err = verify(&good(1), &key(2).verifying_key()).unwrap_err();
    assert_eq!(err.reason(), "unknown_key", "{err}");
    assert!(err.to_string().contains("unknown key"), "{err}");
}

#[test]
fn a_forged_signature_with_the_trusted_key_id_is_refused() {
    // Signed by key 2 but claiming key 1's id.
    let bytes = repack(|e| {
        let sig = e.iter_mut().find(|(n, ..)| n == SIGNATURES).unwrap();
        let text = String::from_utf8(sig.2.clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let jws = v["signatures"][0].as_str().unwrap();
        let (input, _) = jws.rsplit_once('.').unwrap();
        let forged = key(2).sign(input.as_bytes());
        let new = format!("{input}.{}", B64.encode(forged.to_bytes()));
        sig.2 = serde_json::to_vec(&serde_json::json!({ "signatures": [new] })).unwrap();
    });
    let err = verify(&bytes, &key(1).verifying_key()).unwrap_err();
    assert!(matches!(err, Error::BadSignature(_)), "{err}");
}

#[test]
fn unlisted_and_missing_files_are_refused() {
    let extra = repack(|e| {
        e.push((
            "src/extra.ward".into(),
            tar::EntryType::Regular,
            b"x".to_vec(),
        ))
    });
    let err = verify(&extra, &key(1).verifying_key()).unwrap_err();
    assert!(
        matches!(err, Error::Unlisted(ref n) if n == "src/extra.ward"),
        "{err}"
    );
    let fewer = repack(|e| e.retain(|(n, ..)| n != "src/main.ward"));
    let err = verify(&fewer, &key(1).verifying_key()).unwrap_err();
    assert!(
        matches!(err, Error::Unpacked(ref n) if n == "src/main.ward"),
        "{err}"
    );
}

#[test]
fn unsafe_entries_are_refused() {
    let cases: [(&str, tar::EntryType, &str); 5] = [
        ("/etc/passwd", tar::EntryType::Regular, "absolute"),
        ("src/../../x", tar::EntryType::Regular, "dotdot"),
        ("src/link", tar::EntryType::Symlink, "symlink"),
        ("src/hard", tar::EntryType::Link, "hardlink"),
        ("src/dir", tar::EntryType::Directory, "directory"),
    ];
    for (name, kind, what) in cases {
        let bytes = raw_tar(&[(name, kind, b"")]);
        let err = unpack(&bytes).unwrap_err();
        assert!(
            matches!(err, Error::UnsafePath(_) | Error::NotAFile(_)),
            "{what}: {err}"
        );
        assert!(err.to_string().contains(name), "{what}: {err}");
    }
    let dup = raw_tar(&[
        ("a", tar::EntryType::Regular, b"1"),
        ("a", tar::EntryType::Regular, b"2"),
    ]);
    assert!(matches!(unpack(&dup).unwrap_err(), Error::Duplicate(_)));
    assert!(matches!(
        unpack(b"not gzip at all").unwrap_err(),
        Error::Archive(_)
    ));
}

#[test]
fn oversize_entries_are_refused_before_reading() {
    // A header claiming a huge size: refused from the header, not after
    // reading (the data is not there).
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_path("policy.img").unwrap();
    h.set_size(MAX_ENTRY_BYTES + 1);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut w = b.get_mut();
    w.write_all(h.as_bytes()).unwrap();
    w = b.get_mut();
    w.write_all(&[0u8; 1024]).unwrap();
    let bytes = b.into_inner().unwrap().finish().unwrap();
    let err = unpack(&bytes).unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
}

#[test]
fn expiry_and_rollback_are_the_callers_checks() {
    let now: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    let mut m = manifest_for(IMAGE_BYTES, 5, None);
    assert!(m.check_fresh(now, None).is_ok());
    assert!(m.check_fresh(now, Some(4)).is_ok());
    assert_eq!(
        m.check_fresh(now, Some(5)).unwrap_err().reason(),
        "rollback"
    );
    assert_eq!(
        m.check_fresh(now, Some(9)).unwrap_err().reason(),
        "rollback"
    );
    m.expires = Some("2026-05-31T23:59:59Z".into());
    let err = m.check_fresh(now, None).unwrap_err();
    assert_eq!(err.reason(), "expired", "{err}");
    m.expires = Some("2026-06-02T00:00:00Z".into());
    assert!(m.check_fresh(now, None).is_ok());
}

#[test]
fn expires_takes_dates_and_times() {
    assert_eq!(
        parse_expires("2026-06-01").unwrap(),
        "2026-06-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap()
    );
    assert!(parse_expires("2026-06-01T12:00:00+02:00").is_ok());
    assert!(
        parse_expires("next week")
            .unwrap_err()
            .contains("next week")
    );
}

#[test]
fn key_files_round_trip_and_are_never_overwritten() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("wg-bundle-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("site");
    let k = generate_key().unwrap();
    let (private, public) = write_key_pair(&base, &k).unwrap();
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&private).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
    let pub_text = std::fs::read_to_string(&public).unwrap();
    assert!(
        pub_text.starts_with("-----BEGIN PUBLIC KEY-----"),
        "{pub_text}"
    );
    assert_eq!(read_signing_key(&private).unwrap().to_bytes(), k.to_bytes());
    assert_eq!(read_verifying_key(&public).unwrap(), k.verifying_key());
    let err = write_key_pair(&base, &generate_key().unwrap()).unwrap_err();
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(read_signing_key(&private).unwrap().to_bytes(), k.to_bytes());
    // A public key is not a private key and the other way round.
    assert!(read_signing_key(&public).is_err());
    assert!(read_verifying_key(&private).is_err());
    let err = read_verifying_key(&dir.join("none.pub")).unwrap_err();
    assert!(err.to_string().contains("none.pub"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
