//! Signed wardgate policy bundles: what `wardgate bundle` writes, what
//! `wardgate verify-bundle` and the agent's bundle puller check.
//!
//! A bundle is a gzip-compressed tar archive of regular files:
//!
//! | file               | content                                                        |
//! |--------------------|----------------------------------------------------------------|
//! | `.manifest`        | JSON [`Manifest`]: revision, created, expires, image SHA-256   |
//! | `.signatures.json` | `{"signatures":["<JWS>"]}`, the shape OPA bundles use          |
//! | `policy.img`       | the compiled policy image (`docs/image.md`)                    |
//! | `src/...`          | the policy's source files, for audit (never loaded)            |
//!
//! The JWS is in compact serialization, header `{"alg":"EdDSA","kid":ID}`,
//! payload `{"files":[{"name","hash","algorithm":"SHA-256"}...],"keyid":ID,
//! "scope":"wardgate"}` listing every file of the archive except
//! `.signatures.json`, sorted by name, with its lowercase hex SHA-256. The
//! key id is `sha256:` and the first 16 hex digits of the SHA-256 of the
//! 32-byte public key.
//!
//! Keys are Ed25519: the private key a PKCS#8 PEM file (`-----BEGIN PRIVATE
//! KEY-----`, mode 0600), the public key an SPKI PEM file (`-----BEGIN PUBLIC
//! KEY-----`), the formats `openssl genpkey -algorithm ed25519` and
//! `openssl pkey -pubout` use.
//!
//! [`verify`] refuses, before anything is believed: archives that are not
//! gzip tar, entries that are not regular files (links, devices,
//! directories), absolute paths or `..`, duplicate names, entries or
//! archives past the size limits, a signature that does not verify with
//! `verify_strict` under the trusted key, a file list that differs from the
//! archive in any name or hash, and an image whose hash is not the
//! manifest's. Freshness (expiry, revision order) is the caller's
//! decision: [`Manifest::check_fresh`].
//!
//! This crate does not compile policies and never touches the kernel.
#![forbid(unsafe_code)]

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ed25519_dalek::{
    Signature, Signer as _,
    pkcs8::{
        DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
        spki::der::pem::LineEnding,
    },
};
pub use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The manifest's name in the archive.
pub const MANIFEST: &str = ".manifest";
/// The signatures file's name in the archive.
pub const SIGNATURES: &str = ".signatures.json";
/// The compiled policy image's name in the archive.
pub const IMAGE: &str = "policy.img";
/// The directory of the policy's source files in the archive.
pub const SOURCE_DIR: &str = "src";
/// The largest file in a bundle (after decompression).
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;
/// The largest bundle: all files together, after decompression.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;
/// The most files in a bundle.
pub const MAX_ENTRIES: usize = 10_000;
/// The JWS payload's `scope`.
const SCOPE: &str = "wardgate";

/// Why a bundle or key was refused. The text is ready for an operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a gzip tar archive: {0}")]
    Archive(String),
    #[error("refusing entry `{0}`: absolute paths, `.` and `..` are not allowed")]
    UnsafePath(String),
    #[error(
        "refusing entry `{0}`: only regular files are allowed (no links, directories or devices)"
    )]
    NotAFile(String),
    #[error("refusing entry `{0}`: it appears twice")]
    Duplicate(String),
    #[error("refusing the bundle: {0}")]
    TooLarge(String),
    #[error("the bundle has no `{0}`")]
    Missing(&'static str),
    #[error("invalid `.signatures.json`: {0}")]
    Signatures(String),
    #[error("signed by an unknown key `{found}` (trusted: `{trusted}`)")]
    UnknownKey { found: String, trusted: String },
    #[error("the signature does not verify with the trusted key `{0}`")]
    BadSignature(String),
    #[error("`{0}` is in the archive but not in the signed file list")]
    Unlisted(String),
    #[error("`{0}` is in the signed file list but not in the archive")]
    Unpacked(String),
    #[error("`{0}` does not match its signed SHA-256 (changed after signing)")]
    HashMismatch(String),
    #[error("invalid `.manifest`: {0}")]
    Manifest(String),
    #[error("the bundle expired at {0}")]
    Expired(String),
    #[error(
        "revision {revision} is not newer than the active revision {active} (rollback refused)"
    )]
    NotNewer { revision: u64, active: u64 },
    #[error("{0}")]
    Key(String),
}

