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
    pub fn ok(result: serde_json::Value) -> Self {
        Self {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }
}

/// Parses one request line; the error is the response to send.
pub fn parse(line: &str) -> Result<Request, Response> {
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
    #[error("no agent is listening on `{path}` ({source}); is `wardgate-agent run` running?")]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    #[error("{0:#}")]
    Io(anyhow::Error),
}

/// Sends one request to the agent at `socket` and waits for its response
/// (up to `timeout`; a reload of a large policy can take a while).
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::NotRunning {
        path: socket.display().to_string(),
        source,
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
    reader
        .read_line(&mut answer)
        .map_err(|e| io(e, "reading the response"))?;
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
            assert_eq!(parse(line).unwrap(), req);
            assert_eq!(serde_json::to_string(&req).unwrap(), line);
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        for line in [
            "",
            "status",
            r#"{"command":"frobnicate"}"#,
            r#"{"command":"quarantine-add"}"#,
            r#"{"command":"status","extra":1}"#,
        ] {
            let err = parse(line).unwrap_err();
            assert!(!err.ok);
            assert!(err.error.unwrap().starts_with("bad request"), "{line}");
        }
    }
}
