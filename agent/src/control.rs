//! The control protocol: line-delimited JSON over a Unix socket that only the
//! agent's owner can open (mode 0600). Documented in `docs/agent.md`
//! ("Control protocol"); keep the two in step.
//!
//! Each request is one JSON object on one line, `{"command": ...}` with the
//! command's arguments; each gets one response line: `{"ok": true,
//! "result": ...}` or `{"ok": false, "error": "..."}`. A bad request gets an
//! error and changes nothing. A connection may carry several requests.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
/// Results are JSON values.
pub use serde_json::Value;

/// Parses one JSON value (a response's result, an event log line).
pub fn parse_value(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str(text)
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Policy, generation, interfaces and modes, counters summary.
    Status {},
    /// Recompile (or re-verify) the policy file and switch to it.
    Reload {},
    /// Drop every packet from or to `address`, tracked connections included.
    QuarantineAdd {
        address: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Lift the quarantine of `address`.
    QuarantineRemove { address: String },
    /// Every quarantined address.
    QuarantineList {},
    /// Detach from every interface, unpin everything and stop the agent.
    Detach {},
    /// Reopen the event log file (after log rotation); the policy is not reloaded.
    ReopenLog {},
}

/// The result of `reload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResult {
    /// False when the policy on disk is the one in force (same hash).
    pub changed: bool,
    pub generation: u32,
    /// `sha256:<hex>`.
    pub hash: String,
}

/// The result of `quarantine-add` and `quarantine-remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineResult {
    pub address: std::net::IpAddr,
    pub quarantined: bool,
}

/// One entry of `quarantine-list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub address: std::net::IpAddr,
    /// Kept by the running agent only: null for entries it did not add.
    pub reason: Option<String>,
    /// RFC 3339; null for entries the running agent did not add.
    pub since: Option<String>,
}

/// The result of `detach`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachResult {
    pub interfaces: Vec<String>,
    pub maps: usize,
}

/// The result of `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub uptime_secs: u64,
    pub adopted: bool,
    pub policy: PolicyStatus,
    pub monitor_all: bool,
    pub fast_path: bool,
    pub pin_path: std::path::PathBuf,
    pub interfaces: Vec<InterfaceStatus>,
    pub summary: Summary,
    /// Every datapath counter by name.
    pub counters: std::collections::BTreeMap<String, u64>,
    pub failsafe: FailsafeStatus,
    pub reloads: ReloadsStatus,
    /// The bundle source, when the policy is pulled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<crate::bundle_source::BundleStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub file: std::path::PathBuf,
    /// `source` or `image`.
    pub kind: String,
    pub hash: String,
    pub generation: u32,
    pub loaded_at: Option<String>,
    pub zones: usize,
    pub rules: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    /// `driver` or `generic`.
    pub mode: String,
    pub adopted: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub packets: u64,
    pub passed: u64,
    pub dropped: u64,
    pub audited: u64,
    /// From the last walk of the connection table (every few seconds, off the control path).
    pub tracked_connections: u64,
    pub quarantined: u64,
    pub events_written: u64,
    pub events_write_failed: u64,
    pub events_lost: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailsafeStatus {
    pub enabled: bool,
    pub ports: Vec<u16>,
    pub entries: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadsStatus {
    pub success: u64,
    pub failure: u64,
    /// The first lines of the last error (cut); null after a success.
    pub last_error: Option<String>,
}

/// A response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success carrying `result`.
    pub fn ok(result: &impl Serialize) -> Self {
        Self {
            ok: true,
            result: Some(serde_json::to_value(result).expect("results serialize")),
            error: None,
        }
    }

    /// The result as its typed message.
    pub fn result_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.result.clone().unwrap_or_default())
            .map_err(|e| format!("unexpected answer from the agent: {e}"))
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

/// The longest request line the agent reads; a longer one gets an error and
/// the connection is closed.
pub const MAX_LINE: usize = 64 * 1024;

/// Parses one request line; the error is the response to send.
pub fn parse(line: &[u8]) -> Result<Request, Response> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(Response::error(
            "bad request: the line is not UTF-8; expected one JSON object per line",
        ));
    };
    serde_json::from_str(line).map_err(|e| {
        Response::error(format!(
            "bad request: {e}; expected one JSON object per line such as \
             {{\"command\":\"status\"}} (see docs/agent.md)"
        ))
    })
}

