//! Policy reloads: compile off the runtime, switch only to a policy whose
//! files did not change while they were read, keep the policy in force on
//! any error, and retry errors that pass (too many open files) with backoff.
//!
//! Every file's stamp (mtime, size, inode) is taken *before* it is read. The
//! watcher reloads when a stamp changes and has been still for a short
//! settle time; a reload whose files changed during the read is thrown away
//! and read again. So a file caught mid-write is never loaded unless the
//! writer pauses longer than the settle time, and an edit made while a
//! reload compiles is never marked as seen. Atomic replacement (write a new
//! file, then rename it over the old one) is the documented way to update.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    control::ReloadResult,
    policy::{self, Compiled, PolicyError},
    programmer,
};

use super::{Agent, Ctx, Retry, flags, lock, rule_hits};

/// How long a changed file must stay unchanged before it is read.
pub(super) const SETTLE: Duration = Duration::from_millis(200);
/// Attempts to read a policy whose files keep changing.
const ATTEMPTS: usize = 5;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// The longest `last_error` kept for `status` and the logs' summary line.
const MAX_LAST_ERROR: usize = 4096;

impl Ctx {
    /// Compiles the policy file and switches to it; the policy in force
    /// stays on any error.
    pub(super) async fn reload(&self, trigger: &str) -> Result<ReloadResult, String> {
        self.reload_from(None, trigger).await
    }

    /// [`Ctx::reload`] from `file` instead of the configured policy file
    /// (the bundle puller's candidate image).
    pub(super) async fn reload_from(
        &self,
        file: Option<std::path::PathBuf>,
        trigger: &str,
    ) -> Result<ReloadResult, String> {
        let _guard = self.reloading.lock().await;
        let path = file.unwrap_or_else(|| self.agent().settings.policy.clone());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let p = path.clone();
            let compiled =
                tokio::task::spawn_blocking(move || policy::compile(&p, policy::today()))
                    .await
                    .map_err(|e| PolicyError {
                        message: format!("the compiler panicked: {e}"),
                        transient: false,
                        stamps: Vec::new(),
                    })
                    .and_then(|r| r);
            let stamps = match &compiled {
                Ok(c) => &c.stamps,
                Err(e) => &e.stamps,
            };
            if policy::changed(stamps) {
                if attempt < ATTEMPTS {
                    // Caught mid-write: wait for the writer, then read again.
                    tokio::time::sleep(SETTLE).await;
                    continue;
                }
                let mut agent = self.agent();
                agent.stamps = stamps.clone();
                return Err(agent.fail(
                    trigger,
                    format!(
                        "`{}` kept changing while it was read ({ATTEMPTS} attempts); write \
                         a new file and rename it over the old one",
                        path.display()
                    ),
                ));
            }
            let mut agent = self.agent();
            return match compiled {
                Ok(c) => {
                    let result = agent.apply(c, trigger);
                    if let Ok(r) = &result
                        && r.changed
                    {
                        lock(&self.shared.images).push(r.generation, agent.image.clone());
                    }
                    result
                }
                Err(e) => {
                    agent.stamps = e.stamps;
                    let transient = e.transient;
                    let message = agent.fail(trigger, e.message);
                    agent.retry = transient.then(|| {
                        let backoff = agent
                            .retry
                            .map_or(FIRST_RETRY, |r| (r.backoff * 2).min(MAX_RETRY));
                        log::warn!("reload: trying again in {} ms", backoff.as_millis());
                        Retry {
                            at: Instant::now() + backoff,
                            backoff,
                        }
                    });
                    Err(message)
                }
            };
        }
    }
}

/// Keeps the first lines of an error, for `status` and metrics.
fn shorten(error: &str) -> String {
    if error.len() <= MAX_LAST_ERROR {
        return error.to_owned();
    }
    let mut end = MAX_LAST_ERROR;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n... (cut; the agent's log has the whole error)",
        &error[..end]
    )
}