impl Error {
    /// A short, stable reason for metrics labels and status.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Archive(_)
            | Self::UnsafePath(_)
            | Self::NotAFile(_)
            | Self::Duplicate(_)
            | Self::TooLarge(_)
            | Self::Missing(_) => "archive",
            Self::Signatures(_) | Self::BadSignature(_) => "signature",
            Self::UnknownKey { .. } => "unknown_key",
            Self::Unlisted(_) | Self::Unpacked(_) | Self::HashMismatch(_) => "hash",
            Self::Manifest(_) => "manifest",
            Self::Expired(_) => "expired",
            Self::NotNewer { .. } => "rollback",
            Self::Key(_) => "key",
        }
    }
}

/// `.manifest`: what the bundle is, signed along with everything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Monotonic: an agent only activates a revision greater than its active one.
    pub revision: u64,
    /// When the bundle was built (RFC 3339, UTC).
    pub created: String,
    /// After this instant (RFC 3339, UTC) agents refuse the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Lowercase hex SHA-256 of `policy.img`.
    pub image_sha256: String,
}

impl Manifest {
    /// The expiry instant, if any.
    pub fn expires_at(&self) -> Result<Option<jiff::Timestamp>, Error> {
        self.expires
            .as_deref()
            .map(|e| {
                e.parse::<jiff::Timestamp>()
                    .map_err(|err| Error::Manifest(format!("`expires` is not a timestamp: {err}")))
            })
            .transpose()
    }

    /// Refuses an expired bundle, or one not newer than `active` (the
    /// revision in force, if any).
    pub fn check_fresh(&self, now: jiff::Timestamp, active: Option<u64>) -> Result<(), Error> {
        if let Some(exp) = self.expires_at()?
            && now >= exp
        {
            return Err(Error::Expired(exp.to_string()));
        }
        match active {
            Some(active) if self.revision <= active => Err(Error::NotNewer {
                revision: self.revision,
                active,
            }),
            _ => Ok(()),
        }
    }
}

/// Parses `--expires`: an RFC 3339 instant, or a date (`YYYY-MM-DD`, meaning
/// its start in UTC).
pub fn parse_expires(text: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| {
            jiff::tz::TimeZone::UTC
                .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .ok()
        })
        .ok_or_else(|| format!("`{text}` is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))
}

/// One entry of the signed file list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub name: String,
    pub hash: String,
    pub algorithm: String,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    files: Vec<FileHash>,
    keyid: String,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct JwsHeader {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SignaturesFile {
    signatures: Vec<String>,
}

/// Lowercase hex SHA-256.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The key id of a public key: `sha256:` and 16 hex digits.
#[must_use]
pub fn key_id(key: &VerifyingKey) -> String {
    format!("sha256:{}", &sha256_hex(key.as_bytes())[..16])
}

/// A new Ed25519 key from the operating system's random source.
pub fn generate_key() -> Result<SigningKey, Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Key(format!("no random bytes: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `BASE.key` (PKCS#8 PEM, mode 0600) and `BASE.pub` (SPKI PEM);
/// refuses to overwrite either.
pub fn write_key_pair(base: &Path, key: &SigningKey) -> Result<(PathBuf, PathBuf), Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let with_ext = |ext: &str| {
        let mut s = base.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (private, public) = (with_ext(".key"), with_ext(".pub"));
    for p in [&private, &public] {
        if p.symlink_metadata().is_ok() {
            return Err(Error::Key(format!(
                "`{}` exists; refusing to overwrite a key",
                p.display()
            )));
        }
    }
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Key(format!("cannot encode the private key: {e}")))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::Key(format!("cannot encode the public key: {e}")))?;
    let write = |path: &Path, mode: u32, text: &[u8]| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text))
            .map_err(|e| Error::Key(format!("cannot write `{}`: {e}", path.display())))
    };
    write(&private, 0o600, pem.as_bytes())?;
    write(&public, 0o644, public_pem.as_bytes())?;
    Ok((private, public))
}

fn read_key_text(path: &Path) -> Result<String, Error> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Key(format!("cannot read the key `{}`: {e}", path.display())))?;
    if !meta.is_file() || meta.len() > 64 << 10 {
        return Err(Error::Key(format!(
            "`{}` is not a key file (a small regular file)",
            path.display()
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|e| Error::Key(format!("cannot read the key `{}`: {e}", path.display())))
}

/// Reads a private key (PKCS#8 PEM).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, Error> {
    let text = read_key_text(path)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        Error::Key(format!(
            "`{}` is not an Ed25519 private key (PKCS#8 PEM): {e}",
            path.display()
        ))
    })
}

