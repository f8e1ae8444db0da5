//! Stored responses written behind the request: `put` hands the response
//! to a writer thread and returns, so the SQLite commit is no longer part
//! of a `/v1/responses` request's time.
//!
//! Read-your-writes: until the writer has committed a response, it is kept
//! in memory and every read (`get`, `item`) looks there first, so a
//! `previous_response_id` sent the moment the client has the response
//! finds it. `delete` waits for a pending write of the same id, so a
//! deleted response cannot come back when its write lands. A daemon killed
//! with SIGKILL loses the writes still pending (milliseconds' worth); a
//! stopping daemon waits for them ([`WriteBehind::flush`]).

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde_json::Value;

use super::stored::{ResponseStore, StoredResponse};
use crate::store::StoreError;

/// A [`ResponseStore`] whose writes go to `inner` on a thread of their own.
#[derive(Debug)]
pub struct WriteBehind {
    inner: Arc<dyn ResponseStore>,
    pending: Arc<Pending>,
    /// To the writer thread; `None` once closed.
    writes: Mutex<Option<mpsc::Sender<Write>>>,
}

/// A response handed to the writer, with its sequence number. The pending
/// map and the writer share one copy of the response.
type Write = (u64, Arc<StoredResponse>);

/// Responses handed to the writer and not yet committed, by id, each with
/// the sequence number of its latest write.
#[derive(Debug, Default)]
struct Pending {
    responses: Mutex<PendingMap>,
    /// Notified whenever a write is committed (or failed).
    written: Condvar,
}

