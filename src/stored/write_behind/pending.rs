//! What the responses' writer holds in memory: the responses handed to it
//! and not yet committed, by id, readable until they are; while the store
//! fails, how many of them wait and their bytes (the bound).
// std::time::Instant here: a deadline of a blocking wait, outside the runtime.
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::store::health::StoreHealth;
use crate::stored::responses::StoredResponse;

/// Responses handed to the writer and not yet committed, by id.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub(super) responses: Mutex<PendingMap>,
    /// Notified whenever a write is committed (or failed, or dropped).
    pub(super) written: Condvar,
    pub(super) health: Arc<StoreHealth>,
}

#[derive(Debug, Default)]
pub(super) struct PendingMap {
    pub(super) by_id: HashMap<String, Entry>,
    pub(super) next: u64,
    /// The id whose write is under way (`delete` waits for it).
    pub(super) writing: Option<String>,
    /// The last write failed: what is pending waits for the store to
    /// take writes again, and counts as unwritten.
    pub(super) failing: bool,
    /// Of `by_id`, the entries waiting for a failing store, and their bytes.
    pub(super) unwritten: usize,
    pub(super) unwritten_bytes: u64,
}

/// The latest write of one id.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) response: Arc<StoredResponse>,
    /// Its size in bytes, once it waits for a failing store (it counts
    /// towards the bound then).
    pub(super) failed: Option<u64>,
}

impl PendingMap {
    /// Removes `id`'s entry, taking it out of the unwritten count.
    pub(super) fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.by_id.remove(id)?;
        if let Some(bytes) = entry.failed {
            self.unwritten -= 1;
            self.unwritten_bytes -= bytes;
        }
        Some(entry)
    }

    /// Whether `(id, seq)` is still the write to make; if so it is marked
    /// under way.
    pub(super) fn start(&mut self, id: &str, seq: u64) -> bool {
        let current = self.by_id.get(id).is_some_and(|e| e.seq == seq);
        if current {
            self.writing = Some(id.to_string());
        }
        current
    }

    /// A write failed: everything pending stays, counted as unwritten.
    pub(super) fn failed(&mut self) {
        self.writing = None;
        if self.failing {
            return;
        }
        self.failing = true;
        for entry in self.by_id.values_mut().filter(|e| e.failed.is_none()) {
            let bytes = size_of(&entry.response);
            entry.failed = Some(bytes);
            self.unwritten += 1;
            self.unwritten_bytes += bytes;
        }
    }

    /// Adds a write; while the store fails it counts as unwritten at once.
    pub(super) fn insert(&mut self, response: Arc<StoredResponse>) -> u64 {
        self.next += 1;
        self.remove(&response.id);
        let failed = self.failing.then(|| size_of(&response));
        if let Some(bytes) = failed {
            self.unwritten += 1;
            self.unwritten_bytes += bytes;
        }
        let entry = Entry {
            seq: self.next,
            response: response.clone(),
            failed,
        };
        self.by_id.insert(response.id.clone(), entry);
        self.next
    }

    /// The write `(id, seq)` is done (or given up): a later write of the
    /// same id stays pending.
    pub(super) fn done(&mut self, id: &str, seq: u64) {
        self.writing = None;
        if self.by_id.get(id).is_some_and(|e| e.seq == seq) {
            self.remove(id);
        }
    }
}

/// The bytes a response takes as JSON: what it holds in memory, roughly.
fn size_of(response: &StoredResponse) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, &response.response);
    let _ = serde_json::to_writer(&mut count, &response.input);
    let _ = serde_json::to_writer(&mut count, &response.context);
    count.0
}

impl Pending {
    pub(super) fn lock(&self) -> MutexGuard<'_, PendingMap> {
        self.responses.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `busy` no longer holds, or until `deadline`.
    pub(super) fn wait_until_none(
        &self,
        deadline: Option<Instant>,
        busy: impl Fn(&PendingMap) -> bool,
    ) -> MutexGuard<'_, PendingMap> {
        let mut map = self.lock();
        while busy(&map) {
            map = match deadline {
                None => self.written.wait(map).unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.written
                        .wait_timeout(map, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        map
    }

    /// Shows the backlog in the store's health.
    pub(super) fn publish(&self, map: &PendingMap) {
        self.health
            .set_unwritten_responses(map.unwritten, map.unwritten_bytes);
    }
}