/// Reads a public key (SPKI PEM).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, Error> {
    let text = read_key_text(path)?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| {
        Error::Key(format!(
            "`{}` is not an Ed25519 public key (SPKI PEM): {e}",
            path.display()
        ))
    })
}

/// Builds and signs a bundle. `sources` are `(path under src/, content)`.
pub fn build(
    manifest: &Manifest,
    image: &[u8],
    sources: &[(String, Vec<u8>)],
    key: &SigningKey,
) -> Result<Vec<u8>, Error> {
    let manifest_json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Manifest(format!("cannot serialize: {e}")))?;
    let mut files: BTreeMap<String, &[u8]> = BTreeMap::new();
    files.insert(MANIFEST.to_owned(), &manifest_json);
    files.insert(IMAGE.to_owned(), image);
    for (name, text) in sources {
        let name = format!("{SOURCE_DIR}/{name}");
        check_name(&name)?;
        if files.insert(name.clone(), text).is_some() {
            return Err(Error::Duplicate(name));
        }
    }
    let keyid = key_id(&key.verifying_key());
    let payload = Payload {
        files: files
            .iter()
            .map(|(name, bytes)| FileHash {
                name: name.clone(),
                hash: sha256_hex(bytes),
                algorithm: "SHA-256".to_owned(),
            })
            .collect(),
        keyid: keyid.clone(),
        scope: Some(SCOPE.to_owned()),
    };
    let header = JwsHeader {
        alg: "EdDSA".to_owned(),
        kid: Some(keyid),
    };
    let encode = |v: &dyn erased::Json| B64.encode(v.json());
    let signing_input = format!("{}.{}", encode(&header), encode(&payload));
    let signature = key.sign(signing_input.as_bytes());
    let jws = format!("{signing_input}.{}", B64.encode(signature.to_bytes()));
    let signatures = serde_json::to_vec_pretty(&SignaturesFile {
        signatures: vec![jws],
    })
    .map_err(|e| Error::Signatures(e.to_string()))?;

    // Level 1: a 10,000-zone image (17.8 MB) compresses to 3.6 MB instead of
    // 2.9 MB at level 6, in well under half the time (bench/fleet.md).
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut append = |name: &str, bytes: &[u8]| -> Result<(), Error> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, bytes)
            .map_err(|e| Error::Archive(format!("cannot write `{name}`: {e}")))
    };
    append(SIGNATURES, &signatures)?;
    for (name, bytes) in &files {
        append(name, bytes)?;
    }
    let gz = tar
        .into_inner()
        .map_err(|e| Error::Archive(e.to_string()))?;
    gz.finish().map_err(|e| Error::Archive(e.to_string()))
}

/// Serializing the JWS parts through one closure.
mod erased {
    pub trait Json {
        fn json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("plain structs serialize")
        }
    }
}

/// Only plain relative paths: no leading `/`, no empty, `.` or `..` component.
fn check_name(name: &str) -> Result<(), Error> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(Error::UnsafePath(name.to_owned()))
    } else {
        Ok(())
    }
}

/// Unpacks the archive's regular files, refusing anything unsafe.
pub fn unpack(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut archive = tar::Archive::new(gz);
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| Error::Archive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::Archive(e.to_string()))?;
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| Error::Archive("an entry's name is not UTF-8".to_owned()))?;
        check_name(&name)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(Error::NotAFile(name));
        }
        if files.len() >= MAX_ENTRIES {
            return Err(Error::TooLarge(format!("more than {MAX_ENTRIES} files")));
        }
        let size = entry.size();
        if size > MAX_ENTRY_BYTES {
            return Err(Error::TooLarge(format!(
                "`{name}` is larger than {MAX_ENTRY_BYTES} bytes"
            )));
        }
        total += size;
        if total > MAX_TOTAL_BYTES {
            return Err(Error::TooLarge(format!(
                "the files are larger than {MAX_TOTAL_BYTES} bytes together"
            )));
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut entry)
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| Error::Archive(format!("`{name}`: {e}")))?;
        if files.contains_key(&name) {
            return Err(Error::Duplicate(name));
        }
        files.insert(name, data);
    }
    Ok(files)
}

/// A bundle whose signature, file list and hashes checked out.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    /// The compiled policy image.
    pub image: Vec<u8>,
    /// The policy's source files, by path under `src/`.
    pub sources: BTreeMap<String, Vec<u8>>,
    /// The key id that signed it.
    pub key_id: String,
}

