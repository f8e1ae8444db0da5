//! Background responses (`background: true` on `POST /v1/responses`): the
//! request is answered at once with the response `queued`, and the job runs
//! on the pool's spare capacity, as message batches do: it is handed to the
//! dispatcher only when no interactive job waits and a worker is free
//! ([`RunIfIdle`]), and background jobs together hold at most
//! `batches.worker_cap` workers. At most `responses.max_background`
//! background responses are unfinished at once (429 beyond).
//!
//! A run outlives its client: its events are kept in memory ([`Run`]), so
//! `GET /v1/responses/{id}` reads its status while it runs and
//! `?stream=true&starting_after=N` replays its events from any point and
//! follows it live. The finished response is stored like any other (so it
//! is readable after the run is forgotten); a finished run's events are
//! kept for [`RETAIN`]. Cancelling drops the job's receiver, which is the
//! worker's signal to interrupt the turn.
// std::time::Instant here: wall-clock age of finished background responses.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::http::header;
use actix_web::HttpResponse;
use serde_json::Value;
use tokio::sync::{watch, Notify};

use super::sse::to_wire;
use crate::api::responses::stream::ResponseStream;
use crate::api::{EventEncoder, Frame};
use crate::dispatch::batch::RunIfIdle;
use crate::dispatch::Dispatcher;
use crate::error::JobError;
use crate::job::{Job, JobEvent};
use crate::stored::Keeping;

/// How long a finished run's events stay replayable from memory; after
/// that, a stream of the stored response is rebuilt from its items.
pub const RETAIN: Duration = Duration::from_secs(600);
/// How often a queued run asks again for a spare worker.
const WAIT_FOR_SPARE: Duration = Duration::from_millis(200);

/// A status that ends a response.
pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "incomplete" | "failed" | "cancelled")
}

/// One background response, running or recently finished.
#[derive(Debug)]
pub struct Run {
    /// Who may read or cancel it (a digest of the creator's API key).
    pub scope: String,
    state: Mutex<RunState>,
    /// Bumped whenever an event is added or the run ends.
    changed: watch::Sender<u64>,
    cancel_requested: AtomicBool,
    cancel: Notify,
}

#[derive(Debug)]
struct RunState {
    /// The response object as of the latest event that carried one.
    response: Value,
    /// Every event so far, in order (each with its `sequence_number`).
    frames: Vec<Frame>,
    finished_at: Option<Instant>,
}

