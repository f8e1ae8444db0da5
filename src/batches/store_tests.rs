use super::*;
use crate::batches::queue::*;
use crate::store::Store;

fn store() -> Store {
    let store = Store::in_memory().unwrap();
    store.install::<BatchSchema>().unwrap();
    store
}

fn requests(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("req-{i}"), format!("{{\"n\":{i}}}")))
        .collect()
}

fn new_batch(store: &Store, owner: &str, id: &str, n: usize) -> Batch {
    store
        .with(|c| create(c, owner, id, 1_000, 1_000 + 86_400_000, &requests(n)))
        .unwrap()
}

/// Claims the next queued request and marks it running, as the runner does.
fn start_next(store: &Store) -> Claim {
    let claim = store.with(|c| next_queued(c, 1)).unwrap().remove(0);
    assert!(store
        .with(|c| mark_running(c, claim.batch_seq, claim.idx))
        .unwrap());
    claim
}

fn succeed(store: &Store, claim: &Claim, now: i64) -> bool {
    let outcome = Outcome::Succeeded(format!("{{\"type\":\"succeeded\",\"i\":{}}}", claim.idx));
    store
        .with(|c| record(c, claim.batch_seq, claim.idx, &outcome, now))
        .unwrap()
}

fn batch(store: &Store, owner: &str, id: &str) -> Batch {
    store.with(|c| get(c, owner, id)).unwrap().unwrap()
}

#[test]
fn a_batch_ends_when_its_last_request_is_recorded() {
    let store = store();
    let created = new_batch(&store, "k", "msgbatch_a", 2);
    assert_eq!(created.counts.processing(), 2);
    assert_eq!(created.ended_at, None);
    let first = start_next(&store);
    assert_eq!((first.idx, first.custom_id.as_str()), (0, "req-0"));
    assert_eq!(first.params, "{\"n\":0}");
    // Whose it is, for the runner to run it as that key.
    assert_eq!(
        (first.owner.as_str(), first.batch_id.as_str()),
        ("k", "msgbatch_a")
    );
    assert!(succeed(&store, &first, 2_000));
    assert!(!succeed(&store, &first, 2_000), "recorded exactly once");
    let second = start_next(&store);
    let errored = Outcome::Errored("{\"type\":\"errored\"}".into());
    assert!(store
        .with(|c| record(c, second.batch_seq, second.idx, &errored, 3_000))
        .unwrap());
    let done = batch(&store, "k", "msgbatch_a");
    assert_eq!(done.ended_at, Some(3_000));
    assert_eq!((done.counts.succeeded, done.counts.errored), (1, 1));
    assert!(store.with(|c| next_queued(c, 10)).unwrap().is_empty());
    let rows = store.with(|c| results(c, done.seq, -1, 10)).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].state, "succeeded");
    assert_eq!(
        rows[0].result.as_deref(),
        Some("{\"type\":\"succeeded\",\"i\":0}")
    );
    assert_eq!(rows[1].state, "errored");
}

#[test]
fn batches_are_visible_only_to_their_owner() {
    let store = store();
    new_batch(&store, "alice", "msgbatch_a", 1);
    assert!(store
        .with(|c| get(c, "bob", "msgbatch_a"))
        .unwrap()
        .is_none());
    assert!(store
        .with(|c| cancel(c, "bob", "msgbatch_a", 5))
        .unwrap()
        .is_none());
    assert_eq!(
        store.with(|c| delete(c, "bob", "msgbatch_a")).unwrap(),
        Deleted::NotFound
    );
    let (page, _) = store
        .with(|c| list(c, "bob", Cursor::Start, 10))
        .unwrap()
        .unwrap();
    assert!(page.is_empty());
}

#[test]
fn lists_run_newest_first_and_page_both_ways() {
    let store = store();
    for i in 0..5 {
        new_batch(&store, "k", &format!("b{i}"), 1);
    }
    new_batch(&store, "other", "x", 1);
    let ids = |page: &[Batch]| page.iter().map(|b| b.id.clone()).collect::<Vec<_>>();
    let page = |cursor| store.with(|c| list(c, "k", cursor, 2)).unwrap().unwrap();
    let (first, more) = page(Cursor::Start);
    assert_eq!((ids(&first), more), (vec!["b4".into(), "b3".into()], true));
    let (second, more) = page(Cursor::After("b3"));
    assert_eq!((ids(&second), more), (vec!["b2".into(), "b1".into()], true));
    let (last, more) = page(Cursor::After("b1"));
    assert_eq!((ids(&last), more), (vec!["b0".into()], false));
    let (back, more) = page(Cursor::Before("b1"));
    assert_eq!((ids(&back), more), (vec!["b3".into(), "b2".into()], true));
    let (top, more) = page(Cursor::Before("b3"));
    assert_eq!((ids(&top), more), (vec!["b4".into()], false));
    assert!(store
        .with(|c| list(c, "k", Cursor::After("x"), 2))
        .unwrap()
        .is_none());
}