/// Checks a bundle against the trusted key (see the crate docs for what is
/// refused). Expiry and revision order are left to [`Manifest::check_fresh`].
pub fn verify(bytes: &[u8], trusted: &VerifyingKey) -> Result<Verified, Error> {
    let mut files = unpack(bytes)?;
    let sigs = files.remove(SIGNATURES).ok_or(Error::Missing(SIGNATURES))?;
    let sigs: SignaturesFile =
        serde_json::from_slice(&sigs).map_err(|e| Error::Signatures(e.to_string()))?;
    let [jws] = sigs.signatures.as_slice() else {
        return Err(Error::Signatures(format!(
            "expected one signature, found {}",
            sigs.signatures.len()
        )));
    };
    let mut parts = jws.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Signatures(
            "the signature is not a JWS in compact form (three parts)".to_owned(),
        ));
    };
    let decode = |what: &str, part: &str| {
        B64.decode(part)
            .map_err(|e| Error::Signatures(format!("the JWS {what} is not base64url: {e}")))
    };
    let header: JwsHeader = serde_json::from_slice(&decode("header", header_b64)?)
        .map_err(|e| Error::Signatures(format!("the JWS header: {e}")))?;
    if header.alg != "EdDSA" {
        return Err(Error::Signatures(format!(
            "algorithm `{}` is not accepted (only `EdDSA`)",
            header.alg
        )));
    }
    let payload: Payload = serde_json::from_slice(&decode("payload", payload_b64)?)
        .map_err(|e| Error::Signatures(format!("the JWS payload: {e}")))?;
    let trusted_id = key_id(trusted);
    if payload.keyid != trusted_id {
        return Err(Error::UnknownKey {
            found: payload.keyid,
            trusted: trusted_id,
        });
    }
    let sig_bytes: [u8; 64] = decode("signature", sig_b64)?
        .try_into()
        .map_err(|_| Error::Signatures("the signature is not 64 bytes".to_owned()))?;
    let signing_input = &jws[..header_b64.len() + 1 + payload_b64.len()];
    trusted
        .verify_strict(signing_input.as_bytes(), &Signature::from_bytes(&sig_bytes))
        .map_err(|_| Error::BadSignature(trusted_id.clone()))?;
    // Only now is the payload believed: the file list must be the archive.
    let mut listed = BTreeMap::new();
    for f in &payload.files {
        if f.algorithm != "SHA-256" {
            return Err(Error::Signatures(format!(
                "`{}`: hash algorithm `{}` is not accepted (only `SHA-256`)",
                f.name, f.algorithm
            )));
        }
        if listed.insert(f.name.as_str(), f.hash.as_str()).is_some() {
            return Err(Error::Duplicate(f.name.clone()));
        }
    }
    for (name, data) in &files {
        match listed.get(name.as_str()) {
            None => return Err(Error::Unlisted(name.clone())),
            Some(hash) if *hash != sha256_hex(data) => {
                return Err(Error::HashMismatch(name.clone()));
            }
            Some(_) => {}
        }
    }
    if let Some(name) = listed.keys().find(|n| !files.contains_key(**n)) {
        return Err(Error::Unpacked((*name).to_owned()));
    }
    let manifest = files.remove(MANIFEST).ok_or(Error::Missing(MANIFEST))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest).map_err(|e| Error::Manifest(e.to_string()))?;
    manifest.expires_at()?;
    let image = files.remove(IMAGE).ok_or(Error::Missing(IMAGE))?;
    // Its hash was just checked against the signed list: compare that.
    if listed.get(IMAGE).copied() != Some(manifest.image_sha256.as_str()) {
        return Err(Error::Manifest(format!(
            "`image_sha256` is not the SHA-256 of `{IMAGE}`"
        )));
    }
    let prefix = format!("{SOURCE_DIR}/");
    let mut sources = BTreeMap::new();
    for (name, data) in files {
        match name.strip_prefix(&prefix) {
            Some(rest) => {
                sources.insert(rest.to_owned(), data);
            }
            None => {
                return Err(Error::Archive(format!(
                    "unexpected file `{name}` (only `{MANIFEST}`, `{IMAGE}` and `{SOURCE_DIR}/...`)"
                )));
            }
        }
    }
    Ok(Verified {
        manifest,
        image,
        sources,
        key_id: trusted_id,
    })
}

/// A manifest for `image`, created now.
#[must_use]
pub fn manifest_for(image: &[u8], revision: u64, expires: Option<jiff::Timestamp>) -> Manifest {
    Manifest {
        revision,
        created: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string(),
        expires: expires.map(|e| e.to_string()),
        image_sha256: sha256_hex(image),
    }
}

#[cfg(test)]
mod tests;
