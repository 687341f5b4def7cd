//! The bundle puller: at start, the persisted bundle (verified again) or a
//! first download; then a jittered poll with `If-None-Match`. A download is
//! checked off the runtime (signature, hashes, expiry, revision) before the
//! normal atomic reload switches to its image; any failure keeps the policy
//! in force and shows in the log, `status` and the `wardgate_bundle_*`
//! metrics. After each attempt the status is posted when `status_url` is set.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use wardgate_bundle::{Timestamp, Verified};

use crate::bundle_source::{
    Active, Checked, Client, Fetched, PullState, Source, check, load_persisted, prepare_state_dir,
    write_atomically,
};

use super::Ctx;

/// What the poll task needs.
pub(super) struct Puller {
    source: Source,
    client: Arc<Client>,
}

/// Activates the persisted bundle, or downloads a first one; fails (nothing
/// attached) with neither.
pub(super) fn prepare(source: &Source) -> anyhow::Result<(PullState, Puller)> {
    prepare_state_dir(source)?;
    let client = Client::new(source)?;
    if source.url.starts_with("http://") {
        log::warn!(
            "bundle: `{}` is plain HTTP; bundles are still verified, but use HTTPS",
            source.url
        );
    }
    let persisted = match load_persisted(source) {
        Ok(p) => p,
        Err(e) => {
            log::error!("bundle: {e:#}; downloading a new one");
            None
        }
    };
    let mut state = PullState::new(source, None);
    match persisted {
        Some(active) => {
            log::info!(
                "bundle: enforcing the persisted revision {} from `{}`",
                active.manifest.revision,
                source.persisted().display()
            );
            state.set_active(Some(active));
        }
        None => {
            let first = first_download(source, &client).with_context(|| {
                format!(
                    "no policy: no bundle from `{}` and none persisted in `{}`; nothing attached",
                    source.url,
                    source.state_dir.display()
                )
            })?;
            state.record_download("new");
            state.succeeded(Timestamp::now());
            state.etag = first.1;
            log::info!(
                "bundle: downloaded revision {} from `{}`",
                first.0.manifest.revision,
                source.url
            );
            state.set_active(Some(first.0));
        }
    }
    Ok((
        state,
        Puller {
            source: source.clone(),
            client: Arc::new(client),
        },
    ))
}

fn first_download(source: &Source, client: &Client) -> anyhow::Result<(Active, Option<String>)> {
    let Fetched::New { bytes, etag } = client
        .fetch(&source.url, None)
        .map_err(anyhow::Error::msg)?
    else {
        anyhow::bail!("the server answered 304 to a request without an ETag");
    };
    let Checked::New(verified, sha256) = check(&bytes, &source.trusted_key, Timestamp::now(), None)
        .map_err(|e| anyhow::anyhow!("the bundle is refused: {e}"))?
    else {
        unreachable!("with no active bundle every bundle is new");
    };
    write_atomically(&source.active_image(), &verified.image)
        .with_context(|| format!("cannot write `{}`", source.active_image().display()))?;
    write_atomically(&source.persisted(), &bytes)
        .with_context(|| format!("cannot write `{}`", source.persisted().display()))?;
    Ok((
        Active {
            manifest: verified.manifest,
            sha256,
        },
        etag,
    ))
}

/// 75 to 100 % of the poll interval: gateways that started together spread out.
fn jittered(poll: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let frac = f64::from(nanos % 1_000_000) / 1_000_000.0;
    poll.mul_f64(0.75 + 0.25 * frac)
}

/// Polls until the agent stops.
pub(super) async fn task(ctx: Ctx, puller: Puller) {
    loop {
        tokio::time::sleep(jittered(puller.source.poll)).await;
        attempt(&ctx, &puller).await;
    }
}

