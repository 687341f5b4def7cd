//! The server loop: one thread, one message at a time, in order.
//!
//! Requests are answered in the order they come; every edit re-analyses
//! the document and publishes its diagnostics before the next message is
//! read. Nothing the client sends stops the server but the end of its
//! input or `exit`: a malformed frame gets an error response (id `null`), an
//! unknown method `MethodNotFound`, bad parameters `InvalidParams`, and a
//! bug in a handler `InternalError` (the panic is caught).

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Notification as _,
    PublishDiagnostics,
};
use lsp_types::request::{
    CodeActionRequest, Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest,
    References, Request as _,
};
use lsp_types::{
    CodeActionOrCommand, CodeActionProviderCapability, CompletionOptions, CompletionResponse,
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DocumentSymbolResponse, GotoDefinitionResponse, Hover, HoverContents, HoverProviderCapability,
    InitializeResult, MarkupContent, MarkupKind, OneOf, PublishDiagnosticsParams,
    ServerCapabilities, ServerInfo, TextDocumentSyncCapability, TextDocumentSyncKind, TextEdit,
    Url,
};
use serde_json::Value;
use wardgate_lang::FileId;
use wardgate_lang::date::Date;

use super::documents::Documents;
use super::position::LineIndex;
use super::transport::{self, Incoming, Reader};
use super::{actions, completion, diagnostics, hover, navigation, symbols};

/// `ServerNotInitialized`: a request before `initialize`.
const SERVER_NOT_INITIALIZED: i32 = -32002;

type Failure = (i32, String);

/// Serves one client until `exit` or the end of the input. `Ok(true)` when
/// the client shut the server down first (exit code 0), `Ok(false)`
/// otherwise (exit code 1, as the protocol asks).
///
/// # Errors
/// I/O errors of the input or output.
pub fn serve(input: impl BufRead, output: impl Write) -> io::Result<bool> {
    let mut server = Server {
        out: output,
        docs: Documents::default(),
        today: Date::today_utc(),
        initialized: false,
        shut_down: false,
        published: HashMap::new(),
        closed: Vec::new(),
    };
    let mut reader = Reader::new(input);
    while let Some(frame) = reader.read()? {
        match frame {
            Incoming::Malformed(code, why) => server.send(&serde_json::json!({
                "id": null,
                "error": { "code": code, "message": why },
            }))?,
            Incoming::Message(Message::Request(req)) => server.request(req)?,
            Incoming::Message(Message::Notification(n)) => {
                if n.method == "exit" {
                    return Ok(server.shut_down);
                }
                server.notification(n)?;
            }
            // The server sends no requests, so expects no responses.
            Incoming::Message(Message::Response(_)) => {}
        }
    }
    Ok(false)
}

struct Server<W> {
    out: W,
    docs: Documents,
    /// The date `until` is judged against: today (UTC), or the client's
    /// `initializationOptions.today`.
    today: Date,
    initialized: bool,
    shut_down: bool,
    /// The files each open document last published diagnostics for.
    published: HashMap<Url, HashSet<Url>>,
    /// Documents closed by the notification being handled.
    closed: Vec<Url>,
}

fn params<P: serde::de::DeserializeOwned>(value: Value) -> Result<P, Failure> {
    serde_json::from_value(value).map_err(|e| {
        (
            ErrorCode::InvalidParams as i32,
            format!("invalid parameters: {e}"),
        )
    })
}

fn to_value(v: impl serde::Serialize) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError as i32, e.to_string()))
}

impl<W: Write> Server<W> {
    fn send(&mut self, message: &impl serde::Serialize) -> io::Result<()> {
        transport::write(&mut self.out, message)
    }

    fn respond(&mut self, id: RequestId, result: Result<Value, Failure>) -> io::Result<()> {
        let response = match result {
            Ok(v) => Response::new_ok(id, v),
            Err((code, message)) => Response::new_err(id, code, message),
        };
        self.send(&Message::Response(response))
    }

    fn request(&mut self, req: Request) -> io::Result<()> {
        let id = req.id.clone();
        let result = if self.shut_down {
            Err((
                ErrorCode::InvalidRequest as i32,
                "the server is shut down".to_string(),
            ))
        } else if req.method == "initialize" {
            self.initialize(req.params)
        } else if !self.initialized {
            Err((SERVER_NOT_INITIALIZED, "`initialize` first".to_string()))
        } else if req.method == "shutdown" {
            self.shut_down = true;
            Ok(Value::Null)
        } else {
            catch_unwind(AssertUnwindSafe(|| self.handle(&req.method, req.params))).unwrap_or_else(
                |_| {
                    Err((
                        ErrorCode::InternalError as i32,
                        format!("internal error in `{}`", req.method),
                    ))
                },
            )
        };
        self.respond(id, result)
    }

