//! The control socket's server. Bounded by design: a request line is at
//! most [`MAX_LINE`] bytes (a longer one gets an error and the connection is
//! closed), a connection that sends no complete request for [`IDLE`] is
//! closed, and at most [`MAX_CONNECTIONS`] are open: a new one closes the
//! connection that has been idle longest, so idle clients never lock out an
//! operator.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::Notify,
};

use crate::control::{self, MAX_LINE, Response};

use super::{Ctx, lock};

pub const MAX_CONNECTIONS: usize = 128;
pub const IDLE: Duration = Duration::from_secs(30);

/// Open connections by age (ids grow), with whether each is idle.
#[derive(Default)]
struct Connections {
    next: u64,
    open: BTreeMap<u64, (bool, Arc<Notify>)>,
}

type Registry = Arc<Mutex<Connections>>;

/// Registers a new connection; closes the oldest idle one when full.
/// `None`: full of busy connections, refuse this one.
fn register(registry: &Registry) -> Option<(u64, Arc<Notify>)> {
    let mut conns = lock(registry);
    if conns.open.len() >= MAX_CONNECTIONS {
        let oldest_idle = conns
            .open
            .iter()
            .find(|(_, (idle, _))| *idle)
            .map(|(id, _)| *id)?;
        if let Some((_, evict)) = conns.open.remove(&oldest_idle) {
            evict.notify_one();
        }
    }
    let id = conns.next;
    conns.next += 1;
    let evict = Arc::new(Notify::new());
    conns.open.insert(id, (true, evict.clone()));
    Some((id, evict))
}

fn set_idle(registry: &Registry, id: u64, idle: bool) {
    if let Some(entry) = lock(registry).open.get_mut(&id) {
        entry.0 = idle;
    }
}

pub(super) async fn serve(ctx: Ctx, listener: UnixListener) {
    let registry = Registry::default();
    loop {
        match listener.accept().await {
            Ok((mut stream, _)) => match register(&registry) {
                Some((id, evict)) => {
                    let (ctx, registry) = (ctx.clone(), registry.clone());
                    tokio::spawn(async move {
                        connection(&ctx, &registry, id, &evict, stream).await;
                        lock(&registry).open.remove(&id);
                    });
                }
                None => {
                    let _ = reply(
                        &mut stream,
                        &Response::error("too many control connections are busy; try again"),
                    )
                    .await;
                }
            },
            Err(e) => {
                log::error!("control socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn reply(
    write: &mut (impl tokio::io::AsyncWrite + Unpin),
    response: &Response,
) -> std::io::Result<()> {
    let mut text = serde_json::to_string(response).expect("responses serialize");
    text.push('\n');
    write.write_all(text.as_bytes()).await
}

/// One line of at most `MAX_LINE` bytes (without its newline). `Ok(None)`
/// at the end of the stream; an error for a longer line.
async fn read_line(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if line.len() + chunk.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        line.extend_from_slice(chunk);
        match done {
            Some(n) => {
                reader.consume(n);
                return Ok(Some(line));
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

async fn connection(ctx: &Ctx, registry: &Registry, id: u64, evict: &Notify, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let line = tokio::select! {
            r = tokio::time::timeout(IDLE, read_line(&mut reader)) => r,
            () = evict.notified() => return,
        };
        let line = match line {
            Err(_) | Ok(Ok(None)) => return,
            Ok(Ok(Some(line))) => line,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                let _ = reply(
                    &mut write,
                    &Response::error(format!(
                        "bad request: a request line is at most {MAX_LINE} bytes"
                    )),
                )
                .await;
                return;
            }
            Ok(Err(_)) => return,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        set_idle(registry, id, false);
        let response = match control::parse(&line) {
            Ok(req) => ctx.handle(req).await,
            Err(resp) => resp,
        };
        set_idle(registry, id, true);
        if reply(&mut write, &response).await.is_err() {
            return;
        }
    }
}