impl Run {
    fn new(scope: String, queued: Value) -> Self {
        Self {
            scope,
            state: Mutex::new(RunState {
                response: queued,
                frames: Vec::new(),
                finished_at: None,
            }),
            changed: watch::channel(0).0,
            cancel_requested: AtomicBool::new(false),
            cancel: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RunState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The response object now (status `queued`, `in_progress`, or final).
    pub fn snapshot(&self) -> Value {
        self.lock().response.clone()
    }

    pub fn is_finished(&self) -> bool {
        self.lock().finished_at.is_some()
    }

    fn push(&self, frames: Vec<Frame>) {
        let mut state = self.lock();
        for frame in &frames {
            if let Frame::Event(_, data) = frame {
                if let Some(response) = data.get("response") {
                    state.response = response.clone();
                }
            }
        }
        state.frames.extend(frames);
        drop(state);
        self.changed.send_modify(|n| *n += 1);
    }

    fn finish(&self, response: Option<Value>) {
        let mut state = self.lock();
        if let Some(response) = response {
            state.response = response;
        }
        state.finished_at = Some(Instant::now());
        drop(state);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Asks the run to stop; it ends `cancelled` (or as it was, if it
    /// finished first). Returns at once; wait with [`Run::finished`].
    pub fn request_cancel(&self) {
        self.cancel_requested.store(true, Ordering::SeqCst);
        self.cancel.notify_one();
    }

    async fn cancelled(&self) {
        if !self.cancel_requested.load(Ordering::SeqCst) {
            self.cancel.notified().await;
        }
    }

    /// Waits until the run has ended.
    pub async fn finished(&self) {
        let mut changes = self.changed.subscribe();
        while !self.is_finished() {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Events from index `from` on, and whether the run has ended (then no
    /// event follows these).
    fn frames_from(&self, from: usize) -> (Vec<Frame>, bool) {
        let state = self.lock();
        let frames = state.frames.get(from..).unwrap_or_default().to_vec();
        (frames, state.finished_at.is_some())
    }
}

/// The background responses of this daemon, by id.
#[derive(Debug, Default)]
pub struct Runs {
    by_id: Mutex<HashMap<String, Arc<Run>>>,
}

/// Too many background responses are unfinished.
#[derive(Debug)]
pub struct TooMany(pub usize);

impl Runs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Run>>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new run `id` of `scope`, unless `max` runs are unfinished
    /// already. Forgets runs that finished more than [`RETAIN`] ago.
    pub fn start(
        &self,
        id: &str,
        scope: &str,
        queued: Value,
        max: usize,
    ) -> Result<Arc<Run>, TooMany> {
        let mut runs = self.lock();
        runs.retain(|_, run| {
            run.lock()
                .finished_at
                .is_none_or(|at| at.elapsed() < RETAIN)
        });
        let unfinished = runs.values().filter(|r| !r.is_finished()).count();
        if unfinished >= max {
            return Err(TooMany(max));
        }
        let run = Arc::new(Run::new(scope.to_string(), queued));
        runs.insert(id.to_string(), run.clone());
        Ok(run)
    }

    /// The run `id`, if `scope` created it.
    pub fn get(&self, scope: &str, id: &str) -> Option<Arc<Run>> {
        self.lock().get(id).filter(|r| r.scope == scope).cloned()
    }

    /// How many runs have not finished (for `/health` and tests).
    pub fn unfinished(&self) -> usize {
        self.lock().values().filter(|r| !r.is_finished()).count()
    }
}

/// Runs `job` for `run`: waits for a spare worker (or a cancel, or the
/// drain), then records its events until it ends or is cancelled.
pub async fn drive(
    run: Arc<Run>,
    mut job: Job,
    mut events: tokio::sync::mpsc::UnboundedReceiver<JobEvent>,
    mut encoder: Keeping<ResponseStream>,
    dispatcher: Addr<Dispatcher>,
    draining: watch::Receiver<bool>,
) {
    loop {
        if run.cancel_requested.load(Ordering::SeqCst) {
            run.finish(Some(encoder.cancel()));
            return;
        }
        if *draining.borrow() {
            run.push(encoder.encode(JobEvent::Failed(JobError::ShuttingDown)));
            run.finish(None);
            return;
        }
        match dispatcher.send(RunIfIdle(job)).await {
            Ok(Ok(())) => break,
            Ok(Err(back)) => job = back,
            Err(_) => {
                run.push(encoder.encode(JobEvent::Failed(JobError::ShuttingDown)));
                run.finish(None);
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(WAIT_FOR_SPARE) => {}
            _ = run.cancelled() => {}
        }
    }
    loop {
        tokio::select! {
            event = events.recv() => {
                let event = event.unwrap_or_else(|| JobEvent::Failed(JobError::WorkerCrashed(
                    "the worker stopped without finishing the response".into(),
                )));
                let terminal = event.is_terminal();
                run.push(encoder.encode(event));
                if terminal {
                    run.finish(None);
                    return;
                }
            }
            _ = run.cancelled() => {
                // Dropping the receiver interrupts the worker's turn.
                drop(events);
                run.finish(Some(encoder.cancel()));
                return;
            }
        }
    }
}

/// A `text/event-stream` of `run`'s events after sequence number `after`
/// (all of them for `None`), following the run live until it ends.
pub fn stream(run: Arc<Run>, after: Option<u64>, keepalive: Duration) -> HttpResponse {
    let changes = run.changed.subscribe();
    let body = futures_util::stream::unfold(
        (run, 0usize, changes, false),
        move |(run, next, mut changes, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let (frames, finished) = run.frames_from(next);
                let next = next + frames.len();
                let wire: Vec<u8> = frames
                    .iter()
                    .filter(|f| after.is_none_or(|n| sequence_of(f).is_some_and(|s| s > n)))
                    .flat_map(|f| to_wire(f).to_vec())
                    .collect();
                if !wire.is_empty() || finished {
                    return Some((
                        Ok::<_, Infallible>(bytes::Bytes::from(wire)),
                        (run, next, changes, finished),
                    ));
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() {
                        return None;
                    },
                    _ = tokio::time::sleep(keepalive) => {
                        let ping = to_wire(&Frame::Comment("keep-alive"));
                        return Some((Ok(ping), (run, next, changes, false)));
                    }
                }
            }
        },
    );
    event_stream(body)
}

/// A `text/event-stream` of `frames` (a stored response replayed).
pub fn stream_frames(frames: Vec<Frame>, after: Option<u64>) -> HttpResponse {
    let wire: Vec<u8> = frames
        .iter()
        .filter(|f| after.is_none_or(|n| sequence_of(f).is_some_and(|s| s > n)))
        .flat_map(|f| to_wire(f).to_vec())
        .collect();
    let body =
        futures_util::stream::once(async move { Ok::<_, Infallible>(bytes::Bytes::from(wire)) });
    event_stream(body)
}

fn event_stream(
    body: impl futures_util::Stream<Item = Result<bytes::Bytes, Infallible>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

fn sequence_of(frame: &Frame) -> Option<u64> {
    match frame {
        Frame::Event(_, data) => data["sequence_number"].as_u64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(n: u64) -> Frame {
        Frame::Event("e", json!({"sequence_number": n}))
    }

    #[test]
    fn runs_are_scoped_bounded_and_keep_their_latest_response() {
        let runs = Runs::default();
        let a = runs
            .start("a", "k1", json!({"status": "queued"}), 2)
            .unwrap();
        assert!(runs.get("k2", "a").is_none(), "another key sees nothing");
        runs.start("b", "k1", json!({}), 2).unwrap();
        assert!(runs.start("c", "k1", json!({}), 2).is_err());
        a.push(vec![
            Frame::Event(
                "response.in_progress",
                json!({"response": {"status": "in_progress"}}),
            ),
            event(2),
        ]);
        assert_eq!(a.snapshot()["status"], "in_progress");
        assert_eq!(a.frames_from(1).0, vec![event(2)]);
        a.finish(Some(json!({"status": "cancelled"})));
        assert!(a.is_finished());
        assert_eq!(
            runs.get("k1", "a").unwrap().snapshot()["status"],
            "cancelled"
        );
        assert!(
            runs.start("c", "k1", json!({}), 2).is_ok(),
            "a finished run leaves room"
        );
    }
}
