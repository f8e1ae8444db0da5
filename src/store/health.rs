//! How the store's writes are going, for `/health` (its `store` entry) and
//! `/metrics`: the features that write (the batch runner, the stored
//! responses' writer) report each failed and each successful write; what
//! they hold in memory until it can be written is reported with them.
//!
//! A full disk (`SQLITE_FULL`) or a failing one must be seen from outside:
//! batch work pauses and stored responses wait in memory until writes
//! succeed again, and an operator needs to know why.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A feature that writes to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The batch runner: requests started, results recorded.
    Batches,
    /// The writer of stored responses.
    Responses,
}

/// The store's write health, shared by the writers and the HTTP layer.
#[derive(Debug, Default)]
pub struct StoreHealth {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last error of each writer whose last write failed, and since
    /// when (Unix seconds) its writes fail.
    batches: Option<Failure>,
    responses: Option<Failure>,
    /// Failed writes since the daemon started.
    write_errors: u64,
    /// Batch results received and not yet written.
    unwritten_batch_results: usize,
    /// Stored responses acknowledged to clients and not yet written, and
    /// their size (bytes of JSON).
    unwritten_responses: usize,
    unwritten_responses_bytes: u64,
}

#[derive(Debug, Clone)]
struct Failure {
    error: String,
    since: u64,
}

/// The store's entry in `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreReport {
    /// `ok`, or `failing` while a writer's last write failed.
    pub status: &'static str,
    /// The latest error of a failing writer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Since when (Unix seconds) writes fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<u64>,
    /// Failed writes since the daemon started.
    pub write_errors: u64,
    /// Batch work has stopped starting requests until writes succeed.
    pub batches_paused: bool,
    /// What is held in memory until it can be written.
    pub unwritten: Unwritten,
}

/// What waits in memory for the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unwritten {
    pub batch_results: usize,
    pub responses: usize,
    pub responses_bytes: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl StoreHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write of `writer` failed with `error`.
    pub fn failed(&self, writer: Writer, error: &dyn std::fmt::Display) {
        let mut state = self.lock();
        state.write_errors += 1;
        let slot = state.slot(writer);
        let since = slot.as_ref().map_or_else(now_secs, |f| f.since);
        *slot = Some(Failure {
            error: error.to_string(),
            since,
        });
    }

    /// A write of `writer` succeeded: its writes work again.
    pub fn succeeded(&self, writer: Writer) {
        let mut state = self.lock();
        if let Some(failure) = state.slot(writer).take() {
            log::info!(
                "store: writes work again ({writer:?}) after failing for {}s",
                now_secs().saturating_sub(failure.since)
            );
        }
    }

    /// Whether the last write of `writer` failed.
    pub fn is_failing(&self, writer: Writer) -> bool {
        self.lock().slot(writer).is_some()
    }

    /// How many batch results wait in memory.
    pub fn set_unwritten_batch_results(&self, n: usize) {
        self.lock().unwritten_batch_results = n;
    }

    /// How many stored responses wait in memory, and their size.
    pub fn set_unwritten_responses(&self, n: usize, bytes: u64) {
        let mut state = self.lock();
        state.unwritten_responses = n;
        state.unwritten_responses_bytes = bytes;
    }

    /// The `/health` entry.
    pub fn report(&self) -> StoreReport {
        let state = self.lock();
        let latest = [&state.batches, &state.responses]
            .into_iter()
            .flatten()
            .max_by_key(|f| f.since);
        let since = [&state.batches, &state.responses]
            .into_iter()
            .flatten()
            .map(|f| f.since)
            .min();
        StoreReport {
            status: if latest.is_some() { "failing" } else { "ok" },
            error: latest.map(|f| f.error.clone()),
            failing_since: since,
            write_errors: state.write_errors,
            batches_paused: state.batches.is_some(),
            unwritten: Unwritten {
                batch_results: state.unwritten_batch_results,
                responses: state.unwritten_responses,
                responses_bytes: state.unwritten_responses_bytes,
            },
        }
    }
}

impl State {
    fn slot(&mut self, writer: Writer) -> &mut Option<Failure> {
        match writer {
            Writer::Batches => &mut self.batches,
            Writer::Responses => &mut self.responses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_fails_until_its_next_success() {
        let health = StoreHealth::default();
        assert_eq!(health.report().status, "ok");
        health.failed(Writer::Batches, &"disk full");
        health.failed(Writer::Responses, &"disk full too");
        let report = health.report();
        assert_eq!(report.status, "failing");
        assert!(report.batches_paused);
        assert_eq!(report.write_errors, 2);
        assert!(report.failing_since.is_some());
        health.succeeded(Writer::Batches);
        let report = health.report();
        assert_eq!(report.status, "failing", "responses still fail");
        assert_eq!(report.error.as_deref(), Some("disk full too"));
        assert!(!report.batches_paused);
        health.succeeded(Writer::Responses);
        let report = health.report();
        assert_eq!((report.status, report.error), ("ok", None));
        assert_eq!(report.write_errors, 2, "a count since start");
    }
}
