//! Stored responses written behind the request: `put` hands the response
//! to a writer thread and returns, so the SQLite commit is no longer part
//! of a `/v1/responses` request's time.
//!
//! Read-your-writes: until the writer has committed a response, it is kept
//! in memory and every read (`get`, `item`) looks there first, so a
//! `previous_response_id` sent the moment the client has the response
//! finds it. `delete` waits for a write of the same id in progress, and
//! takes a waiting one out, so a deleted response cannot come back when its
//! write lands.
//!
//! A write that fails (a full disk) is not dropped: the client was told
//! `store: true`. The response stays in memory, readable, and the writer
//! retries, oldest first, with a doubling pause, until it is written; the
//! store's health (`/health`, `/metrics`) shows the failure and the
//! backlog. Memory is bounded: once the unwritten responses reach
//! `max_unwritten_bytes`, `put` refuses new ones ([`StoreError::Backlog`])
//! and the client's response says `store: false`.
//!
//! A daemon killed with SIGKILL loses the writes still pending (normally
//! milliseconds' worth); a stopping daemon waits for them a while
//! ([`WriteBehind::flush`]) and logs what it could not write.
// std::time::Instant here: retry deadlines of a blocking writer thread, outside the runtime.
#![allow(clippy::disallowed_types)]

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::pending::Pending;
use super::{FIRST_RETRY_PAUSE, MAX_RETRY_PAUSE};
use crate::store::health::{StoreHealth, Writer};
use crate::store::StoreError;
use crate::stored::responses::{ResponseStore, StoredResponse};

/// A [`ResponseStore`] whose writes go to `inner` on a thread of their own.
#[derive(Debug)]
pub struct WriteBehind {
    inner: Arc<dyn ResponseStore>,
    pending: Arc<Pending>,
    /// To the writer thread; `None` once closed.
    writes: Mutex<Option<mpsc::Sender<Write>>>,
    /// Past this many bytes of unwritten responses, new ones are refused.
    max_unwritten_bytes: u64,
}

/// A response handed to the writer, with its sequence number. The pending
/// map and the writer share one copy of the response.
type Write = (u64, Arc<StoredResponse>);

