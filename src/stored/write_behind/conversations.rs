//! Conversation items written behind the request: when a response made in
//! a conversation ends, the items it adds (its input and output) are handed
//! to a writer thread ([`ConversationsBehind::append_behind`]), so the
//! stream's end does no SQLite call on the HTTP thread.
//!
//! Read-your-writes: appends wait in memory, in order, until committed, and
//! a read of the conversation's items is the store's followed by those
//! still waiting, so the conversation's next turn, sent the moment the
//! stream ends, sees the turn before it. A read and the writer's commit
//! exclude each other (`commit`), so a read sees each append exactly once,
//! still in memory or already on disk; a read (on the blocking pool) waits
//! at most for the one commit under way.
//!
//! A failed append (a full disk) stays in memory, readable, and is retried
//! with a doubling pause; the store's health shows the failure. Memory is
//! bounded: while the store fails and the waiting items reach
//! `max_unwritten_bytes`, new appends are refused ([`StoreError::Backlog`]).
// std::time::Instant here: retry deadlines of a blocking writer thread, outside the runtime.
#![allow(clippy::disallowed_types)]

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{FIRST_RETRY_PAUSE, MAX_RETRY_PAUSE};
use crate::store::health::{StoreHealth, Writer};
use crate::store::StoreError;
use crate::stored::conversations::{Conversation, ConversationStore};

/// A [`ConversationStore`] whose appends go to `inner` on a thread of
/// their own.
#[derive(Debug)]
pub struct ConversationsBehind {
    inner: Arc<dyn ConversationStore>,
    shared: Arc<Shared>,
    /// Wakes the writer thread; `None` without one (appends are then
    /// written in line).
    wake: Mutex<Option<mpsc::Sender<()>>>,
    /// While the store fails, past this many bytes of waiting items new
    /// appends are refused.
    max_unwritten_bytes: u64,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Notified whenever an append leaves the queue.
    written: Condvar,
    /// Held alone by the writer across a commit and taking the committed
    /// append off the queue (and by what removes from both, `delete`,
    /// `delete_item`); shared by a read across its look at the queue and
    /// at the store.
    commit: RwLock<()>,
    health: Arc<StoreHealth>,
}

/// The appends handed over and not yet committed, oldest first.
#[derive(Debug, Default)]
struct Queue {
    appends: VecDeque<Append>,
    /// Their size in bytes of JSON.
    bytes: u64,
    /// The last write failed.
    failing: bool,
}

#[derive(Debug)]
struct Append {
    scope: String,
    id: String,
    items: Vec<Value>,
    bytes: u64,
}

impl Append {
    fn of(&self, scope: &str, id: &str) -> bool {
        self.scope == scope && self.id == id
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits the oldest waiting append: `None` if nothing waits, else
    /// whether the store took it.
    fn write_next(&self, inner: &dyn ConversationStore) -> Option<bool> {
        let _commit = self.commit.write().unwrap_or_else(|e| e.into_inner());
        // Off the queue while it is written: no read looks meanwhile.
        let append = self.lock().appends.pop_front()?;
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            inner.append(&append.scope, &append.id, &append.items)
        }));
        let mut queue = self.lock();
        let written = match result {
            Ok(Err(e)) => {
                if !queue.failing {
                    log::error!(
                        "cannot add to conversation {}: {e}; the items stay in memory and are written when the store takes writes again",
                        append.id
                    );
                }
                queue.failing = true;
                self.health.failed(Writer::Conversations, &e);
                queue.appends.push_front(append);
                false
            }
            Ok(Ok(_)) => {
                queue.failing = false;
                self.health.succeeded(Writer::Conversations);
                queue.bytes -= append.bytes;
                true
            }
            // A bug, not the disk: retrying would panic again.
            Err(_) => {
                log::error!("adding to conversation {} panicked", append.id);
                queue.bytes -= append.bytes;
                true
            }
        };
        drop(queue);
        self.written.notify_all();
        Some(written)
    }
}