enum Outcome {
    NotModified,
    Same(Option<String>),
    New {
        verified: Box<Verified>,
        sha256: String,
        bytes: Vec<u8>,
        etag: Option<String>,
    },
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// One poll: download, check, activate; record the outcome and report it.
async fn attempt(ctx: &Ctx, p: &Puller) {
    let (etag, active) = {
        let agent = ctx.agent();
        let Some(state) = agent.pull.as_ref() else {
            return;
        };
        (state.etag.clone(), state.active.clone())
    };
    let client = p.client.clone();
    let source = p.source.clone();
    let outcome =
        tokio::task::spawn_blocking(move || match client.fetch(&source.url, etag.as_deref()) {
            Err(message) => Outcome::Failed {
                reason: "download",
                message,
            },
            Ok(Fetched::NotModified) => Outcome::NotModified,
            Ok(Fetched::New { bytes, etag }) => {
                match check(
                    &bytes,
                    &source.trusted_key,
                    Timestamp::now(),
                    active.as_ref(),
                ) {
                    Ok(Checked::Same) => Outcome::Same(etag),
                    Ok(Checked::New(verified, sha256)) => {
                        match write_atomically(&source.candidate_image(), &verified.image) {
                            Ok(()) => Outcome::New {
                                verified,
                                sha256,
                                bytes,
                                etag,
                            },
                            Err(e) => Outcome::Failed {
                                reason: "activation",
                                message: format!(
                                    "cannot write `{}`: {e}",
                                    source.candidate_image().display()
                                ),
                            },
                        }
                    }
                    Err(e) => Outcome::Failed {
                        reason: e.reason(),
                        message: format!("revision refused: {e}"),
                    },
                }
            }
        })
        .await
        .unwrap_or_else(|e| Outcome::Failed {
            reason: "download",
            message: format!("the download task failed: {e}"),
        });
    let now = Timestamp::now();
    let url = &p.source.url;
    match outcome {
        Outcome::NotModified => {
            let mut agent = ctx.agent();
            if let Some(s) = agent.pull.as_mut() {
                s.record_download("not_modified");
                s.succeeded(now);
            }
            log::debug!("bundle: `{url}` not modified");
        }
        Outcome::Same(etag) => {
            let mut agent = ctx.agent();
            if let Some(s) = agent.pull.as_mut() {
                s.record_download("new");
                s.succeeded(now);
                s.etag = etag;
            }
        }
        Outcome::New {
            verified,
            sha256,
            bytes,
            etag,
        } => {
            let revision = verified.manifest.revision;
            let result = ctx
                .reload_from(
                    Some(p.source.candidate_image()),
                    &format!("bundle revision {revision}"),
                )
                .await;
            let result = result.and_then(|_| {
                std::fs::rename(p.source.candidate_image(), p.source.active_image())
                    .map_err(|e| format!("cannot rename the candidate image: {e}"))?;
                write_atomically(&p.source.persisted(), &bytes)
                    .map_err(|e| format!("cannot persist the bundle: {e}"))
            });
            let mut agent = ctx.agent();
            let generation = agent.generation;
            if let Some(s) = agent.pull.as_mut() {
                s.record_download("new");
                match result {
                    Ok(()) => {
                        s.succeeded(now);
                        s.etag = etag;
                        s.status.last_activation = Some(now.to_string());
                        s.set_active(Some(Active {
                            manifest: verified.manifest,
                            sha256,
                        }));
                        log::info!(
                            "bundle: activated revision {revision} from `{url}` (generation {generation})"
                        );
                    }
                    Err(message) => {
                        let _ = std::fs::remove_file(p.source.candidate_image());
                        let message = format!("revision {revision} not activated: {message}");
                        log::error!("bundle: {message}; the policy in force stays");
                        s.failed("activation", &message);
                    }
                }
            }
        }
        Outcome::Failed { reason, message } => {
            let mut agent = ctx.agent();
            if let Some(s) = agent.pull.as_mut() {
                if reason == "download" {
                    s.record_download("error");
                } else {
                    s.record_download("new");
                }
                s.failed(reason, &message);
                log::error!(
                    "bundle: `{url}`: {message} [{reason}]; the policy in force stays (revision {})",
                    s.status
                        .active_revision
                        .map_or_else(|| "none".to_owned(), |r| r.to_string())
                );
            }
        }
    }
    if let Some(status_url) = p.source.status_url.clone() {
        let status = {
            let mut agent = ctx.agent();
            agent.pull.as_mut().map(|s| {
                s.status.last_attempt = Some(now.to_string());
                s.status.clone()
            })
        };
        if let Some(status) = status {
            let client = p.client.clone();
            let posted =
                tokio::task::spawn_blocking(move || client.post_status(&status_url, &status)).await;
            if let Ok(Err(e)) = posted {
                log::warn!("bundle: {e}");
            }
        }
    } else if let Some(s) = ctx.agent().pull.as_mut() {
        s.status.last_attempt = Some(now.to_string());
    }
}