/// Why a request could not be made (as opposed to a request the agent refused).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the path (no such socket, or connection refused):
    /// the only error that means "no agent runs there".
    #[error("no agent is listening on `{path}` ({source}); is `wardgate-agent run` running?")]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    #[error("permission denied on `{path}`: run as root (the control socket is owner-only)")]
    PermissionDenied { path: String },
    #[error("cannot connect to `{path}`: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    /// The request was sent, but no answer came in time: it may still take
    /// effect, so the client must never report it as not done.
    #[error(
        "the agent on `{path}` did not answer within {seconds} s; the request was sent and may \
         still take effect: check with `wardgate-agent status` or `quarantine list`"
    )]
    NoAnswer { path: String, seconds: u64 },
    #[error("{0:#}")]
    Io(anyhow::Error),
}

/// Sends one request to the agent at `socket` and waits for its response
/// (up to `timeout`; a reload of a large policy can take a while).
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let stream = UnixStream::connect(socket).map_err(|source| match source.raw_os_error() {
        Some(libc::ENOENT | libc::ECONNREFUSED) => ClientError::NotRunning {
            path: path.clone(),
            source,
        },
        Some(libc::EACCES | libc::EPERM) => ClientError::PermissionDenied { path: path.clone() },
        _ => ClientError::Connect {
            path: path.clone(),
            source,
        },
    })?;
    let io = |e: std::io::Error, what: &str| {
        ClientError::Io(anyhow::Error::new(e).context(what.to_owned()))
    };
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| io(e, "setting a timeout"))?;
    let mut line = serde_json::to_string(req).expect("requests serialize");
    line.push('\n');
    (&stream)
        .write_all(line.as_bytes())
        .map_err(|e| io(e, "sending the request"))?;
    let mut reader = BufReader::new(&stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ClientError::NoAnswer {
            path: path.clone(),
            seconds: timeout.as_secs().max(1),
        },
        _ => io(e, "reading the response"),
    })?;
    serde_json::from_str(&answer)
        .context("the agent's response is not JSON")
        .map_err(ClientError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for (line, req) in [
            (r#"{"command":"status"}"#, Request::Status {}),
            (r#"{"command":"reload"}"#, Request::Reload {}),
            (
                r#"{"command":"quarantine-add","address":"10.0.0.1","reason":"ransomware"}"#,
                Request::QuarantineAdd {
                    address: "10.0.0.1".into(),
                    reason: Some("ransomware".into()),
                },
            ),
            (
                r#"{"command":"quarantine-remove","address":"10.0.0.1"}"#,
                Request::QuarantineRemove {
                    address: "10.0.0.1".into(),
                },
            ),
        ] {
            assert_eq!(parse(line.as_bytes()).unwrap(), req);
            assert_eq!(serde_json::to_string(&req).unwrap(), line);
        }
    }

    #[test]
    fn a_request_left_unanswered_is_never_reported_as_not_done() {
        let dir = std::env::temp_dir().join(format!("wg-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("silent.sock");
        let _ = std::fs::remove_file(&socket);
        // An agent that takes the request and never answers.
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = request(
            &socket,
            &Request::QuarantineAdd {
                address: "10.0.0.1".into(),
                reason: None,
            },
            Duration::from_millis(100),
        )
        .unwrap_err();
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(err, ClientError::NoAnswer { .. }), "{err:?}");
        assert!(err.to_string().contains("may still take effect"), "{err}");
    }

    #[test]
    fn bad_requests_are_refused() {
        for line in [
            "",
            "status",
            r#"{"command":"frobnicate"}"#,
            r#"{"command":"quarantine-add"}"#,
            r#"{"command":"status","extra":1}"#,
            "\u{fffd}",
        ] {
            let err = parse(line.as_bytes()).unwrap_err();
            assert!(!err.ok);
            assert!(err.error.unwrap().starts_with("bad request"), "{line}");
        }
    }
}

#[cfg(test)]
mod typed {
    use super::*;

    #[test]
    fn non_utf8_lines_get_an_answer() {
        let err = parse(b"{\"command\":\"st\xffatus\"}").unwrap_err();
        assert!(err.error.unwrap().contains("not UTF-8"));
    }

    #[test]
    fn typed_results_round_trip() {
        let r = ReloadResult {
            changed: true,
            generation: 4,
            hash: "sha256:ab".into(),
        };
        let resp = Response::ok(&r);
        let line = serde_json::to_string(&resp).unwrap();
        assert_eq!(
            line,
            r#"{"ok":true,"result":{"changed":true,"generation":4,"hash":"sha256:ab"}}"#
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back.result_as::<ReloadResult>().unwrap(), r);
    }
}
