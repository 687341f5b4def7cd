//! JSON-RPC framing over a byte stream (`Content-Length` headers), tolerant
//! of bad input.
//!
//! `lsp-server`'s own reader ends the connection on the first malformed
//! message; a language server fed by an editor plugin should answer it with
//! an error and go on. This reader reports a bad frame as
//! [`Incoming::Malformed`] and resynchronizes on the next `Content-Length`
//! header.

use std::io::{self, BufRead, Read, Write};

use lsp_server::Message;

/// Largest message body read: larger frames are skipped and reported.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// The JSON-RPC error codes of bad frames.
pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;

/// One frame read.
#[derive(Debug)]
pub enum Incoming {
    Message(Message),
    /// A frame that is not a JSON-RPC message: the error code to answer
    /// with (`PARSE_ERROR`, `INVALID_REQUEST`) and why.
    Malformed(i32, String),
}

pub struct Reader<R> {
    input: R,
}

const HEADER: &[u8] = b"content-length:";

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Self { input }
    }

    /// The next frame; `None` at the end of the input.
    ///
    /// # Errors
    /// Only I/O errors of the input.
    pub fn read(&mut self) -> io::Result<Option<Incoming>> {
        let mut length: Option<Result<usize, String>> = None;
        let mut in_header = false;
        loop {
            let mut line = Vec::new();
            if self.input.read_until(b'\n', &mut line)? == 0 {
                return Ok(None);
            }
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                if in_header {
                    break;
                }
                continue;
            }
            // The header may follow the rest of a bad frame on one line.
            let lower = trimmed.to_ascii_lowercase();
            if let Some(at) = find(&lower, HEADER) {
                in_header = true;
                let value = String::from_utf8_lossy(&trimmed[at + HEADER.len()..]);
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| format!("invalid content-length `{}`", value.trim())),
                );
            }
            // Other headers (`Content-Type`) are ignored, and bytes outside
            // any frame skipped until a header.
        }
        let length = match length {
            Some(Ok(n)) => n,
            Some(Err(why)) => return Ok(Some(Incoming::Malformed(PARSE_ERROR, why))),
            None => unreachable!("a header block starts with content-length"),
        };
        if length > MAX_BODY {
            io::copy(&mut (&mut self.input).take(length as u64), &mut io::sink())?;
            return Ok(Some(Incoming::Malformed(
                PARSE_ERROR,
                format!("message of {length} bytes is larger than {MAX_BODY}"),
            )));
        }
        let mut body = vec![0; length];
        if let Err(e) = self.input.read_exact(&mut body) {
            return if e.kind() == io::ErrorKind::UnexpectedEof {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(parse(&body)))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse(body: &[u8]) -> Incoming {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let why = if std::str::from_utf8(body).is_err() {
                "message is not UTF-8 text".to_string()
            } else {
                format!("message is not JSON: {e}")
            };
            return Incoming::Malformed(PARSE_ERROR, why);
        }
    };
    match serde_json::from_value::<Message>(value) {
        Ok(m) => Incoming::Message(m),
        Err(_) => Incoming::Malformed(
            INVALID_REQUEST,
            "message is not a JSON-RPC request, response or notification".to_string(),
        ),
    }
}

/// Writes one message (an `lsp_server::Message`, or any JSON object of
/// one) with its header and flushes.
///
/// # Errors
/// I/O errors of the output.
pub fn write(out: &mut impl Write, message: &impl serde::Serialize) -> io::Result<()> {
    #[derive(serde::Serialize)]
    struct JsonRpc<'a, T> {
        jsonrpc: &'static str,
        #[serde(flatten)]
        message: &'a T,
    }
    let body = serde_json::to_vec(&JsonRpc {
        jsonrpc: "2.0",
        message,
    })?;
    write!(out, "Content-Length: {}\r\n\r\n", body.len())?;
    out.write_all(&body)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Incoming> {
        let mut r = Reader::new(input);
        let mut out = Vec::new();
        while let Some(i) = r.read().unwrap() {
            out.push(i);
        }
        out
    }

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn reads_messages_and_resynchronizes_after_bad_frames() {
        let ok = r#"{"jsonrpc":"2.0","method":"exit"}"#;
        let mut input = frame(ok).into_bytes();
        input.extend(frame("{not json").into_bytes());
        input.extend(b"Content-Length: abc\r\n\r\n{\"x\":1}");
        input.extend(frame(r#"{"x":1}"#).into_bytes());
        let mut bad = b"Content-Length: 3\r\n\r\n\"\xff\"".to_vec();
        input.append(&mut bad);
        input.extend(frame(ok).into_bytes());
        let got = frames(&input);
        let kinds: Vec<String> = got
            .iter()
            .map(|i| match i {
                Incoming::Message(_) => "message".to_string(),
                Incoming::Malformed(c, why) => format!("{c} {why}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "message",
                "-32700 message is not JSON: key must be a string at line 1 column 2",
                "-32700 invalid content-length `abc`",
                "-32600 message is not a JSON-RPC request, response or notification",
                "-32700 message is not UTF-8 text",
                "message"
            ]
        );
    }

    #[test]
    fn a_truncated_frame_ends_the_input() {
        assert!(frames(b"Content-Length: 10\r\n\r\n{}").is_empty());
    }

    #[test]
    fn writes_jsonrpc_member() {
        let mut out = Vec::new();
        let m = Message::Notification(lsp_server::Notification::new(
            "x".into(),
            serde_json::json!({}),
        ));
        write(&mut out, &m).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"x\""),
            "{text}"
        );
    }
}
