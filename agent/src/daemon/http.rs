//! The metrics server (HTTP/1, `GET` or `HEAD /metrics`). Bounded: request
//! headers must arrive within [`HEADER_TIMEOUT`], a connection lives at most
//! [`MAX_LIFETIME`], and at most [`MAX_CONNECTIONS`] are open (a new one
//! closes the oldest), so slow or idle clients cannot exhaust descriptors.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http_body_util::Full;
use hyper::{Method, body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Notify};

use crate::metrics;

use super::{Ctx, lock, views};

pub const MAX_CONNECTIONS: usize = 128;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_LIFETIME: Duration = Duration::from_secs(60);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn respond(
    ctx: Ctx,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let head = req.method() == Method::HEAD;
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let input = views::metrics_input(&ctx.shared).await;
            (200, OPENMETRICS, metrics::render(&input))
        }
        (&Method::GET | &Method::HEAD, "/") => (
            200,
            "text/plain; charset=utf-8",
            "wardgate-agent: metrics at /metrics\n".to_owned(),
        ),
        _ => (404, "text/plain; charset=utf-8", "not found\n".to_owned()),
    };
    let body = if head { String::new() } else { body };
    Ok(hyper::Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response"))
}

pub(super) async fn serve(ctx: Ctx, listener: TcpListener) {
    let open: Arc<Mutex<BTreeMap<u64, Arc<Notify>>>> = Arc::default();
    let mut next = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let id = next;
        next += 1;
        let evict = Arc::new(Notify::new());
        {
            let mut conns = lock(&open);
            if conns.len() >= MAX_CONNECTIONS
                && let Some((_, oldest)) = conns.pop_first()
            {
                oldest.notify_one();
            }
            conns.insert(id, evict.clone());
        }
        let (ctx, open) = (ctx.clone(), open.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(ctx.clone(), req));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = tokio::time::timeout(MAX_LIFETIME, conn) => {}
                () = evict.notified() => {}
            }
            lock(&open).remove(&id);
        });
    }
}
