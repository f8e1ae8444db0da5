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

/// A write the runner owes the store.
#[derive(Debug, Clone)]
struct Owed {
    id: String,
    seq: i64,
    idx: i64,
    change: Change,
}

/// What becomes of a request that ran.
#[derive(Debug, Clone)]
enum Change {
    /// Its result.
    Record(Outcome),
    /// Back to the queue, the attempt uncounted.
    Requeue,
}

#[derive(Debug)]
struct StorePause {
    until: Option<tokio::time::Instant>,
    next: Duration,
}

impl Default for StorePause {
    fn default() -> Self {
        Self {
            until: None,
            next: FIRST_STORE_PAUSE,
        }
    }
}

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

    /// A store call failed: batch work pauses (longer each time), and the
    /// store's health says why.
    fn store_failed(&self, doing: &str, error: &StoreError) {
        let health = self.store.health();
        let mut pause = self.store_pause.lock().unwrap_or_else(|e| e.into_inner());
        if pause.until.is_none() {
            log::error!(
                "batches: the store fails ({doing}: {error}); batch work pauses until it takes writes again"
            );
        }
        health.failed(Writer::Batches, error);
        health.set_batches_paused(true);
        pause.until = Some(tokio::time::Instant::now() + pause.next);
        pause.next = (pause.next * 2).min(MAX_STORE_PAUSE);
    }

    /// A write succeeded: the store works (again).
    fn store_works(&self) {
        let health = self.store.health();
        health.succeeded(Writer::Batches);
        health.set_batches_paused(false);
        *self.store_pause.lock().unwrap_or_else(|e| e.into_inner()) = StorePause::default();
    }

    fn store_paused(&self) -> bool {
        self.store_pause
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .until
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }

    /// Keeps a write the store refused, to make before any new work.
    fn owe(&self, owed: Owed) {
        let mut all = self.owed.lock().unwrap_or_else(|e| e.into_inner());
        all.push(owed);
        self.store.health().set_unwritten_batch_results(all.len());
    }

    /// Makes the writes owed, oldest first; after a failure with nothing
    /// owed, probes with a write. True when the store takes writes.
    async fn pay_back(&self) -> bool {
        loop {
            let next = self
                .owed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first()
                .cloned();
            let Some(owed) = next else { break };
            if let Err(e) = self.write(owed.seq, owed.idx, owed.change).await {
                self.store_failed("writing a result", &e);
                return false;
            }
            log::info!("[{}] result written after waiting for the store", owed.id);
            let mut all = self.owed.lock().unwrap_or_else(|e| e.into_inner());
            all.remove(0);
            self.store.health().set_unwritten_batch_results(all.len());
            drop(all);
            self.store_works();
        }
        let paused = self
            .store_pause
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .until
            .is_some();
        if paused {
            if let Err(e) = self.store.call(|c| Store::probe(c)).await {
                self.store_failed("probing", &e);
                return false;
            }
            self.store_works();
        }
        true
    }

    /// Records what became of a request that ran.
    async fn write(&self, seq: i64, idx: i64, change: Change) -> Result<bool, StoreError> {
        match change {
            Change::Record(outcome) => {
                self.store
                    .call(move |c| queue::record(c, seq, idx, &outcome, now_ms()))
                    .await
            }
            Change::Requeue => self.store.call(move |c| queue::requeue(c, seq, idx)).await,
        }
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

    /// Offers one request to the dispatcher. False if it had no worker.
    async fn start_one(&self, claim: Claim) -> Result<bool, StoreError> {
        let (seq, idx) = (claim.batch_seq, claim.idx);
        let id = format!("{}/{}", claim.batch_id, claim.custom_id);
        let settings = self.settings.get();
        let prepared = attribution::caller_of(
            self.keys.as_deref(),
            &settings,
            &claim.owner,
            &claim.batch_id,
        )
        .and_then(|caller| {
            // Params were validated when the batch was created; a daemon
            // upgrade might still refuse them.
            let (spec, meta) = self
                .spec_for(&claim, &caller)
                .map_err(|message| ("invalid_request_error", message))?;
            attribution::check_model(&caller, &spec.model)?;
            Ok((caller, spec, meta))
        });
        let (caller, spec, meta) = match prepared {
            Ok(prepared) => prepared,
            Err((kind, message)) => {
                // It fails alone, without running.
                log::info!("[{id}] not run: {message}");
                let body = json!({"type": "error", "error": {"type": kind, "message": message}});
                // One transaction: a failed write leaves it queued, to be
                // tried again, never running with no result on the way.
                self.store
                    .call(move |c| {
                        let tx = c.transaction()?;
                        queue::mark_running(&tx, seq, idx)?;
                        let outcome = Outcome::Errored(errored(&body));
                        queue::record_in(&tx, seq, idx, &outcome, now_ms())?;
                        tx.commit()
                    })
                    .await?;
                return Ok(true);
            }
        };
        let record_content = self
            .ledger
            .as_ref()
            .is_some_and(|l| l.settings().record_content);
        let placed = Placed::default();
        let node = settings.server.node_id();
        let trail = Trail::start(
            attribution::row(id.clone(), &claim.batch_id, &caller, &spec.model, node),
            placed.clone(),
            record_content.then(|| claim.params.clone()),
        );
        // Recorded before it runs: a start the store cannot take is not
        // run (and paid for) at all.
        if !self
            .store
            .call(move |c| queue::mark_running(c, seq, idx))
            .await?
        {
            log::debug!("[{id}] no longer queued (canceled or expired)");
            return Ok(true);
        }
        self.store_works();
        let (mut job, events) = Job::new(id.clone(), spec);
        job.placed = placed;
        let job = job.with_caller(caller);
        match self.dispatcher.send(RunIfIdle(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                // No worker after all: back to the queue, uncounted.
                if let Err(e) = self.write(seq, idx, Change::Requeue).await {
                    self.owe(Owed {
                        id,
                        seq,
                        idx,
                        change: Change::Requeue,
                    });
                    return Err(e);
                }
                return Ok(false);
            }
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        actix_rt::spawn(self.clone().collect(id, seq, idx, meta, events, trail));
        Ok(true)
    }

    /// The job for a stored request: as `/v1/messages` would run it, except
    /// that nothing continues it: it never stays bound to its conversation,
    /// nor parks on tool calls. It runs as `caller`: in its scope, and as
    /// an agent job only if the key may use agent mode.
    fn spec_for(&self, claim: &Claim, caller: &Caller) -> Result<(JobSpec, MessageMeta), String> {
        let (params, agent) = crate::api::batches::stored_params(&claim.params)?;
        let request = MessagesRequest::parse(&params).map_err(|e| e.0)?;
        let settings = self.settings.get();
        let ctx = Context {
            default_model: settings.claude.default_model.clone(),
            agent_allowed: settings.agent.enabled && agent && caller.agent,
            scope: caller.scope.clone(),
            ..Context::default()
        };
        let meta = MessageMeta::new(request.response_model(&ctx.default_model));
        let mut spec = request.to_spec(&ctx);
        spec.conversation = None;
        spec.background = true;
        Ok((spec, meta))
    }

    /// Waits for a job's outcome and records it, and its ledger row.
    async fn collect(
        self,
        id: String,
        seq: i64,
        idx: i64,
        meta: MessageMeta,
        mut events: UnboundedReceiver<JobEvent>,
        mut trail: Trail,
    ) {
        let outcome = loop {
            match events.recv().await {
                Some(event) => {
                    trail.observe(&event);
                    if let Some(outcome) = event.into_outcome() {
                        break Some(outcome);
                    }
                }
                None => break None,
            }
        };
        drop(events);
        // One row a request that ended (not for a run the daemon requeues:
        // it runs again and leaves its row then).
        let ledger_row = |trail: Trail, error: Option<&JobError>| {
            if let Some(ledger) = &self.ledger {
                ledger.record(attribution::ended(trail, error));
            }
        };
        let outcome = match outcome {
            Some(Ok(answer)) => {
                if let Some(count) = &self.tokens {
                    count(&answer.usage);
                }
                ledger_row(trail, None);
                Some(Outcome::Succeeded(succeeded(&anthropic::message_body(
                    &meta, &answer,
                ))))
            }
            Some(Err(_)) | None if self.is_stopping() => None,
            Some(Err(JobError::ShuttingDown)) => None,
            Some(Err(error)) if is_overload(&error) => {
                // Not the request's fault: it waits for capacity (until its
                // batch expires), and batch work pauses a while.
                log::info!("[{id}] {error}; queued again, batch work pauses {OVERLOAD_PAUSE:?}");
                *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(tokio::time::Instant::now() + OVERLOAD_PAUSE);
                None
            }
            Some(Err(error)) => {
                ledger_row(trail, Some(&error));
                Some(error_outcome(error))
            }
            None => {
                let error = JobError::WorkerCrashed(
                    "the worker stopped without finishing the request".into(),
                );
                ledger_row(trail, Some(&error));
                Some(error_outcome(error))
            }
        };
        let change = match outcome {
            Some(outcome) => Change::Record(outcome),
            None => {
                log::debug!("[{id}] queued again");
                Change::Requeue
            }
        };
        match self.write(seq, idx, change.clone()).await {
            Ok(_) => self.store_works(),
            Err(e) => {
                // Never dropped: a restart would run the request again (a
                // second paid call for an answer already received).
                log::error!(
                    "[{id}] result not written yet ({e}): kept until the store takes writes again"
                );
                self.store_failed("writing a result", &e);
                self.owe(Owed {
                    id,
                    seq,
                    idx,
                    change,
                });
            }
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Upstream rate limits and overload: a reason to wait, not to fail.
fn is_overload(error: &JobError) -> bool {
    matches!(
        error,
        JobError::Upstream {
            status: Some(429 | 529),
            ..
        } | JobError::RateLimited { .. }
    )
}

/// An `errored` result with the error body `/v1/messages` would answer.
fn error_outcome(error: JobError) -> Outcome {
    Outcome::Errored(errored(
        &ApiError::from_job(error, Dialect::Anthropic).anthropic_body(),
    ))
}
