//! The ledger's writer thread: takes recorded rows off an unbounded channel
//! whose length the [`Ledger`](super::Ledger) bounds (`pending`), and writes
//! whatever has gathered in one transaction, so that a burst of requests
//! costs one commit, not one each. Prunes old rows and rollups now and then.
// std::time::Instant here: prune interval of a blocking writer thread, outside the runtime.
#![allow(clippy::disallowed_types)]

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::{now_ms, Record};
use super::{schema, Shared};
use crate::config::LedgerSettings;
use crate::store::health::Writer;
use crate::store::Store;

/// Most rows in one transaction.
const MAX_BATCH: usize = 1000;
/// How often old rows and rollups are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// What the writer is handed.
pub(super) enum Msg {
    Row(Box<Record>),
    /// Answered once every row sent before it is written (or failed).
    Flush(SyncSender<()>),
}

/// Runs until every sender is gone and the channel is empty.
pub(super) fn run(store: Store, settings: LedgerSettings, rx: Receiver<Msg>, shared: Arc<Shared>) {
    let mut pruned = None;
    loop {
        if pruned.is_none_or(|at: Instant| at.elapsed() >= PRUNE_EVERY) {
            prune(&store, &settings);
            pruned = Some(Instant::now());
        }
        let first = match rx.recv_timeout(PRUNE_EVERY) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut rows = Vec::new();
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Row(row) => rows.push(*row),
                Msg::Flush(ack) => acks.push(ack),
            }
            next = (rows.len() < MAX_BATCH)
                .then(|| rx.try_recv().ok())
                .flatten();
        }
        if !rows.is_empty() {
            write(&store, &rows, &shared);
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

fn write(store: &Store, rows: &[Record], shared: &Shared) {
    let written = panic::catch_unwind(AssertUnwindSafe(|| {
        store.with(|conn| schema::write(conn, rows))
    }));
    let n = rows.len() as u64;
    match written {
        Ok(Ok(())) => {
            shared.written.fetch_add(n, Ordering::Relaxed);
            store.health().succeeded(Writer::Ledger);
        }
        Ok(Err(e)) => {
            log::error!("ledger: {n} rows not written: {e}");
            shared.failed.fetch_add(n, Ordering::Relaxed);
            store.health().failed(Writer::Ledger, &e);
        }
        Err(_) => {
            log::error!("ledger: {n} rows not written: the write panicked");
            shared.failed.fetch_add(n, Ordering::Relaxed);
        }
    }
    shared.pending.fetch_sub(rows.len(), Ordering::AcqRel);
}

fn prune(store: &Store, settings: &LedgerSettings) {
    let now = now_ms();
    let before = |kept: Option<Duration>| kept.map(|d| now - d.as_millis() as i64);
    let rows = before(settings.retention());
    let rollups = before(settings.rollup_retention());
    match store.with(|conn| schema::prune(conn, rows, rollups)) {
        Ok(0) => {}
        Ok(n) => log::info!("ledger: {n} rows past ledger.retention_days deleted"),
        Err(e) => log::warn!("ledger: pruning failed: {e}"),
    }
}
