//! Unit tests of conversations written behind: a stream's end returns
//! before the disk and calls no SQLite on its thread, the next read sees
//! the turn exactly once, a full disk keeps the items readable
//! until they are written, and deletes reach what still waits.

use super::*;
use crate::api::responses::kept::Kept;
use crate::api::{EventEncoder, Frame};
use crate::job::JobEvent;
use crate::store::Store;
use crate::stored::conversations::SqliteConversations;
use crate::stored::{Keeping, Stores};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};

/// Conversations on a disk that can be held (slow) or full, and that
/// notes the thread of every append.
#[derive(Debug)]
struct Disk {
    inner: SqliteConversations,
    held: AtomicBool,
    full: AtomicBool,
    append_threads: Mutex<Vec<String>>,
}

impl ConversationStore for Disk {
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
    fn update(&self, scope: &str, id: &str, m: &Value) -> Result<Option<Conversation>, StoreError> {
        self.inner.update(scope, id, m)
    }
    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete(scope, id)
    }
    fn items(&self, scope: &str, id: &str) -> Result<Option<Vec<Value>>, StoreError> {
        self.inner.items(scope, id)
    }
    fn append(&self, scope: &str, id: &str, items: &[Value]) -> Result<bool, StoreError> {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        self.append_threads.lock().unwrap().push(thread);
        while self.held.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Backlog("database or disk is full".into()));
        }
        self.inner.append(scope, id, items)
    }
    fn delete_item(&self, scope: &str, id: &str, item: &str) -> Result<bool, StoreError> {
        self.inner.delete_item(scope, id, item)
    }
}

/// A disk holding conversation `conv_1` of `k` with one item, and the
/// writer in front of it.
fn disk() -> (Arc<Disk>, Arc<ConversationsBehind>, Arc<StoreHealth>) {
    let disk = Arc::new(Disk {
        inner: SqliteConversations::new(Store::in_memory().unwrap()).unwrap(),
        held: AtomicBool::new(false),
        full: AtomicBool::new(false),
        append_threads: Mutex::default(),
    });
    disk.create("k", "conv_1", &json!({}), &[json!({"id": "msg_0"})])
        .unwrap();
    let health = Arc::new(StoreHealth::default());
    let behind = ConversationsBehind::new(disk.clone(), health.clone(), 200);
    (disk, Arc::new(behind), health)
}

fn ids(items: Option<Vec<Value>>) -> Vec<String> {
    let items = items.expect("the conversation is there");
    let ids = items
        .iter()
        .map(|i| i["id"].as_str().unwrap_or("?").to_string());
    ids.collect()
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("timed out waiting for {what}");
}

/// A finished stream's encoder: it says to add one turn to `conv_1`.
struct Finished(Option<Kept>);

impl EventEncoder for Finished {
    fn encode(&mut self, _: JobEvent) -> Vec<Frame> {
        Vec::new()
    }
    fn keepalive(&mut self) -> Vec<Frame> {
        Vec::new()
    }
    fn take_kept(&mut self) -> Option<Kept> {
        self.0.take()
    }
}

fn turn(n: u32) -> Kept {
    Kept {
        scope: "k".into(),
        response: None,
        conversation: Some((
            "conv_1".into(),
            vec![
                json!({"id": format!("in_{n}")}),
                json!({"id": format!("out_{n}")}),
            ],
        )),
    }
}

#[test]
fn a_streams_end_keeps_its_turn_off_its_thread_and_the_next_read_sees_it_at_once() {
    let (disk, behind, _) = disk();
    disk.held.store(true, Ordering::SeqCst);
    let stores = Stores {
        responses: None,
        conversations: Some(behind.clone()),
    };
    // The stream ends on a thread standing for an actix worker, and ends
    // although the disk holds every write.
    let (ended, stream_end) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("actix-rt|system:0|arbiter:0".into())
        .spawn(move || {
            Keeping::new(Finished(Some(turn(1))), stores).finish();
            ended.send(()).unwrap();
        })
        .unwrap();
    let ended = stream_end.recv_timeout(Duration::from_secs(5));
    assert!(ended.is_ok(), "the stream's end waited for the disk");
    assert_eq!(
        ids(disk.inner.items("k", "conv_1").unwrap()),
        ["msg_0"],
        "not yet on disk"
    );
    // The next turn's read waits at most for the commit under way, and
    // sees the turn once.
    disk.held.store(false, Ordering::SeqCst);
    let seen = ids(behind.items("k", "conv_1").unwrap());
    assert_eq!(seen, ["msg_0", "in_1", "out_1"]);
    assert_eq!(behind.flush(Duration::from_secs(5)), 0);
    assert_eq!(
        ids(disk.items("k", "conv_1").unwrap()),
        seen,
        "on disk once"
    );
    let threads = disk.append_threads.lock().unwrap().clone();
    assert_eq!(
        threads,
        ["conversations-writer"],
        "SQLite ran on the writer only"
    );
}

