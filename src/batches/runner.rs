//! The batch runner: a task that hands queued batch requests to the
//! dispatcher as background jobs ([`RunIfIdle`]) whenever it signals a free
//! worker, at most `batches.max_workers` at a time, and records each
//! outcome in the store. It also expires requests past their batch's
//! `expires_at` and archives results past `batches.retention_days`.
//!
//! Durability: a request is marked running before it is handed to a worker
//! (a request whose start cannot be written is not run), and its result is
//! recorded once. Requests left running by a crash are queued again at
//! startup (at most once more, see [`queue::recover`]); requests a shutdown
//! interrupted, no worker took after all, or that the upstream refused as
//! overloaded (429, 529), go back to the queue uncounted.
//!
//! A failing store (a full disk): batch work stops starting requests and
//! pauses, doubling the pause up to [`MAX_STORE_PAUSE`]; a result that
//! cannot be written is kept in memory (at most one per batch worker, as
//! nothing new starts meanwhile) and written first when the store takes
//! writes again, then work resumes. `/health` (`store`) and `/metrics` say
//! so meanwhile.
//!
//! Each request runs as the key that created its batch and leaves one row
//! in the usage ledger (see [`super::attribution`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;

use super::attribution;
use super::now_ms;
use super::queue;
use super::store::{Claim, Outcome};
use crate::api::anthropic::{self, MessageMeta, MessagesRequest};
use crate::api::batches::{errored, succeeded};
use crate::api::error::ApiError;
use crate::api::{Context, Dialect};
use crate::config::SharedSettings;
use crate::dispatch::batch::RunIfIdle;
use crate::dispatch::Dispatcher;
use crate::error::JobError;
use crate::job::{Job, JobEvent, JobSpec, Placed, Usage};
use crate::keys::{Caller, KeyRing};
use crate::ledger::{Ledger, Trail};
use crate::store::health::Writer;
use crate::store::{Store, StoreError};

/// How often the runner looks again without being woken: expiry, and jobs
/// a missed signal left waiting.
const TICK: Duration = Duration::from_secs(1);
/// How long batch work pauses after the upstream answered 429 or 529.
const OVERLOAD_PAUSE: Duration = Duration::from_secs(5);
/// How often results past their retention are looked for.
const ARCHIVE_EVERY: Duration = Duration::from_secs(600);
/// The first pause of batch work after a store error; it doubles on each
/// further error up to [`MAX_STORE_PAUSE`].
const FIRST_STORE_PAUSE: Duration = Duration::from_millis(500);
const MAX_STORE_PAUSE: Duration = Duration::from_secs(10);

/// What the rest of the daemon holds of the runner.
#[derive(Clone)]
pub struct RunnerHandle {
    wake: Arc<Notify>,
    stopping: Arc<AtomicBool>,
}

impl RunnerHandle {
    /// There may be work: a new batch, a cancel, a free worker.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops handing out requests (shutdown); jobs running finish, and those
    /// the shutdown interrupts are queued again for the next start.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Counts a finished job's tokens; the runner does not know where (the
/// daemon passes its `/metrics` counter).
type TokenSink = Arc<dyn Fn(&Usage) + Send + Sync>;

/// The runner's state, shared with the tasks collecting job outcomes.
#[derive(Clone)]
pub struct Runner {
    store: Store,
    dispatcher: Addr<Dispatcher>,
    /// The settings in force, shared: a reload's worker cap and retention
    /// apply at the next read.
    settings: SharedSettings,
    /// Poked by the dispatcher (a worker may be free), by new batches and by
    /// finished jobs.
    wake: Arc<Notify>,
    stopping: Arc<AtomicBool>,
    /// Batch jobs running now.
    running: Arc<AtomicUsize>,
    /// Where the tokens of finished batch jobs are counted (`/metrics`).
    tokens: Option<TokenSink>,
    /// Whose batches are whose: each request runs as its batch's key
    /// (`None`: every batch runs as the anonymous caller).
    keys: Option<Arc<KeyRing>>,
    /// Where each finished request leaves its row.
    ledger: Option<Ledger>,
    /// No batch job starts before then: the upstream said it is overloaded.
    paused_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
    /// Writes the store failed to take, oldest first, written before any
    /// new work starts.
    owed: Arc<std::sync::Mutex<Vec<Owed>>>,
    /// When the store failed: when to try it again (`None` while it works),
    /// and the next pause.
    store_pause: Arc<std::sync::Mutex<StorePause>>,
}

mod owed;
mod request;

use owed::{Change, Owed, StorePause};

impl Runner {
    /// A runner woken by `wake`, the signal the dispatcher was given with
    /// [`Dispatcher::with_spare_signal`].
    pub fn new(
        store: Store,
        dispatcher: Addr<Dispatcher>,
        settings: SharedSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            dispatcher,
            settings,
            wake,
            stopping: Arc::default(),
            running: Arc::default(),
            tokens: None,
            keys: None,
            ledger: None,
            paused_until: Arc::default(),
            owed: Arc::default(),
            store_pause: Arc::default(),
        }
    }