/// The writer thread: writes in the order handed over; after a failure,
/// retries the oldest unwritten response first, pausing longer each time.
fn write_all(inner: Arc<dyn ResponseStore>, pending: Arc<Pending>, rx: mpsc::Receiver<Write>) {
    let mut queue: VecDeque<Write> = VecDeque::new();
    let mut pause = FIRST_RETRY_PAUSE;
    // While writes fail: when to try again.
    let mut retry_at: Option<Instant> = None;
    loop {
        let received = match retry_at {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(write) => queue.push_back(write),
            Err(RecvTimeoutError::Timeout) => retry_at = None,
            // The daemon is gone; `flush` has had its chance.
            Err(RecvTimeoutError::Disconnected) => break,
        }
        queue.extend(rx.try_iter());
        if retry_at.is_some_and(|at| Instant::now() < at) {
            continue;
        }
        retry_at = None;
        while let Some((seq, response)) = queue.front().cloned() {
            if !pending.lock().start(&response.id, seq) {
                // Replaced by a later write, or deleted.
                queue.pop_front();
                continue;
            }
            let result = panic::catch_unwind(AssertUnwindSafe(|| inner.put(&response)));
            let mut map = pending.lock();
            match result {
                Ok(Err(e)) => {
                    if !map.failing {
                        log::error!(
                            "cannot store response {}: {e}; it stays in memory and is written when the store takes writes again",
                            response.id
                        );
                    }
                    map.failed();
                    pending.health.failed(Writer::Responses, &e);
                    retry_at = Some(Instant::now() + pause);
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
                Ok(Ok(())) => {
                    map.done(&response.id, seq);
                    map.failing = false;
                    pending.health.succeeded(Writer::Responses);
                    pause = FIRST_RETRY_PAUSE;
                    queue.pop_front();
                }
                // A bug, not the disk: retrying would panic again. Logged,
                // and nothing is left pending (`flush`, `delete` wait).
                Err(_) => {
                    log::error!("storing response {} panicked", response.id);
                    map.done(&response.id, seq);
                    queue.pop_front();
                }
            }
            pending.publish(&map);
            drop(map);
            pending.written.notify_all();
            if retry_at.is_some() {
                break;
            }
        }
    }
    let map = pending.lock();
    if map.unwritten > 0 {
        log::error!(
            "{} stored responses were never written (the store failed) and are lost",
            map.unwritten
        );
    }
}

impl WriteBehind {
    /// Starts the writer thread in front of `inner`; its failures and
    /// backlog are reported to `health`, and at most `max_unwritten_bytes`
    /// of responses wait in memory for a failing store.
    pub fn new(
        inner: Arc<dyn ResponseStore>,
        health: Arc<StoreHealth>,
        max_unwritten_bytes: u64,
    ) -> Self {
        let pending = Arc::new(Pending {
            health,
            ..Pending::default()
        });
        let (tx, rx) = mpsc::channel::<Write>();
        let writer = {
            let (inner, pending) = (inner.clone(), pending.clone());
            move || write_all(inner, pending, rx)
        };
        let spawned = std::thread::Builder::new()
            .name("responses-writer".into())
            .spawn(writer);
        if let Err(e) = &spawned {
            log::error!("no writer thread for stored responses ({e}): writing them in line");
        }
        Self {
            inner,
            pending,
            writes: Mutex::new(spawned.ok().map(|_| tx)),
            max_unwritten_bytes,
        }
    }

    /// Writes to `inner` in line, with no thread: for a store that keeps
    /// nothing (`responses.max_stored = 0`), where a pending response would
    /// be readable for a moment.
    pub fn in_line(inner: Arc<dyn ResponseStore>) -> Self {
        Self {
            inner,
            pending: Arc::default(),
            writes: Mutex::new(None),
            max_unwritten_bytes: 0,
        }
    }

    /// Waits until every response handed over so far is written, at most
    /// `limit`; returns how many are not.
    pub fn flush(&self, limit: Duration) -> usize {
        let map = self
            .pending
            .wait_until_none(Some(Instant::now() + limit), |map| !map.by_id.is_empty());
        map.by_id.len()
    }
}

impl ResponseStore for WriteBehind {
    fn put(&self, response: &StoredResponse) -> Result<(), StoreError> {
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = writes.as_ref() else {
            return self.inner.put(response);
        };
        let shared = Arc::new(response.clone());
        let mut map = self.pending.lock();
        if map.unwritten > 0 && map.unwritten_bytes >= self.max_unwritten_bytes {
            return Err(StoreError::Backlog(format!(
                "{} responses ({} bytes)",
                map.unwritten, map.unwritten_bytes
            )));
        }
        let seq = map.insert(shared.clone());
        self.pending.publish(&map);
        drop(map);
        if tx.send((seq, shared)).is_err() {
            // The writer is gone: write in line from now on.
            self.pending.lock().remove(&response.id);
            drop(writes);
            *self.writes.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return self.inner.put(response);
        }
        Ok(())
    }

    fn get(&self, scope: &str, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        if let Some(entry) = self.pending.lock().by_id.get(id) {
            let response = &entry.response;
            return Ok((response.scope == scope).then(|| StoredResponse::clone(response)));
        }
        self.inner.get(scope, id)
    }

    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
        let mut map = self
            .pending
            .wait_until_none(None, |map| map.writing.as_deref() == Some(id));
        let mine = map.by_id.get(id).is_some_and(|e| e.response.scope == scope);
        let removed = mine && map.remove(id).is_some();
        self.pending.publish(&map);
        drop(map);
        let on_disk = self.inner.delete(scope, id)?;
        Ok(removed || on_disk)
    }

    fn item(&self, scope: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let pending = self.pending.lock();
        let newest = pending
            .by_id
            .values()
            .filter(|e| e.response.scope == scope)
            .filter_map(|e| {
                let r = &e.response;
                let output = r.response["output"].as_array().into_iter().flatten();
                let item = r.input.iter().chain(output).find(|i| i["id"] == id)?;
                Some((e.seq, item.clone()))
            })
            .max_by_key(|(seq, _)| *seq);
        drop(pending);
        match newest {
            Some((_, item)) => Ok(Some(item)),
            None => self.inner.item(scope, id),
        }
    }
}

#[cfg(test)]
mod tests;
