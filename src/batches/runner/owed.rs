//! What the batch runner owes a failing store (a full disk): the writes it
//! could not make, kept in memory and made first when the store takes
//! writes again, and the pause of batch work meanwhile, doubling up to
//! [`MAX_STORE_PAUSE`].

use super::*;

/// A write the runner owes the store.
#[derive(Debug, Clone)]
pub(super) struct Owed {
    pub(super) id: String,
    pub(super) seq: i64,
    pub(super) idx: i64,
    pub(super) change: Change,
}

/// What becomes of a request that ran.
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// Its result.
    Record(Outcome),
    /// Back to the queue, the attempt uncounted.
    Requeue,
}

#[derive(Debug)]
pub(super) struct StorePause {
    pub(super) until: Option<tokio::time::Instant>,
    pub(super) next: Duration,
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
    /// A store call failed: batch work pauses (longer each time), and the
    /// store's health says why.
    pub(super) fn store_failed(&self, doing: &str, error: &StoreError) {
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
    pub(super) fn store_works(&self) {
        let health = self.store.health();
        health.succeeded(Writer::Batches);
        health.set_batches_paused(false);
        *self.store_pause.lock().unwrap_or_else(|e| e.into_inner()) = StorePause::default();
    }

    pub(super) fn store_paused(&self) -> bool {
        self.store_pause
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .until
            .is_some_and(|until| tokio::time::Instant::now() < until)
    }

    /// Keeps a write the store refused, to make before any new work.
    pub(super) fn owe(&self, owed: Owed) {
        let mut all = self.owed.lock().unwrap_or_else(|e| e.into_inner());
        all.push(owed);
        self.store.health().set_unwritten_batch_results(all.len());
    }

    /// Makes the writes owed, oldest first; after a failure with nothing
    /// owed, probes with a write. True when the store takes writes.
    pub(super) async fn pay_back(&self) -> bool {
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
    pub(super) async fn write(
        &self,
        seq: i64,
        idx: i64,
        change: Change,
    ) -> Result<bool, StoreError> {
        match change {
            Change::Record(outcome) => {
                self.store
                    .call(move |c| queue::record(c, seq, idx, &outcome, now_ms()))
                    .await
            }
            Change::Requeue => self.store.call(move |c| queue::requeue(c, seq, idx)).await,
        }
    }
}
