//! How the store's writes are going, for `/health` (its `store` entry) and
//! `/metrics`: the features that write (the batch runner, the stored
//! responses' and conversations' writers, the usage ledger) report each failed and each
//! successful write, and the store is `failing` while the latest of them
//! failed; what they hold in memory until it can be written is reported
//! with them, and whether batch work is paused.
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
    /// The writer of conversations' items.
    Conversations,
    /// The usage ledger's writer (its rows are dropped and counted when
    /// their write fails).
    Ledger,
}

/// The store's write health, shared by the writers and the HTTP layer.
#[derive(Debug, Default)]
pub struct StoreHealth {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Set while the latest write failed.
    failure: Option<Failure>,
    /// The batch runner has stopped starting requests.
    batches_paused: bool,
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
    /// Since when (Unix seconds) writes fail.
    since: u64,
    writer: Writer,
}

/// The store's entry in `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreReport {
    /// `ok`, or `failing` while the latest write failed.
    pub status: &'static str,
    /// The latest write's error.
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
        let since = state.failure.as_ref().map_or_else(now_secs, |f| f.since);
        state.failure = Some(Failure {
            error: error.to_string(),
            since,
            writer,
        });
    }

    /// A write of `writer` succeeded: the store takes writes (again).
    pub fn succeeded(&self, writer: Writer) {
        let mut state = self.lock();
        if let Some(failure) = state.failure.take() {
            log::info!(
                "store: writes work again ({writer:?} wrote; {:?} failed last) after failing for {}s",
                failure.writer,
                now_secs().saturating_sub(failure.since)
            );
        }
    }

    /// Whether batch work is paused for the store.
    pub fn set_batches_paused(&self, paused: bool) {
        self.lock().batches_paused = paused;
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
        let failure = state.failure.as_ref();
        StoreReport {
            status: if failure.is_some() { "failing" } else { "ok" },
            error: failure.map(|f| f.error.clone()),
            failing_since: failure.map(|f| f.since),
            write_errors: state.write_errors,
            batches_paused: state.batches_paused,
            unwritten: Unwritten {
                batch_results: state.unwritten_batch_results,
                responses: state.unwritten_responses,
                responses_bytes: state.unwritten_responses_bytes,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_fails_until_the_next_successful_write() {
        let health = StoreHealth::default();
        assert_eq!(health.report().status, "ok");
        health.failed(Writer::Batches, &"disk full");
        let since = health.report().failing_since;
        assert!(since.is_some());
        health.failed(Writer::Responses, &"disk full too");
        let report = health.report();
        assert_eq!(report.status, "failing");
        assert_eq!(report.error.as_deref(), Some("disk full too"));
        assert_eq!(report.failing_since, since, "since the first failure");
        assert_eq!(report.write_errors, 2);
        health.succeeded(Writer::Ledger);
        let report = health.report();
        assert_eq!((report.status, report.error), ("ok", None));
        assert_eq!(report.write_errors, 2, "a count since start");
    }
}