#[test]
fn cancel_finishes_queued_requests_and_running_ones_may_finish() {
    let store = store();
    new_batch(&store, "k", "b", 3);
    let running = start_next(&store);
    let canceling = store.with(|c| cancel(c, "k", "b", 10)).unwrap().unwrap();
    assert_eq!(canceling.cancel_initiated_at, Some(10));
    assert_eq!(canceling.counts.canceled, 2);
    assert_eq!(canceling.ended_at, None, "one request still runs");
    assert_eq!(
        store.with(|c| delete(c, "k", "b")).unwrap(),
        Deleted::NotEnded
    );
    assert!(store.with(|c| next_queued(c, 10)).unwrap().is_empty());
    assert!(succeed(&store, &running, 20));
    let ended = batch(&store, "k", "b");
    assert_eq!(ended.ended_at, Some(20));
    assert_eq!((ended.counts.succeeded, ended.counts.canceled), (1, 2));
    // A second cancel changes nothing.
    let again = store.with(|c| cancel(c, "k", "b", 30)).unwrap().unwrap();
    assert_eq!(again, ended);
    assert_eq!(store.with(|c| delete(c, "k", "b")).unwrap(), Deleted::Done);
    assert!(store.with(|c| get(c, "k", "b")).unwrap().is_none());
    let left: i64 = store
        .with(|c| c.query_row("SELECT count(*) FROM batch_requests", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(left, 0, "requests go with their batch");
}

#[test]
fn a_request_canceled_while_being_handed_out_is_not_recorded() {
    let store = store();
    new_batch(&store, "k", "b", 1);
    let claim = store.with(|c| next_queued(c, 1)).unwrap().remove(0);
    store.with(|c| cancel(c, "k", "b", 10)).unwrap();
    assert!(!store
        .with(|c| mark_running(c, claim.batch_seq, claim.idx))
        .unwrap());
    assert!(!succeed(&store, &claim, 11));
    assert_eq!(batch(&store, "k", "b").counts.canceled, 1);
}

#[test]
fn queued_requests_expire_at_expires_at() {
    let store = store();
    store
        .with(|c| create(c, "k", "b", 0, 100, &requests(3)))
        .unwrap();
    let running = start_next(&store);
    assert_eq!(store.with(|c| expire_due(c, 99)).unwrap(), 0);
    assert_eq!(store.with(|c| expire_due(c, 100)).unwrap(), 2);
    assert_eq!(batch(&store, "k", "b").ended_at, None);
    assert!(succeed(&store, &running, 120));
    let ended = batch(&store, "k", "b");
    assert_eq!((ended.counts.expired, ended.ended_at), (2, Some(120)));
}

#[test]
fn interrupted_requests_run_once_more_then_error() {
    let store = store();
    new_batch(&store, "k", "b", 2);
    let first = start_next(&store);
    start_next(&store);
    // A crash: both were running.
    let (queued, errored) = store.with(|c| recover(c, "{\"e\":1}", 50)).unwrap();
    assert_eq!((queued, errored), (2, 0));
    let again = start_next(&store);
    assert_eq!(again.idx, first.idx, "queued again, in order");
    // A second crash while it runs again: no third start.
    let (queued, errored) = store.with(|c| recover(c, "{\"e\":1}", 60)).unwrap();
    assert_eq!((queued, errored), (0, 1));
    let b = batch(&store, "k", "b");
    assert_eq!(b.counts.errored, 1);
    let rows = store.with(|c| results(c, b.seq, -1, 10)).unwrap();
    assert_eq!(rows[0].result.as_deref(), Some("{\"e\":1}"));
    // A request requeued by a shutdown keeps its attempts.
    let second = start_next(&store);
    assert!(store
        .with(|c| requeue(c, second.batch_seq, second.idx))
        .unwrap());
    let (queued, errored) = store.with(|c| recover(c, "{}", 70)).unwrap();
    assert_eq!((queued, errored), (0, 0));
}

#[test]
fn results_are_archived_after_retention_but_the_batch_stays() {
    let store = store();
    new_batch(&store, "k", "old", 1);
    new_batch(&store, "k", "running", 1);
    let claim = start_next(&store);
    assert!(succeed(&store, &claim, 1_000));
    assert_eq!(
        store
            .with(|c| archive_ended_before(c, 1_000, 5_000))
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .with(|c| archive_ended_before(c, 1_001, 5_000))
            .unwrap(),
        1
    );
    let old = batch(&store, "k", "old");
    assert_eq!(old.archived_at, Some(5_000));
    assert_eq!(old.counts.succeeded, 1, "counts outlive the results");
    assert!(store
        .with(|c| results(c, old.seq, -1, 10))
        .unwrap()
        .is_empty());
    let running = batch(&store, "k", "running");
    assert_eq!(running.archived_at, None);
    assert_eq!(
        store
            .with(|c| results(c, running.seq, -1, 10))
            .unwrap()
            .len(),
        1
    );
}
