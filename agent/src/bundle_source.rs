//! Pulling the policy as a signed bundle over HTTPS (`source:` in the config
//! file, `--bundle-url` and friends on the command line): settings, the
//! HTTP client, the checks a download passes before anything touches the
//! kernel, and the bundle persisted in the state directory.
//!
//! Nothing here touches the kernel: [`super::daemon`]'s `pull` task calls
//! [`Puller::attempt`] and hands an accepted image to the normal atomic
//! reload. The bundle format and its verification are `wardgate-bundle`'s.
//!
//! State directory (default `/var/lib/wardgate`, mode 0700):
//! `bundle.tar.gz` is the last activated bundle (verified again at every
//! start), `policy.img` its image (what the agent loads), `candidate.img` an
//! image on its way in (gone after the switch).

use std::{
    collections::BTreeMap,
    io::Read as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use wardgate_bundle::{Error as BundleError, Manifest, Timestamp, Verified};

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/wardgate";
/// The default poll interval.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);
/// The last activated bundle, in the state directory.
pub const PERSISTED: &str = "bundle.tar.gz";
/// The active image, in the state directory.
pub const ACTIVE_IMAGE: &str = "policy.img";
/// An accepted image before the switch, in the state directory.
pub const CANDIDATE_IMAGE: &str = "candidate.img";
/// How long one download (or status post) may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The `source:` section of the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// `https://...`; `{gateway}` and `{LABEL}` are replaced.
    pub url: Option<String>,
    pub trusted_key: Option<PathBuf>,
    /// `30s`, `5m`, `500ms`, or seconds.
    pub poll: Option<PollText>,
    pub ca_file: Option<PathBuf>,
    pub status_url: Option<String>,
    pub gateway_id: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub state_dir: Option<PathBuf>,
}

/// A poll interval as written: `30s` or `30`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PollText {
    Seconds(u64),
    Text(String),
}

/// The bundle flags of `run`; each one given replaces the file's.
#[derive(Clone, Debug, Default)]
pub struct SourceFlags {
    pub url: Option<String>,
    pub trusted_key: Option<PathBuf>,
    pub poll: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub status_url: Option<String>,
    pub gateway_id: Option<String>,
    /// `KEY=VALUE`.
    pub labels: Vec<String>,
    pub state_dir: Option<PathBuf>,
}

impl SourceFlags {
    fn any(&self) -> bool {
        self.url.is_some()
            || self.trusted_key.is_some()
            || self.poll.is_some()
            || self.ca_file.is_some()
            || self.status_url.is_some()
            || self.gateway_id.is_some()
            || !self.labels.is_empty()
            || self.state_dir.is_some()
    }
}

/// Where the policy comes from, resolved.
#[derive(Clone, Debug)]
pub struct Source {
    /// The URL with its placeholders replaced.
    pub url: String,
    pub trusted_key: wardgate_bundle::VerifyingKey,
    pub trusted_key_path: PathBuf,
    pub poll: Duration,
    pub ca_file: Option<PathBuf>,
    pub status_url: Option<String>,
    pub gateway_id: String,
    pub labels: BTreeMap<String, String>,
    pub state_dir: PathBuf,
}

impl Source {
    pub fn persisted(&self) -> PathBuf {
        self.state_dir.join(PERSISTED)
    }

    pub fn active_image(&self) -> PathBuf {
        self.state_dir.join(ACTIVE_IMAGE)
    }

    pub fn candidate_image(&self) -> PathBuf {
        self.state_dir.join(CANDIDATE_IMAGE)
    }
}

/// Parses a poll interval: `30s`, `5m`, `500ms`, `1h`, or whole seconds.
pub fn parse_poll(text: &str) -> anyhow::Result<Duration> {
    let d = if let Ok(secs) = text.trim().parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let signed: jiff::SignedDuration = text.trim().parse().map_err(|_| {
            anyhow::anyhow!("poll interval `{text}` is not a duration (like `30s`, `5m`, `500ms`)")
        })?;
        Duration::try_from(signed)
            .map_err(|_| anyhow::anyhow!("poll interval `{text}` is negative"))?
    };
    if d < Duration::from_millis(100) {
        bail!("poll interval `{text}` is shorter than 100ms");
    }
    Ok(d)
}