    /// Counts the tokens of batch jobs with `tokens`, as interactive ones
    /// are counted.
    pub fn counting_tokens(mut self, tokens: impl Fn(&Usage) + Send + Sync + 'static) -> Self {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// Runs each batch's requests as the key of `keys` that created it.
    pub fn with_keys(mut self, keys: Arc<KeyRing>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Records each finished request in `ledger`.
    pub fn with_ledger(mut self, ledger: Ledger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// What the rest of the daemon holds of this runner.
    pub fn handle(&self) -> RunnerHandle {
        RunnerHandle {
            wake: self.wake.clone(),
            stopping: self.stopping.clone(),
        }
    }

    /// Recovers what a previous run left behind, then runs on the current
    /// actix system until stopped.
    pub fn start(self) -> RunnerHandle {
        let handle = self.handle();
        actix_rt::spawn(self.run());
        handle
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    async fn run(self) {
        let interrupted = errored(&json!({"type": "error", "error": {
            "type": "api_error",
            "message": "the daemon stopped twice while this request was running; it is not run a third time",
        }}));
        match self
            .store
            .call(move |c| queue::recover(c, &interrupted, now_ms()))
            .await
        {
            Ok((0, 0)) => {}
            Ok((queued, failed)) => log::warn!(
                "batches: {queued} interrupted requests queued again, {failed} errored after a second interruption"
            ),
            Err(e) => log::error!("batches: recovery failed: {e}"),
        }
        let mut archived_at: Option<tokio::time::Instant> = None;
        while !self.is_stopping() {
            if !self.store_paused() && self.pay_back().await {
                if let Err(e) = self.expire().await {
                    self.store_failed("expiring", &e);
                }
                if archived_at.is_none_or(|at| at.elapsed() >= ARCHIVE_EVERY) {
                    archived_at = Some(tokio::time::Instant::now());
                    if let Err(e) = self.archive().await {
                        self.store_failed("archiving", &e);
                    }
                }
                if let Err(e) = self.fill().await {
                    self.store_failed("starting requests", &e);
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
        let owed = self.owed.lock().unwrap_or_else(|e| e.into_inner()).len();
        if owed > 0 {
            log::error!(
                "batches: {owed} results could not be written (the store fails); their requests run again at the next start"
            );
        }
        log::info!("batches: runner stopped");
    }

    async fn expire(&self) -> Result<(), StoreError> {
        let expired = self.store.call(|c| queue::expire_due(c, now_ms())).await?;
        if expired > 0 {
            log::info!("batches: {expired} queued requests expired");
        }
        Ok(())
    }

    async fn archive(&self) -> Result<(), StoreError> {
        let retention = self.settings.get().batches.retention().as_millis() as i64;
        let archived = self
            .store
            .call(move |c| {
                let now = now_ms();
                queue::archive_ended_before(c, now.saturating_sub(retention), now)
            })
            .await?;
        if archived > 0 {
            log::info!("batches: results of {archived} batches removed after retention");
        }
        Ok(())
    }

    /// Hands queued requests to free workers until the cap is reached, the
    /// queue is empty, or the dispatcher has no worker to spare.
    async fn fill(&self) -> Result<(), StoreError> {
        loop {
            let settings = self.settings.get();
            let cap = settings.batches.worker_cap(settings.pool.size);
            let room = cap.saturating_sub(self.running.load(Ordering::SeqCst));
            let paused = self
                .paused_until
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|until| tokio::time::Instant::now() < until);
            if room == 0 || paused || self.is_stopping() {
                return Ok(());
            }
            let claims = self
                .store
                .call(move |c| queue::next_queued(c, room))
                .await?;
            if claims.is_empty() {
                return Ok(());
            }
            for claim in claims {
                if !self.start_one(claim).await? {
                    return Ok(());
                }
            }
        }
    }
}