/// The writer thread: commits appends in the order handed over; after a
/// failure, retries the oldest first, pausing longer each time.
fn write_all(inner: Arc<dyn ConversationStore>, shared: Arc<Shared>, wake: mpsc::Receiver<()>) {
    let mut pause = FIRST_RETRY_PAUSE;
    let mut retry_at: Option<Instant> = None;
    loop {
        let woken = match retry_at {
            None => wake.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => wake.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        if woken == Err(RecvTimeoutError::Disconnected) {
            // The daemon is gone; `flush` has had its chance.
            break;
        }
        wake.try_iter().for_each(drop);
        if retry_at.is_some_and(|at| Instant::now() < at) {
            continue;
        }
        retry_at = None;
        while let Some(written) = shared.write_next(inner.as_ref()) {
            if written {
                pause = FIRST_RETRY_PAUSE;
            } else {
                retry_at = Some(Instant::now() + pause);
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
                break;
            }
        }
    }
    let left = shared.lock().appends.len();
    if left > 0 {
        log::error!("{left} additions to conversations were never written and are lost");
    }
}

/// The bytes `items` take as JSON: what they hold in memory, roughly.
fn size_of(items: &[Value]) -> u64 {
    items.iter().map(|i| i.to_string().len() as u64).sum()
}

impl ConversationsBehind {
    /// Starts the writer thread in front of `inner`; its failures are
    /// reported to `health`.
    pub fn new(
        inner: Arc<dyn ConversationStore>,
        health: Arc<StoreHealth>,
        max_unwritten_bytes: u64,
    ) -> Self {
        let shared = Arc::new(Shared {
            health,
            ..Shared::default()
        });
        let (tx, rx) = mpsc::channel();
        let writer = {
            let (inner, shared) = (inner.clone(), shared.clone());
            move || write_all(inner, shared, rx)
        };
        let spawned = std::thread::Builder::new()
            .name("conversations-writer".into())
            .spawn(writer);
        if let Err(e) = &spawned {
            log::error!("no writer thread for conversations ({e}): writing them in line");
        }
        Self {
            inner,
            shared,
            wake: Mutex::new(spawned.ok().map(|_| tx)),
            max_unwritten_bytes,
        }
    }

    /// Adds `items` to conversation `id` of `scope` without waiting for the
    /// store (nor touching it): the next read of the conversation sees
    /// them. An append to a conversation that is not there (deleted
    /// meanwhile) adds nothing.
    pub fn append_behind(
        &self,
        scope: &str,
        id: &str,
        items: Vec<Value>,
    ) -> Result<(), StoreError> {
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = wake.as_ref() else {
            return self.inner.append(scope, id, &items).map(drop);
        };
        let bytes = size_of(&items);
        let mut queue = self.shared.lock();
        if queue.failing && queue.bytes >= self.max_unwritten_bytes {
            return Err(StoreError::Backlog(format!(
                "{} additions to conversations ({} bytes)",
                queue.appends.len(),
                queue.bytes
            )));
        }
        queue.bytes += bytes;
        queue.appends.push_back(Append {
            scope: scope.to_string(),
            id: id.to_string(),
            items,
            bytes,
        });
        drop(queue);
        if tx.send(()).is_err() {
            log::error!("the conversations' writer is gone: additions wait in memory");
        }
        Ok(())
    }

    /// Waits until every append handed over so far is written, at most
    /// `limit`; returns how many are not.
    pub fn flush(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let mut queue = self.shared.lock();
        while !queue.appends.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = (self.shared.written)
                .wait_timeout(queue, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        queue.appends.len()
    }
}

impl ConversationStore for ConversationsBehind {
    fn create(
        &self,
        scope: &str,
        id: &str,
        metadata: &Value,
        items: &[Value],
    ) -> Result<Conversation, StoreError> {
        self.inner.create(scope, id, metadata, items)
    }

    fn get(&self, scope: &str, id: &str) -> Result<Option<Conversation>, StoreError> {
        self.inner.get(scope, id)
    }

    fn update(
        &self,
        scope: &str,
        id: &str,
        metadata: &Value,
    ) -> Result<Option<Conversation>, StoreError> {
        self.inner.update(scope, id, metadata)
    }

    /// Removes it, with its items still waiting.
    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
        let _commit = self
            .shared
            .commit
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut queue = self.shared.lock();
        let gone: u64 = queue
            .appends
            .iter()
            .filter(|a| a.of(scope, id))
            .map(|a| a.bytes)
            .sum();
        queue.appends.retain(|a| !a.of(scope, id));
        queue.bytes -= gone;
        drop(queue);
        self.inner.delete(scope, id)
    }

    /// The store's items followed by those still waiting to be written.
    fn items(&self, scope: &str, id: &str) -> Result<Option<Vec<Value>>, StoreError> {
        let _commit = self.shared.commit.read().unwrap_or_else(|e| e.into_inner());
        let waiting: Vec<Value> = (self.shared.lock().appends.iter())
            .filter(|a| a.of(scope, id))
            .flat_map(|a| a.items.iter().cloned())
            .collect();
        let stored = self.inner.items(scope, id)?;
        Ok(stored.map(|mut items| {
            items.extend(waiting);
            items
        }))
    }

    /// Written behind like [`ConversationsBehind::append_behind`], once the
    /// conversation is known to be there.
    fn append(&self, scope: &str, id: &str, items: &[Value]) -> Result<bool, StoreError> {
        if self.inner.get(scope, id)?.is_none() {
            return Ok(false);
        }
        self.append_behind(scope, id, items.to_vec())?;
        Ok(true)
    }

    fn delete_item(&self, scope: &str, id: &str, item_id: &str) -> Result<bool, StoreError> {
        let _commit = self
            .shared
            .commit
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut waiting = false;
        for append in self.shared.lock().appends.iter_mut() {
            if append.of(scope, id) {
                let before = append.items.len();
                append.items.retain(|i| i["id"] != item_id);
                waiting |= append.items.len() < before;
            }
        }
        let stored = self.inner.delete_item(scope, id, item_id)?;
        Ok(waiting || stored)
    }
}

#[cfg(test)]
mod tests;