#[test]
fn reads_racing_the_writer_see_each_turn_exactly_once_and_in_order() {
    let (_disk, behind, _) = disk();
    let reader = {
        let behind = behind.clone();
        std::thread::spawn(move || {
            for _ in 0..300 {
                let seen = ids(behind.items("k", "conv_1").unwrap());
                // Always a prefix of msg_0, in_1, out_1, in_2, out_2, …
                for (i, id) in seen.iter().enumerate().skip(1) {
                    let n = (i - 1) / 2 + 1;
                    let side = if i % 2 == 1 { "in" } else { "out" };
                    assert_eq!(id, &format!("{side}_{n}"), "{seen:?}");
                }
                assert_eq!(seen.len() % 2, 1, "a turn is added whole: {seen:?}");
            }
        })
    };
    for n in 1..=50 {
        let (id, items) = turn(n).conversation.unwrap();
        behind.append_behind("k", &id, items).unwrap();
    }
    reader.join().unwrap();
    assert_eq!(behind.flush(Duration::from_secs(5)), 0);
    assert_eq!(ids(behind.items("k", "conv_1").unwrap()).len(), 101);
}

#[test]
fn on_a_full_disk_the_turn_stays_readable_and_is_written_once_the_disk_takes_it() {
    let (disk, behind, health) = disk();
    disk.full.store(true, Ordering::SeqCst);
    let (id, items) = turn(1).conversation.unwrap();
    behind.append_behind("k", &id, items).unwrap();
    wait_until("the store to fail", || health.report().status == "failing");
    assert_eq!(
        ids(behind.items("k", "conv_1").unwrap()),
        ["msg_0", "in_1", "out_1"]
    );
    // Past the bound (200 bytes) while failing, more is refused, not
    // dropped later.
    let big = vec![json!({"id": "in_2", "text": "x".repeat(300)})];
    behind.append_behind("k", "conv_1", big.clone()).unwrap();
    let refused = behind.append_behind("k", "conv_1", big);
    assert!(
        matches!(refused, Err(StoreError::Backlog(_))),
        "{refused:?}"
    );
    disk.full.store(false, Ordering::SeqCst);
    assert_eq!(behind.flush(Duration::from_secs(10)), 0);
    assert_eq!(health.report().status, "ok");
    let on_disk = ids(disk.items("k", "conv_1").unwrap());
    assert_eq!(on_disk, ["msg_0", "in_1", "out_1", "in_2"]);
}

#[test]
fn deletes_reach_items_still_waiting() {
    let (disk, behind, _) = disk();
    disk.held.store(true, Ordering::SeqCst);
    behind
        .append_behind("k", "conv_1", vec![json!({"id": "a"})])
        .unwrap();
    wait_until("the writer to hold `a`", || {
        !disk.append_threads.lock().unwrap().is_empty()
    });
    let (id, items) = turn(1).conversation.unwrap();
    behind.append_behind("k", &id, items).unwrap();
    let deleting = {
        let behind = behind.clone();
        std::thread::spawn(move || behind.delete_item("k", "conv_1", "in_1").unwrap())
    };
    disk.held.store(false, Ordering::SeqCst);
    assert!(deleting.join().unwrap(), "an item still waiting is deleted");
    assert_eq!(behind.flush(Duration::from_secs(5)), 0);
    assert_eq!(
        ids(disk.items("k", "conv_1").unwrap()),
        ["msg_0", "a", "out_1"]
    );
    disk.held.store(true, Ordering::SeqCst);
    behind
        .append_behind("k", "conv_1", vec![json!({"id": "b"})])
        .unwrap();
    assert!(!behind
        .append("other", "conv_1", &[json!({"id": "c"})])
        .unwrap());
    let deleting = {
        let behind = behind.clone();
        std::thread::spawn(move || behind.delete("k", "conv_1").unwrap())
    };
    disk.held.store(false, Ordering::SeqCst);
    assert!(deleting.join().unwrap());
    assert_eq!(behind.flush(Duration::from_secs(5)), 0);
    assert_eq!(
        behind.items("k", "conv_1").unwrap(),
        None,
        "nothing came back"
    );
}