/// Gateway ids and label values go into URLs: plain characters only.
fn check_token(what: &str, value: &str) -> anyhow::Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("{what} `{value}` must be 1 to 128 letters, digits, `-`, `_` or `.`");
    }
    Ok(())
}

/// Replaces `{gateway}` and `{LABEL}` in a URL; an unknown placeholder is an error.
pub fn expand(
    template: &str,
    gateway: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .with_context(|| format!("`{template}`: a `{{` without its `}}`"))?;
        let name = &after[..close];
        match (name, labels.get(name)) {
            ("gateway", _) => out.push_str(gateway),
            (_, Some(v)) => out.push_str(v),
            (_, None) => bail!(
                "`{template}`: unknown placeholder `{{{name}}}` (`{{gateway}}` or a label: {})",
                if labels.is_empty() {
                    "none given".to_owned()
                } else {
                    labels
                        .keys()
                        .map(|k| format!("`{{{k}}}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Resolves the file's `source:` section and the flags. `None`: the agent
/// reads a local policy file. Paths in the file are relative to `base`.
pub fn resolve(
    file: Option<SourceFile>,
    flags: SourceFlags,
    base: &Path,
) -> anyhow::Result<Option<Source>> {
    if file.is_none() && !flags.any() {
        return Ok(None);
    }
    let file = file.unwrap_or_default();
    let url = flags
        .url
        .or(file.url)
        .context("a bundle source needs a URL: `--bundle-url URL` or `url:` under `source:`")?;
    let key_path = flags.trusted_key.or(file.trusted_key.map(|p| base.join(p))).context(
        "a bundle source needs the public key bundles are signed with: `--trusted-key PUB` or `trusted_key:` under `source:`",
    )?;
    let trusted_key =
        wardgate_bundle::read_verifying_key(&key_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let poll = match (flags.poll, file.poll) {
        (Some(t), _) | (None, Some(PollText::Text(t))) => parse_poll(&t)?,
        (None, Some(PollText::Seconds(s))) => parse_poll(&s.to_string())?,
        (None, None) => DEFAULT_POLL,
    };
    let mut labels = if flags.labels.is_empty() {
        file.labels.unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    for l in &flags.labels {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("label `{l}` is not KEY=VALUE"))?;
        if labels.insert(k.to_owned(), v.to_owned()).is_some() {
            bail!("label `{k}` is given twice");
        }
    }
    for (k, v) in &labels {
        check_token("label name", k)?;
        check_token("label value", v)?;
        if k == "gateway" {
            bail!("label name `gateway` is reserved (`{{gateway}}` is the gateway id)");
        }
    }
    let gateway_id = flags
        .gateway_id
        .or(file.gateway_id)
        .unwrap_or_else(hostname);
    check_token("gateway id", &gateway_id)?;
    let url = expand(&url, &gateway_id, &labels)?;
    check_url(&url)?;
    let status_url = flags
        .status_url
        .or(file.status_url)
        .map(|u| expand(&u, &gateway_id, &labels))
        .transpose()?;
    if let Some(u) = &status_url {
        check_url(u)?;
    }
    let ca_file = flags.ca_file.or(file.ca_file.map(|p| base.join(p)));
    if let Some(ca) = &ca_file {
        read_ca(ca)?;
    }
    Ok(Some(Source {
        url,
        trusted_key,
        trusted_key_path: key_path,
        poll,
        ca_file,
        status_url,
        gateway_id,
        labels,
        state_dir: flags
            .state_dir
            .or(file.state_dir.map(|p| base.join(p)))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
    }))
}

fn check_url(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        bail!("`{url}` is not an http(s) URL");
    }
    Ok(())
}

fn read_ca(path: &Path) -> anyhow::Result<Vec<ureq::tls::Certificate<'static>>> {
    let bytes = crate::policy::read_regular(path, 4 << 20)
        .with_context(|| format!("cannot read the CA file `{}`", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
            certs.push(c.to_owned());
        }
    }
    if certs.is_empty() {
        bail!("the CA file `{}` holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// What a download brought.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the bundle did not change.
    NotModified,
    New {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

/// The HTTP(S) client: rustls with the system's trust store or the CA file.
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub fn new(source: &Source) -> anyhow::Result<Self> {
        use ureq::tls::{RootCerts, TlsConfig};
        let roots = match &source.ca_file {
            Some(ca) => RootCerts::new_with_certs(&read_ca(ca)?),
            None => RootCerts::PlatformVerifier,
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(HTTP_TIMEOUT))
            .http_status_as_error(false)
            .user_agent(concat!("wardgate-agent/", env!("CARGO_PKG_VERSION")))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        Ok(Self {
            agent: config.into(),
        })
    }

    /// GET with `If-None-Match` when an ETag is known.
    pub fn fetch(&self, url: &str, etag: Option<&str>) -> Result<Fetched, String> {
        let mut req = self.agent.get(url);
        if let Some(etag) = etag {
            req = req.header("If-None-Match", etag);
        }
        let mut resp = req
            .call()
            .map_err(|e| format!("cannot download `{url}`: {e}"))?;
        match resp.status().as_u16() {
            304 => Ok(Fetched::NotModified),
            200 => {
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let mut bytes = Vec::new();
                resp.body_mut()
                    .as_reader()
                    .take(wardgate_bundle::MAX_TOTAL_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| format!("cannot download `{url}`: {e}"))?;
                if bytes.len() as u64 > wardgate_bundle::MAX_TOTAL_BYTES {
                    return Err(format!(
                        "`{url}` is larger than {} bytes",
                        wardgate_bundle::MAX_TOTAL_BYTES
                    ));
                }
                Ok(Fetched::New { bytes, etag })
            }
            s => Err(format!("`{url}` answered HTTP {s}")),
        }
    }

    /// POSTs a JSON status report.
    pub fn post_status(&self, url: &str, body: &BundleStatus) -> Result<(), String> {
        let json = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let resp = self
            .agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(&json[..])
            .map_err(|e| format!("cannot post the status to `{url}`: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "`{url}` answered HTTP {} to the status",
                resp.status().as_u16()
            ))
        }
    }
}

use wardgate_bundle::sha256_hex;

/// The bundle in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    pub manifest: Manifest,
    /// SHA-256 of the whole bundle file.
    pub sha256: String,
}

/// What a downloaded bundle is.
#[derive(Debug)]
pub enum Checked {
    /// Byte for byte the active bundle (a server without ETags).
    Same,
    /// Verified, fresh and newer: ready to activate.
    New(Box<Verified>, String),
}

/// The checks a download passes before anything touches the kernel:
/// signature by the trusted key, every file's hash, not expired, revision
/// greater than the active one.
pub fn check(
    bytes: &[u8],
    key: &wardgate_bundle::VerifyingKey,
    now: Timestamp,
    active: Option<&Active>,
) -> Result<Checked, BundleError> {
    let sha = sha256_hex(bytes);
    if active.is_some_and(|a| a.sha256 == sha) {
        return Ok(Checked::Same);
    }
    let verified = wardgate_bundle::verify(bytes, key)?;
    verified
        .manifest
        .check_fresh(now, active.map(|a| a.manifest.revision))?;
    Ok(Checked::New(Box::new(verified), sha))
}

/// Writes `bytes` to `path` through a temporary file and a rename (mode 0600).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The bundle persisted in the state directory, verified again (signature
/// and hashes; an expired one is still enforced, with a warning, until a
/// newer one arrives).
pub fn load_persisted(source: &Source) -> anyhow::Result<Option<Active>> {
    let path = source.persisted();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    };
    let verified = wardgate_bundle::verify(&bytes, &source.trusted_key).map_err(|e| {
        anyhow::anyhow!("the persisted bundle `{}` is refused: {e}", path.display())
    })?;
    if let Err(e @ BundleError::Expired(_)) = verified.manifest.check_fresh(Timestamp::now(), None)
    {
        log::warn!(
            "bundle: the persisted revision {} {e}; enforcing it until a newer one arrives",
            verified.manifest.revision
        );
    }
    write_atomically(&source.active_image(), &verified.image)
        .with_context(|| format!("cannot write `{}`", source.active_image().display()))?;
    Ok(Some(Active {
        manifest: verified.manifest,
        sha256: sha256_hex(&bytes),
    }))
}

/// Creates the state directory (mode 0700) if missing.
pub fn prepare_state_dir(source: &Source) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if !source.state_dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&source.state_dir)
            .with_context(|| {
                format!(
                    "cannot create the state directory `{}`",
                    source.state_dir.display()
                )
            })?;
    }
    Ok(())
}

/// What `status`, the metrics and the status report show about the bundle source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleStatus {
    pub url: String,
    pub gateway_id: String,
    pub labels: BTreeMap<String, String>,
    pub active_revision: Option<u64>,
    pub active_created: Option<String>,
    pub active_expires: Option<String>,
    /// The last download that succeeded (a verified bundle or a 304), RFC 3339.
    pub last_download: Option<String>,
    /// The last switch to a new revision, RFC 3339.
    pub last_activation: Option<String>,
    pub last_attempt: Option<String>,
    /// Why the last attempt failed; null after a success.
    pub last_error: Option<String>,
    /// `download`, `archive`, `signature`, `unknown_key`, `hash`, `manifest`,
    /// `expired`, `rollback` or `activation`; null after a success.
    pub last_error_reason: Option<String>,
    /// Downloads by result: `new`, `not_modified`, `error`.
    pub downloads: BTreeMap<String, u64>,
    /// Refused or failed attempts by reason.
    pub failures: BTreeMap<String, u64>,
}

/// The puller's state, kept by the running agent.
#[derive(Debug)]
pub struct PullState {
    pub etag: Option<String>,
    pub active: Option<Active>,
    pub status: BundleStatus,
}

impl PullState {
    pub fn new(source: &Source, active: Option<Active>) -> Self {
        let mut s = Self {
            etag: None,
            active: None,
            status: BundleStatus {
                url: source.url.clone(),
                gateway_id: source.gateway_id.clone(),
                labels: source.labels.clone(),
                ..BundleStatus::default()
            },
        };
        s.set_active(active);
        s
    }

    pub fn set_active(&mut self, active: Option<Active>) {
        if let Some(a) = &active {
            self.status.active_revision = Some(a.manifest.revision);
            self.status.active_created = Some(a.manifest.created.clone());
            self.status.active_expires = a.manifest.expires.clone();
        }
        self.active = active;
    }

    pub fn record_download(&mut self, result: &str) {
        *self.status.downloads.entry(result.to_owned()).or_default() += 1;
    }

    pub fn succeeded(&mut self, now: Timestamp) {
        self.status.last_download = Some(now.to_string());
        self.status.last_error = None;
        self.status.last_error_reason = None;
    }

    pub fn failed(&mut self, reason: &str, message: &str) {
        *self.status.failures.entry(reason.to_owned()).or_default() += 1;
        self.status.last_error = Some(message.to_owned());
        self.status.last_error_reason = Some(reason.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_intervals() {
        assert_eq!(parse_poll("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_poll("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_poll("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_poll("2").unwrap(), Duration::from_secs(2));
        assert!(
            parse_poll("soon")
                .unwrap_err()
                .to_string()
                .contains("`soon`")
        );
        assert!(
            parse_poll("10ms")
                .unwrap_err()
                .to_string()
                .contains("shorter")
        );
    }

    #[test]
    fn placeholders() {
        let labels: BTreeMap<String, String> = [("site".to_owned(), "north".to_owned())].into();
        assert_eq!(
            expand("https://b/{site}/{gateway}.tar.gz", "gw-1", &labels).unwrap(),
            "https://b/north/gw-1.tar.gz"
        );
        let err = expand("https://b/{ward}", "gw-1", &labels)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown placeholder `{ward}`"), "{err}");
        assert!(expand("https://b/{gateway", "g", &labels).is_err());
    }

    fn key_file(dir: &Path) -> PathBuf {
        let key = wardgate_bundle::generate_key().unwrap();
        let (_, public) = wardgate_bundle::write_key_pair(&dir.join("k"), &key).unwrap();
        public
    }

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wg-source-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rand_suffix() -> u32 {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn flags_resolve_and_bad_ones_are_clear() {
        let dir = temp();
        let public = key_file(&dir);
        let flags = SourceFlags {
            url: Some("https://b.example/{site}/{gateway}".into()),
            trusted_key: Some(public.clone()),
            poll: Some("2s".into()),
            gateway_id: Some("gw-7".into()),
            labels: vec!["site=north".into()],
            ..SourceFlags::default()
        };
        let s = resolve(None, flags.clone(), &dir).unwrap().unwrap();
        assert_eq!(s.url, "https://b.example/north/gw-7");
        assert_eq!(s.poll, Duration::from_secs(2));
        assert_eq!(s.state_dir, Path::new(DEFAULT_STATE_DIR));
        let err = |f: SourceFlags| resolve(None, f, &dir).unwrap_err().to_string();
        assert!(
            err(SourceFlags {
                url: None,
                ..flags.clone()
            })
            .contains("needs a URL")
        );
        assert!(
            err(SourceFlags {
                trusted_key: None,
                ..flags.clone()
            })
            .contains("public key")
        );
        assert!(
            err(SourceFlags {
                trusted_key: Some(dir.join("none.pub")),
                ..flags.clone()
            })
            .contains("none.pub")
        );
        assert!(
            err(SourceFlags {
                labels: vec!["site".into()],
                ..flags.clone()
            })
            .contains("KEY=VALUE")
        );
        assert!(
            err(SourceFlags {
                gateway_id: Some("a b".into()),
                ..flags.clone()
            })
            .contains("gateway id")
        );
        assert!(
            err(SourceFlags {
                url: Some("ftp://x".into()),
                ..flags.clone()
            })
            .contains("http(s)")
        );
        assert!(
            err(SourceFlags {
                ca_file: Some(public.clone()),
                ..flags.clone()
            })
            .contains("no PEM certificate")
        );
        assert!(
            resolve(None, SourceFlags::default(), &dir)
                .unwrap()
                .is_none()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn downloads_are_checked_before_activation() {
        let key = wardgate_bundle::generate_key().unwrap();
        let image = b"image".to_vec();
        let make = |rev: u64, expires: Option<&str>| {
            let m = wardgate_bundle::manifest_for(&image, rev, expires.map(|e| e.parse().unwrap()));
            wardgate_bundle::build(&m, &image, &[], &key).unwrap()
        };
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let vk = key.verifying_key();
        let b1 = make(1, None);
        let Checked::New(v, sha) = check(&b1, &vk, now, None).unwrap() else {
            panic!("new expected")
        };
        let active = Active {
            manifest: v.manifest.clone(),
            sha256: sha,
        };
        assert!(matches!(
            check(&b1, &vk, now, Some(&active)).unwrap(),
            Checked::Same
        ));
        assert!(matches!(
            check(&make(2, None), &vk, now, Some(&active)).unwrap(),
            Checked::New(..)
        ));
        // Revision 1 again, but not byte for byte the active one.
        let rollback = check(
            &make(1, Some("2030-01-01T00:00:00Z")),
            &vk,
            now,
            Some(&active),
        )
        .unwrap_err();
        assert_eq!(rollback.reason(), "rollback");
        let expired = check(
            &make(3, Some("2026-05-01T00:00:00Z")),
            &vk,
            now,
            Some(&active),
        )
        .unwrap_err();
        assert_eq!(expired.reason(), "expired");
        let other = wardgate_bundle::generate_key().unwrap().verifying_key();
        assert_eq!(
            check(&make(4, None), &other, now, None)
                .unwrap_err()
                .reason(),
            "unknown_key"
        );
    }
}