    fn initialize(&mut self, p: Value) -> Result<Value, Failure> {
        if self.initialized {
            return Err((
                ErrorCode::InvalidRequest as i32,
                "already initialized".to_string(),
            ));
        }
        let p: lsp_types::InitializeParams = params(p)?;
        if let Some(today) = p
            .initialization_options
            .as_ref()
            .and_then(|o| o.get("today"))
            .and_then(Value::as_str)
        {
            self.today = today.parse().map_err(|e| {
                (
                    ErrorCode::InvalidParams as i32,
                    format!("`{today}` is not a date: {e}"),
                )
            })?;
        }
        self.initialized = true;
        to_value(InitializeResult {
            capabilities: capabilities(),
            server_info: Some(ServerInfo {
                name: "wardgate".to_string(),
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
            }),
        })
    }

    fn handle(&mut self, method: &str, p: Value) -> Result<Value, Failure> {
        match method {
            HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = params(p)?;
                let tdp = p.text_document_position_params;
                let Some(doc) = self.docs.open.get(&tdp.text_document.uri) else {
                    return Ok(Value::Null);
                };
                let idx = LineIndex::new(&doc.text);
                let at = idx.offset(tdp.position);
                match hover::hover(&doc.snapshot, FileId(0), at) {
                    Some((text, span)) => to_value(Hover {
                        contents: HoverContents::Markup(MarkupContent {
                            kind: MarkupKind::Markdown,
                            value: text,
                        }),
                        range: Some(idx.range(span.start, span.end)),
                    }),
                    None => Ok(Value::Null),
                }
            }
            GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = params(p)?;
                let tdp = p.text_document_position_params;
                let Some(doc) = self.docs.open.get(&tdp.text_document.uri) else {
                    return Ok(Value::Null);
                };
                let at = LineIndex::new(&doc.text).offset(tdp.position);
                let found = navigation::definition(&doc.snapshot, at);
                if found.is_empty() {
                    Ok(Value::Null)
                } else {
                    to_value(GotoDefinitionResponse::Array(found))
                }
            }
            References::METHOD => {
                let p: lsp_types::ReferenceParams = params(p)?;
                let tdp = p.text_document_position;
                let Some(doc) = self.docs.open.get(&tdp.text_document.uri) else {
                    return Ok(Value::Null);
                };
                let at = LineIndex::new(&doc.text).offset(tdp.position);
                to_value(navigation::references(
                    &doc.snapshot,
                    at,
                    p.context.include_declaration,
                ))
            }
            Completion::METHOD => {
                let p: lsp_types::CompletionParams = params(p)?;
                let tdp = p.text_document_position;
                let Some(doc) = self.docs.open.get(&tdp.text_document.uri) else {
                    return Ok(Value::Null);
                };
                let at = LineIndex::new(&doc.text).offset(tdp.position);
                to_value(CompletionResponse::Array(completion::complete(
                    &doc.snapshot,
                    &doc.text,
                    at,
                )))
            }
            Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams = params(p)?;
                let Some(doc) = self.docs.open.get(&p.text_document.uri) else {
                    return Ok(Value::Null);
                };
                // `wardgate fmt`'s function; a file with syntax errors is
                // left alone (its errors are already diagnostics).
                let edits = match wardgate_lang::fmt::format_source(&doc.text) {
                    Ok(formatted) if formatted != doc.text => {
                        let idx = LineIndex::new(&doc.text);
                        vec![TextEdit::new(idx.range(0, doc.text.len()), formatted)]
                    }
                    _ => Vec::new(),
                };
                to_value(edits)
            }
            DocumentSymbolRequest::METHOD => {
                let p: lsp_types::DocumentSymbolParams = params(p)?;
                let Some(doc) = self.docs.open.get(&p.text_document.uri) else {
                    return Ok(Value::Null);
                };
                to_value(DocumentSymbolResponse::Nested(symbols::document_symbols(
                    &doc.snapshot.loaded,
                )))
            }
            CodeActionRequest::METHOD => {
                let p: lsp_types::CodeActionParams = params(p)?;
                let uri = p.text_document.uri;
                let Some(doc) = self.docs.open.get(&uri) else {
                    return Ok(Value::Null);
                };
                let idx = LineIndex::new(&doc.text);
                let (a, b) = (idx.offset(p.range.start), idx.offset(p.range.end));
                let found: Vec<CodeActionOrCommand> = actions::actions(&doc.snapshot, &uri, a, b)
                    .into_iter()
                    .map(CodeActionOrCommand::CodeAction)
                    .collect();
                to_value(found)
            }
            _ => Err((
                ErrorCode::MethodNotFound as i32,
                format!("unknown method `{method}`"),
            )),
        }
    }

    fn notification(&mut self, n: Notification) -> io::Result<()> {
        if !self.initialized {
            return Ok(());
        }
        let today = self.today;
        let changed = catch_unwind(AssertUnwindSafe(|| -> Vec<Url> {
            match n.method.as_str() {
                DidOpenTextDocument::METHOD => {
                    let Ok(p) = params::<DidOpenTextDocumentParams>(n.params) else {
                        return Vec::new();
                    };
                    let d = p.text_document;
                    self.docs.set(d.uri, d.text, d.version, today)
                }
                DidChangeTextDocument::METHOD => {
                    let Ok(p) = params::<DidChangeTextDocumentParams>(n.params) else {
                        return Vec::new();
                    };
                    let uri = p.text_document.uri;
                    let Some(doc) = self.docs.open.get(&uri) else {
                        return Vec::new();
                    };
                    let mut text = doc.text.clone();
                    for change in p.content_changes {
                        match change.range {
                            Some(r) => {
                                let idx = LineIndex::new(&text);
                                let (a, b) = (idx.offset(r.start), idx.offset(r.end));
                                text.replace_range(a..b.max(a), &change.text);
                            }
                            None => text = change.text,
                        }
                    }
                    self.docs.set(uri, text, p.text_document.version, today)
                }
                DidCloseTextDocument::METHOD => {
                    let Ok(p) = params::<DidCloseTextDocumentParams>(n.params) else {
                        return Vec::new();
                    };
                    let uri = p.text_document.uri;
                    let changed = self.docs.close(&uri, today);
                    self.closed.push(uri);
                    changed
                }
                _ => Vec::new(),
            }
        }));
        match changed {
            Ok(uris) => {
                for uri in std::mem::take(&mut self.closed) {
                    self.unpublish(&uri)?;
                }
                for uri in uris {
                    self.publish(&uri)?;
                }
                Ok(())
            }
            Err(_) => {
                eprintln!("wardgate lsp: internal error in `{}`", n.method);
                Ok(())
            }
        }
    }

    /// Publishes an open document's diagnostics: its own, and those of
    /// the files it reads that are not open themselves; clears the files
    /// it published for before and no longer has findings in.
    fn publish(&mut self, uri: &Url) -> io::Result<()> {
        let Some(doc) = self.docs.open.get(uri) else {
            return Ok(());
        };
        let mut batches = Vec::new();
        let mut targets = HashSet::new();
        for (file, diags) in diagnostics::by_file(&doc.snapshot) {
            let Some(target) = diagnostics::file_uri(&doc.snapshot, uri, file) else {
                continue;
            };
            if file != FileId(0) && self.docs.open.contains_key(&target) {
                continue;
            }
            let version = (file == FileId(0)).then_some(doc.version);
            targets.insert(target.clone());
            batches.push(PublishDiagnosticsParams::new(target, diags, version));
        }
        let before = self.published.insert(uri.clone(), targets.clone());
        for stale in before.unwrap_or_default().difference(&targets) {
            batches.push(PublishDiagnosticsParams::new(
                stale.clone(),
                Vec::new(),
                None,
            ));
        }
        for b in batches {
            self.notify::<PublishDiagnostics>(b)?;
        }
        Ok(())
    }

    /// Clears everything a closed document published.
    fn unpublish(&mut self, uri: &Url) -> io::Result<()> {
        let mut targets = self.published.remove(uri).unwrap_or_default();
        targets.insert(uri.clone());
        for t in targets {
            self.notify::<PublishDiagnostics>(PublishDiagnosticsParams::new(t, Vec::new(), None))?;
        }
        Ok(())
    }

    fn notify<N: lsp_types::notification::Notification>(
        &mut self,
        params: N::Params,
    ) -> io::Result<()> {
        let n = Notification::new(N::METHOD.to_string(), params);
        self.send(&Message::Notification(n))
    }
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(
            TextDocumentSyncKind::INCREMENTAL,
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![":".into(), "/".into()]),
            ..CompletionOptions::default()
        }),
        document_formatting_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        ..ServerCapabilities::default()
    }
}
