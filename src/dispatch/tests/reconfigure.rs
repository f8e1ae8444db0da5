//! A reload (`Pool::reconfigure`) on the injected clock: the pool grows at
//! once, shrinks by idle workers only, takes a new spare target, and
//! follows accounts added and removed; jobs in flight are never touched.

use super::*;

/// The workers of the pool not stopping, by id.
fn live(h: &Harness) -> Vec<WorkerId> {
    h.pool
        .workers
        .iter()
        .filter(|(_, s)| s.state != WorkerState::Stopping)
        .map(|(id, _)| *id)
        .collect()
}

#[test]
fn a_reload_grows_the_pool_at_once_and_shrinks_it_by_idle_workers() {
    let mut h = Harness::new("[pool]\nsize = 2\n");
    assert_eq!(h.spawned, [1, 2]);
    h.advance(Duration::from_secs(1));
    h.reconfigure("[pool]\nsize = 4\n");
    assert_eq!(h.spawned, [1, 2, 3, 4], "grown at once");
    assert_eq!(
        h.pool.settings.pool.size, 4,
        "the pool reads the new settings"
    );
    h.boot_all();
    // Two jobs hold two workers.
    for _ in 0..2 {
        let job = h.job("s", "");
        h.submit(job).unwrap();
    }
    let busy: Vec<WorkerId> = ["job-1", "job-2"]
        .iter()
        .map(|j| h.worker_of(j).unwrap())
        .collect();
    // Down to one: the two idle workers stop now; of the busy two, one
    // more stops once its job is done, never while it runs.
    h.reconfigure("[pool]\nsize = 1\n");
    let mut stopped = h.stopped.clone();
    stopped.sort();
    let idle: Vec<WorkerId> = (1..=4).filter(|id| !busy.contains(id)).collect();
    assert_eq!(stopped, idle);
    assert!(busy
        .iter()
        .all(|id| matches!(h.state(*id), WorkerState::Busy(_))));
    h.exit_stopped();
    assert_eq!(
        h.spawned.len(),
        4,
        "a worker the pool shrank by is not replaced"
    );
    h.finish(busy[0]);
    assert_eq!(h.stopped, [busy[0]], "stopped once idle");
    assert!(matches!(h.state(busy[1]), WorkerState::Busy(_)));
    h.exit_stopped();
    assert_eq!(live(&h), [busy[1]]);
    h.finish(busy[1]);
    assert!(h.stopped.is_empty(), "the pool is its new size");
    assert_eq!(h.pool.stats.completed, 2);
}

#[test]
fn a_reload_sets_the_blank_spares_the_next_new_prompt_leaves() {
    let mut h = Harness::new("[pool]\nsize = 3\nblank_spares = 0\n");
    let on = |h: &mut Harness, system: &str| {
        let job = h.job(system, "");
        h.submit(job).unwrap();
        let id = h.worker_of(&format!("job-{}", h.next_job)).unwrap();
        h.advance(Duration::from_secs(1));
        h.finish(id);
        id
    };
    let a = on(&mut h, "prompt A");
    on(&mut h, "prompt B");
    // No spare wanted: taking the blank workers replaced nothing.
    assert!(h.stopped.is_empty());
    h.reconfigure("[pool]\nsize = 3\nblank_spares = 1\n");
    // A new prompt takes the last blank worker: the one used least
    // recently (A's) makes way for a blank spare, which boots at once.
    on(&mut h, "prompt C");
    assert_eq!(h.stopped, [a]);
    assert_eq!(h.spawned.len(), 4);
    h.exit_stopped();
    h.boot_all();
    let blank = h
        .pool
        .workers
        .values()
        .filter(|s| s.state == WorkerState::Ready { prompt: None })
        .count();
    assert_eq!(blank, 1);
}

#[test]
fn a_reload_adds_an_account_and_retires_a_removed_ones_workers_once_idle() {
    let one = "[[accounts]]\nname = \"a\"\nworkers = 1\n";
    let mut h = Harness::new(one);
    let job = h.job("s", "");
    h.submit(job).unwrap();
    let on_a = h.worker_of("job-1").unwrap();
    // b is added and a removed while a's worker runs a job.
    h.reconfigure("[[accounts]]\nname = \"b\"\nworkers = 1\n");
    let on_b = *h.spawned.last().unwrap();
    assert_eq!(h.account_of[&on_b], "b");
    assert!(h.stopped.is_empty(), "a's job runs on");
    let names = |h: &mut Harness| -> Vec<String> {
        let health = h.pool.health(h.now, |_| None);
        health.accounts.iter().map(|a| a.name.clone()).collect()
    };
    assert_eq!(names(&mut h), ["b"]);
    h.boot_all();
    // New work goes to b only.
    let next = h.job("s", "");
    h.submit(next).unwrap();
    assert_eq!(h.worker_of("job-2"), Some(on_b));
    // a's worker finishes its job and retires, not replaced.
    h.finish(on_a);
    assert_eq!(h.stopped, [on_a]);
    h.exit_stopped();
    assert_eq!(h.spawned, [on_a, on_b]);
    assert_eq!(live(&h), [on_b]);
    assert_eq!(h.pool.stats.completed, 1);
}