impl Agent {
    /// Switches to a compiled policy (or notes that it is unchanged).
    fn apply(&mut self, compiled: Compiled, trigger: &str) -> Result<ReloadResult, String> {
        for w in &compiled.warnings {
            log::warn!("{w}");
        }
        self.stamps = compiled.stamps;
        if compiled.image.hash() == self.image.hash() {
            self.reloads.success += 1;
            self.reloads.last_error = None;
            self.retry = None;
            log::info!(
                "reload ({trigger}): policy unchanged (sha256:{}), generation {}",
                self.image.hash(),
                self.generation
            );
            return Ok(self.reload_result(false));
        }
        let flags = flags(&self.settings);
        match programmer::load(self.program.ebpf_mut(), &compiled.image, flags) {
            Ok(loaded) => {
                let old = std::mem::replace(&mut self.image, Arc::new(compiled.image));
                self.generation = loaded.generation;
                self.source = compiled.source;
                self.loaded_at = std::time::SystemTime::now();
                self.rebase_rules(&old);
                self.reloads.success += 1;
                self.reloads.last_error = None;
                self.retry = None;
                log::info!(
                    "reload ({trigger}): switched to sha256:{}, generation {}",
                    self.image.hash(),
                    self.generation
                );
                Ok(self.reload_result(true))
            }
            Err(e) => {
                // Map writes can fail for passing reasons (memory): retry.
                self.retry = Some(Retry {
                    at: Instant::now() + FIRST_RETRY,
                    backoff: FIRST_RETRY,
                });
                Err(self.fail(trigger, format!("programming the maps failed: {e:#}")))
            }
        }
    }

    fn fail(&mut self, trigger: &str, error: String) -> String {
        self.reloads.failure += 1;
        self.reloads.last_error = Some(shorten(&error));
        log::error!(
            "reload ({trigger}) failed; the policy in force stays (sha256:{}, generation {}): {error}",
            self.image.hash(),
            self.generation
        );
        shorten(&error)
    }

    fn reload_result(&self, changed: bool) -> ReloadResult {
        ReloadResult {
            changed,
            generation: self.generation,
            hash: format!("sha256:{}", self.image.hash()),
        }
    }

    /// Keeps a rule's count across a reload only if the id still means the same rule.
    fn rebase_rules(&mut self, old: &wardgate_compiler::PolicyImage) {
        let hits = rule_hits(&self.program, self.image.rules().len());
        self.rule_base = self
            .image
            .rules()
            .iter()
            .zip(hits)
            .map(|(rule, now)| {
                let same = old.rule(rule.id).is_some_and(|o| {
                    o.text == rule.text && o.file == rule.file && o.line == rule.line
                });
                match (same, self.rule_base.get(rule.id as usize)) {
                    (true, Some(base)) => *base,
                    _ => now,
                }
            })
            .collect();
    }
}

/// Watches the policy files (when `watch`) and retries failed reloads.
pub(super) async fn files_task(ctx: Ctx, watch: bool, interval: Duration) {
    let mut tick = tokio::time::interval(interval.min(Duration::from_millis(250)));
    let mut last_poll = Instant::now();
    loop {
        tick.tick().await;
        let (stamps, retry_due) = {
            let agent = ctx.agent();
            (
                agent.stamps.clone(),
                agent.retry.is_some_and(|r| Instant::now() >= r.at),
            )
        };
        if retry_due {
            let _ = ctx.reload("retry").await;
            continue;
        }
        if !watch || last_poll.elapsed() < interval {
            continue;
        }
        last_poll = Instant::now();
        if !policy::changed(&stamps) {
            continue;
        }
        // Let the writer finish: wait until the files are still for SETTLE.
        let mut seen = policy::current(&stamps);
        loop {
            tokio::time::sleep(SETTLE).await;
            let now = policy::current(&stamps);
            if now == seen {
                break;
            }
            seen = now;
        }
        let _ = ctx.reload("file change").await;
    }
}
