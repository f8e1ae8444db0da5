//! Unit tests of the write-behind store: a slow disk, a panicking write, a
//! full disk, the bound, and deletes racing writes.

use super::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A store whose writes wait while `held` (a slow disk) and fail while
/// `full` (a full disk).
#[derive(Debug)]
struct Disk {
    inner: crate::stored::responses::SqliteResponses,
    held: AtomicBool,
    full: AtomicBool,
}

impl ResponseStore for Disk {
    fn put(&self, r: &StoredResponse) -> Result<(), StoreError> {
        while self.held.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Task("database or disk is full".into()));
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

fn disk(held: bool, full: bool) -> Arc<Disk> {
    let store = crate::store::Store::in_memory().unwrap();
    Arc::new(Disk {
        inner: crate::stored::responses::SqliteResponses::new(store, 10, Duration::from_secs(60))
            .unwrap(),
        held: AtomicBool::new(held),
        full: AtomicBool::new(full),
    })
}

/// A slow disk, holding every write until `held` is cleared.
fn gated() -> Arc<Disk> {
    disk(true, false)
}

/// A full disk, failing every write until `full` is cleared.
fn full_disk() -> Arc<Disk> {
    disk(false, true)
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
    let store = WriteBehind::new(disk.clone(), Arc::default(), u64::MAX);
    // Returns although the disk holds every write.
    store.put(&response("a", "k1")).unwrap();
    assert_eq!(disk.inner.get("k1", "a").unwrap(), None, "not yet on disk");
    assert_eq!(store.get("k1", "a").unwrap(), Some(response("a", "k1")));
    assert_eq!(store.get("k2", "a").unwrap(), None, "scoped while pending");
    assert_eq!(store.item("k1", "out-a").unwrap().unwrap()["id"], "out-a");
    assert_eq!(store.item("k2", "in-a").unwrap(), None);
    disk.held.store(false, Ordering::SeqCst);
    assert_eq!(store.flush(Duration::from_secs(30)), 0);
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
    let store = Arc::new(WriteBehind::new(
        Arc::new(Panicking),
        Arc::default(),
        u64::MAX,
    ));
    store.put(&response("a", "k1")).unwrap();
    store.put(&response("b", "k1")).unwrap();
    let (done, finished) = mpsc::channel();
    std::thread::spawn({
        let store = store.clone();
        move || {
            assert_eq!(store.flush(Duration::from_secs(30)), 0);
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

/// Waits until `health` reports `n` unwritten responses.
fn wait_unwritten(health: &StoreHealth, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while health.report().unwritten.responses != n {
        assert!(Instant::now() < deadline, "{:?}", health.report());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_failed_write_stays_readable_and_is_written_once_the_store_takes_it() {
    let disk = full_disk();
    let health = Arc::new(StoreHealth::default());
    let store = WriteBehind::new(disk.clone(), health.clone(), u64::MAX);
    store.put(&response("a", "k1")).unwrap();
    store.put(&response("b", "k1")).unwrap();
    wait_unwritten(&health, 2);
    let report = health.report();
    assert_eq!(report.status, "failing");
    assert!(report.unwritten.responses_bytes > 0);
    assert_eq!(store.get("k1", "a").unwrap(), Some(response("a", "k1")));
    assert_eq!(store.item("k1", "out-b").unwrap().unwrap()["id"], "out-b");
    assert_eq!(
        store.flush(Duration::from_millis(50)),
        2,
        "a flush gives up at its limit"
    );
    disk.full.store(false, Ordering::SeqCst);
    assert_eq!(store.flush(Duration::from_secs(30)), 0);
    assert_eq!(
        disk.inner.get("k1", "a").unwrap(),
        Some(response("a", "k1"))
    );
    assert_eq!(
        disk.inner.get("k1", "b").unwrap(),
        Some(response("b", "k1"))
    );
    let report = health.report();
    assert_eq!((report.status, report.unwritten.responses), ("ok", 0));
}

#[test]
fn past_the_bound_new_responses_are_refused_not_dropped_later() {
    let disk = full_disk();
    let health = Arc::new(StoreHealth::default());
    let store = WriteBehind::new(disk.clone(), health.clone(), 0);
    store.put(&response("a", "k1")).unwrap();
    wait_unwritten(&health, 1);
    let refused = store.put(&response("b", "k1"));
    assert!(
        matches!(refused, Err(StoreError::Backlog(_))),
        "{refused:?}"
    );
    assert_eq!(store.get("k1", "b").unwrap(), None);
    assert!(store.get("k1", "a").unwrap().is_some(), "the first is kept");
    disk.full.store(false, Ordering::SeqCst);
    assert_eq!(store.flush(Duration::from_secs(30)), 0);
    store.put(&response("c", "k1")).unwrap();
    assert_eq!(store.flush(Duration::from_secs(30)), 0);
    assert!(disk.inner.get("k1", "a").unwrap().is_some());
    assert!(disk.inner.get("k1", "c").unwrap().is_some());
}

#[test]
fn a_deleted_unwritten_response_is_never_written() {
    let disk = full_disk();
    let health = Arc::new(StoreHealth::default());
    let store = WriteBehind::new(disk.clone(), health.clone(), u64::MAX);
    store.put(&response("a", "k1")).unwrap();
    wait_unwritten(&health, 1);
    assert!(!store.delete("k2", "a").unwrap(), "not another key's");
    assert!(store.delete("k1", "a").unwrap());
    assert_eq!(health.report().unwritten.responses, 0);
    assert_eq!(store.get("k1", "a").unwrap(), None);
    disk.full.store(false, Ordering::SeqCst);
    store.put(&response("b", "k1")).unwrap();
    assert_eq!(store.flush(Duration::from_secs(30)), 0);
    assert_eq!(disk.inner.get("k1", "a").unwrap(), None);
    assert!(disk.inner.get("k1", "b").unwrap().is_some());
}

#[test]
fn a_delete_waits_for_the_pending_write_so_nothing_comes_back() {
    let disk = gated();
    let store = Arc::new(WriteBehind::new(disk.clone(), Arc::default(), u64::MAX));
    store.put(&response("a", "k1")).unwrap();
    let deleting = std::thread::spawn({
        let store = store.clone();
        move || store.delete("k1", "a").unwrap()
    });
    std::thread::sleep(Duration::from_millis(20));
    disk.held.store(false, Ordering::SeqCst);
    assert!(deleting.join().unwrap(), "the delete found the response");
    assert_eq!(store.flush(Duration::from_secs(30)), 0);
    assert_eq!(store.get("k1", "a").unwrap(), None);
    assert_eq!(disk.inner.get("k1", "a").unwrap(), None);
}