#[derive(Debug, Default)]
struct PendingMap {
    by_id: HashMap<String, Write>,
    next: u64,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingMap> {
        self.responses.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no write is pending for which `busy` holds.
    fn wait_until_none(&self, busy: impl Fn(&PendingMap) -> bool) {
        let mut map = self.lock();
        while busy(&map) {
            map = self.written.wait(map).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl WriteBehind {
    /// Starts the writer thread in front of `inner`.
    pub fn new(inner: Arc<dyn ResponseStore>) -> Self {
        let pending = Arc::new(Pending::default());
        let (tx, rx) = mpsc::channel::<Write>();
        let writer = {
            let (inner, pending) = (inner.clone(), pending.clone());
            move || {
                for (seq, response) in rx {
                    // A panic in the store must not end the writer with the
                    // response still pending: `flush` and `delete` wait for it.
                    match panic::catch_unwind(AssertUnwindSafe(|| inner.put(&response))) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => log::error!("cannot store response {}: {e}", response.id),
                        Err(_) => log::error!("storing response {} panicked", response.id),
                    }
                    let mut map = pending.lock();
                    // A later write of the same id stays pending.
                    if map.by_id.get(&response.id).is_some_and(|(s, _)| *s == seq) {
                        map.by_id.remove(&response.id);
                    }
                    drop(map);
                    pending.written.notify_all();
                }
            }
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
        }
    }

    /// Waits until every response handed over so far is committed.
    pub fn flush(&self) {
        self.pending.wait_until_none(|map| !map.by_id.is_empty());
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
        map.next += 1;
        let seq = map.next;
        map.by_id.insert(response.id.clone(), (seq, shared.clone()));
        drop(map);
        if tx.send((seq, shared)).is_err() {
            // The writer is gone (it panicked): write in line from now on.
            self.pending.lock().by_id.remove(&response.id);
            drop(writes);
            *self.writes.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return self.inner.put(response);
        }
        Ok(())
    }

    fn get(&self, scope: &str, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        if let Some((_, response)) = self.pending.lock().by_id.get(id) {
            return Ok((response.scope == scope).then(|| StoredResponse::clone(response)));
        }
        self.inner.get(scope, id)
    }

    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
        self.pending
            .wait_until_none(|map| map.by_id.contains_key(id));
        self.inner.delete(scope, id)
    }

    fn item(&self, scope: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let pending = self.pending.lock();
        let newest = pending
            .by_id
            .values()
            .filter(|(_, r)| r.scope == scope)
            .filter_map(|(seq, r)| {
                let output = r.response["output"].as_array().into_iter().flatten();
                let item = r.input.iter().chain(output).find(|i| i["id"] == id)?;
                Some((*seq, item.clone()))
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
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A store whose writes wait while `held`: a slow disk.
    #[derive(Debug)]
    struct Gated {
        inner: super::super::stored::SqliteResponses,
        held: AtomicBool,
    }

    impl ResponseStore for Gated {
        fn put(&self, r: &StoredResponse) -> Result<(), StoreError> {
            while self.held.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.inner.put(r)
        }
        fn get(&self, scope: &str, id: &str) -> Result<Option<StoredResponse>, StoreError> {
            self.inner.get(scope, id)
        }
        fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
            self.inner.delete(scope, id)
        }
        fn item(&self, scope: &str, id: &str) -> Result<Option<Value>, StoreError> {
            self.inner.item(scope, id)
        }
    }

    fn gated() -> Arc<Gated> {
        let store = crate::store::Store::in_memory().unwrap();
        Arc::new(Gated {
            inner: super::super::stored::SqliteResponses::new(store, 10, Duration::from_secs(60))
                .unwrap(),
            held: AtomicBool::new(true),
        })
    }

    fn response(id: &str, scope: &str) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            scope: scope.into(),
            response: json!({"id": id, "output": [{"type": "message", "id": format!("out-{id}")}]}),
            input: vec![json!({"type": "message", "id": format!("in-{id}")})],
            context: vec![],
        }
    }

    #[test]
    fn a_write_returns_before_the_disk_and_is_read_back_at_once() {
        let disk = gated();
        let store = WriteBehind::new(disk.clone());
        // Returns although the disk holds every write.
        store.put(&response("a", "k1")).unwrap();
        assert_eq!(disk.inner.get("k1", "a").unwrap(), None, "not yet on disk");
        assert_eq!(store.get("k1", "a").unwrap(), Some(response("a", "k1")));
        assert_eq!(store.get("k2", "a").unwrap(), None, "scoped while pending");
        assert_eq!(store.item("k1", "out-a").unwrap().unwrap()["id"], "out-a");
        assert_eq!(store.item("k2", "in-a").unwrap(), None);
        disk.held.store(false, Ordering::SeqCst);
        store.flush();
        assert_eq!(
            disk.inner.get("k1", "a").unwrap(),
            Some(response("a", "k1"))
        );
        assert_eq!(store.get("k1", "a").unwrap(), Some(response("a", "k1")));
    }

    /// A store whose every write panics.
    #[derive(Debug)]
    struct Panicking;

    impl ResponseStore for Panicking {
        fn put(&self, r: &StoredResponse) -> Result<(), StoreError> {
            panic!("cannot write {}", r.id)
        }
        fn get(&self, _: &str, _: &str) -> Result<Option<StoredResponse>, StoreError> {
            Ok(None)
        }
        fn delete(&self, _: &str, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        fn item(&self, _: &str, _: &str) -> Result<Option<Value>, StoreError> {
            Ok(None)
        }
    }

    #[test]
    fn a_write_that_panics_is_not_left_pending() {
        let store = Arc::new(WriteBehind::new(Arc::new(Panicking)));
        store.put(&response("a", "k1")).unwrap();
        store.put(&response("b", "k1")).unwrap();
        let (done, finished) = mpsc::channel();
        std::thread::spawn({
            let store = store.clone();
            move || {
                store.flush();
                let deleted = store.delete("k1", "a").unwrap();
                done.send(deleted).unwrap();
            }
        });
        let deleted = finished.recv_timeout(Duration::from_secs(30));
        assert_eq!(
            deleted,
            Ok(false),
            "flush and delete return, nothing stored"
        );
        assert_eq!(store.get("k1", "b").unwrap(), None);
    }

    #[test]
    fn a_delete_waits_for_the_pending_write_so_nothing_comes_back() {
        let disk = gated();
        let store = Arc::new(WriteBehind::new(disk.clone()));
        store.put(&response("a", "k1")).unwrap();
        let deleting = std::thread::spawn({
            let store = store.clone();
            move || store.delete("k1", "a").unwrap()
        });
        std::thread::sleep(Duration::from_millis(20));
        disk.held.store(false, Ordering::SeqCst);
        assert!(deleting.join().unwrap(), "the delete found the response");
        store.flush();
        assert_eq!(store.get("k1", "a").unwrap(), None);
        assert_eq!(disk.inner.get("k1", "a").unwrap(), None);
    }
}
