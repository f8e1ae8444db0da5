//! The usage ledger and audit log: one [`Record`] per request (who, which
//! route and model, which account and worker, status, tokens, timings),
//! kept in the store with hourly rollups per key × model × account, and
//! per-key usage windows in memory for limits.
//!
//! Written behind the request: [`Ledger::record`] only counts the row in
//! memory and hands it to a writer thread ([`writer`]), which commits
//! whatever has gathered in one transaction. At most
//! `ledger.queue_capacity` rows wait for it; a row recorded beyond that is
//! dropped and counted, never waited for. So a SIGKILL loses at most
//! `queue_capacity` rows (in practice those of the last commit's few
//! milliseconds); a stopping daemon writes them all ([`Ledger::close`]).
//!
//! For limits, [`Ledger::usage_since`] answers how many requests and
//! weighted tokens a key used since an instant, from memory (see
//! [`windows`]), filled from the store at start.

pub mod record;
pub mod report;
pub mod schema;
pub mod trail;
pub mod windows;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

pub use record::{Record, ANONYMOUS, NO_KEY};
pub use trail::Trail;
pub use windows::Tally;

use crate::config::LedgerSettings;
use crate::store::{Store, StoreError};
use writer::Msg;

/// A key's use over a window, as limits read it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowUsage {
    pub requests: u64,
    /// input + output + cache creation + cache reads × `cache_read_weight`.
    pub weighted_tokens: u64,
    /// The counts the weighted tokens were made of.
    pub tally: Tally,
}

/// What the ledger has done since the daemon started, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// Rows committed to the store.
    pub written: u64,
    /// Rows dropped because `queue_capacity` rows were waiting.
    pub dropped: u64,
    /// Rows whose write failed (logged).
    pub failed: u64,
    /// Rows waiting for the writer now.
    pub pending: usize,
}

/// State shared by the handles and the writer thread.
#[derive(Debug, Default)]
struct Shared {
    /// Rows recorded and not yet written (or failed): bounded by
    /// `queue_capacity`.
    pending: AtomicUsize,
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Every key's usage over the last month, for limits.
    windows: Mutex<windows::Windows>,
    /// Every key's usage since the daemon started, for `/metrics`.
    totals: Mutex<HashMap<String, Tally>>,
}

/// The ledger; clones share it.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
    settings: Arc<LedgerSettings>,
    /// To the writer; `None` when nothing is written (disabled, or closed).
    writes: Arc<RwLock<Option<Sender<Msg>>>>,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// The store rows go to, for reports; `None` for a ledger in memory.
    store: Option<Store>,
    /// Told of each row as it is recorded (see [`Ledger::observe`]).
    observers: Arc<RwLock<Vec<Observer>>>,
}

/// What [`Ledger::observe`] calls with each row.
type Observer = Arc<dyn Fn(&Record) + Send + Sync>;

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self::in_memory(LedgerSettings::default())
    }
}

impl Ledger {
    /// A ledger that writes nothing: windows and counters in memory only.
    pub fn in_memory(settings: LedgerSettings) -> Self {
        Self {
            shared: Arc::default(),
            settings: Arc::new(settings),
            writes: Arc::default(),
            writer: Arc::default(),
            store: None,
            observers: Arc::default(),
        }
    }

    /// The ledger of `store`: installs its tables, loads the windows from
    /// what the store holds, and starts the writer (unless
    /// `ledger.enabled` is off).
    pub fn start(store: Store, settings: LedgerSettings) -> Result<Self, StoreError> {
        store.install::<schema::LedgerSchema>()?;
        let mut ledger = Self::in_memory(settings);
        {
            let mut windows = ledger.windows();
            let kept = ledger.settings.retention().map(|d| d.as_millis() as i64);
            store.with(|c| schema::load_windows(c, &mut windows, record::now_ms(), kept))?;
        }
        ledger.store = Some(store.clone());
        if ledger.settings.enabled {
            let (tx, rx) = mpsc::channel();
            let shared = ledger.shared.clone();
            let settings = (*ledger.settings).clone();
            let thread = std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || writer::run(store, settings, rx, shared))
                .map_err(|e| StoreError::Task(e.to_string()))?;
            *ledger.writes.write().unwrap_or_else(|e| e.into_inner()) = Some(tx);
            *lock(&ledger.writer) = Some(thread);
        }
        Ok(ledger)
    }

    /// Calls `observer` with every row recorded from now on, whoever
    /// records it (requests, batch requests), before it is written: for
    /// the admins' event stream. It must not block.
    pub fn observe(&self, observer: impl Fn(&Record) + Send + Sync + 'static) {
        self.observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(observer));
    }

    /// The settings the ledger started with.
    pub fn settings(&self) -> &LedgerSettings {
        &self.settings
    }

    /// The store its rows are in, if any.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Records one request: counts it in the key's windows and totals at
    /// once, and hands the row to the writer without waiting. Dropped (and
    /// counted) when `queue_capacity` rows are already waiting.
    pub fn record(&self, record: Record) {
        for observer in self
            .observers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            observer(&record);
        }
        let tally = Tally::one(&record.usage);
        let now = record::now_ms();
        self.windows()
            .add(&record.key, record.done_ms(), tally, now);
        *lock(&self.shared.totals)
            .entry(record.key.clone())
            .or_default() += tally;
        let writes = self.writes.read().unwrap_or_else(|e| e.into_inner());
        let Some(writes) = writes.as_ref() else {
            return;
        };
        let capacity = self.settings.queue_capacity;
        if self.shared.pending.fetch_add(1, Ordering::AcqRel) >= capacity {
            self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if writes.send(Msg::Row(Box::new(record))).is_err() {
            self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            self.shared.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What `key` used since `since` (to now), from memory: the last hour
    /// to the millisecond, older usage by whole minutes, up to a month
    /// back (see [`windows`]). Tokens are weighted by
    /// `ledger.cache_read_weight`. This is what per-key token budgets and
    /// request rates are checked against.
    pub fn usage_since(&self, key: &str, since: SystemTime) -> WindowUsage {
        let tally = self
            .windows()
            .since(key, record::to_ms(since), record::now_ms());
        WindowUsage {
            requests: tally.requests,
            weighted_tokens: tally.weighted_tokens(self.settings.cache_read_weight),
            tally,
        }
    }

    /// Every key's usage since the daemon started, by key name.
    pub fn totals(&self) -> Vec<(String, Tally)> {
        let mut totals: Vec<_> = lock(&self.shared.totals)
            .iter()
            .map(|(k, t)| (k.clone(), *t))
            .collect();
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        totals
    }

    pub fn stats(&self) -> LedgerStats {
        LedgerStats {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            pending: self.shared.pending.load(Ordering::Relaxed),
        }
    }

    /// Waits (blocking, up to `limit`) until every row recorded so far is
    /// written. Returns whether it was.
    pub fn flush(&self, limit: Duration) -> bool {
        let (ack, done) = mpsc::sync_channel(1);
        {
            let writes = self.writes.read().unwrap_or_else(|e| e.into_inner());
            let Some(writes) = writes.as_ref() else {
                return true;
            };
            if writes.send(Msg::Flush(ack)).is_err() {
                return false;
            }
        }
        done.recv_timeout(limit).is_ok()
    }

    /// Writes every row still waiting and stops the writer (blocking). Rows
    /// recorded afterwards are only counted in memory.
    pub fn close(&self) {
        drop(
            self.writes
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if let Some(thread) = lock(&self.writer).take() {
            let _ = thread.join();
        }
    }

    fn windows(&self) -> MutexGuard<'_, windows::Windows> {
        lock(&self.shared.windows)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
