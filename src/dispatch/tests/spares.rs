//! The blank-spare refill (`blank`, `spares`) on the injected clock:
//! restored whatever took the spare, from the right worker, never in a loop.

use super::*;
use crate::config::PoolSettings;

/// The default `pool.spare_refill_idle_secs`.
const COLD: Duration = Duration::from_secs(10);

/// Two jobs of `system` at once on a pool of two: the second takes the
/// blank worker although the prompt is held (by the busy first one). Both
/// finish; returns the workers, first one first.
fn two_at_once(h: &mut Harness, system: &str) -> (WorkerId, WorkerId) {
    let first = h.job(system, "");
    h.submit(first).unwrap();
    let second = h.job(system, "");
    h.submit(second).unwrap();
    let (a, b) = (h.worker_of("job-1").unwrap(), h.worker_of("job-2").unwrap());
    h.finish(a);
    h.advance(Duration::from_millis(100));
    h.finish(b);
    (a, b)
}

#[test]
fn a_spare_a_repeated_prompt_took_is_restored_from_the_worker_left_idle() {
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 1\n");
    let (first, _) = two_at_once(&mut h, "s");
    assert!(h.stopped.is_empty(), "the jobs at hand keep their workers");
    h.advance(COLD / 2);
    h.tick();
    assert!(h.stopped.is_empty(), "not idle long enough yet");
    h.advance(COLD / 2);
    h.tick();
    assert_eq!(h.stopped, [first], "the least recently used idle worker");
    assert_eq!(h.spawned.len(), 3, "its blank replacement boots at once");
    let health = h.pool.health(h.now, |_| None);
    assert_eq!((health.spares.target, health.spares.blank), (1, 1));
    assert!(!health.spares.auto);
}

#[test]
fn the_refill_never_retires_a_worker_running_a_job_or_holding_a_parked_turn() {
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 1\n");
    let first = h.job("s", "k");
    h.submit(first).unwrap();
    let second = h.job("s", "k");
    h.submit(second).unwrap();
    let parked = WorkerState::Parked {
        holder: Holder {
            prompt: "s".into(),
            scope: "k".into(),
            background: false,
        },
        tool_use_ids: vec!["toolu_1".into()],
    };
    h.report(2, parked, Some(Outcome::Succeeded));
    h.advance(COLD * 3);
    h.tick();
    assert!(h.stopped.is_empty(), "{:?}", h.pool.workers);
}

#[test]
fn a_pool_whose_only_usable_worker_holds_a_prompt_keeps_no_spare() {
    let toml = "[pool]\nblank_spares = 1\n[[accounts]]\nname = \"a\"\nworkers = 1\n[[accounts]]\nname = \"b\"\nworkers = 1\n";
    let mut h = Harness::new(toml);
    let job = h.job("s", "");
    h.submit(job).unwrap();
    let first = h.worker_of("job-1").unwrap();
    let (_, job) = h.running.pop().unwrap();
    // The first account is limited for ten minutes: the job moves on.
    h.hand_back_limited(first, None, Duration::from_secs(600), job);
    let second = h.worker_of("job-1").unwrap();
    h.finish(second);
    // Every job after it runs on the one usable worker, never waiting for
    // a boot: its prompt is not given up to make a spare.
    for _ in 0..5 {
        h.advance(COLD * 2);
        h.tick();
        let next = h.job("s", "");
        h.submit(next).unwrap();
        let id = format!("job-{}", h.next_job);
        assert_eq!(h.worker_of(&id), Some(second));
        h.finish(second);
    }
    assert!(h.stopped.is_empty(), "{:?}", h.pool.workers);
    assert_eq!(h.pool.stats.waited_for_boot, 0);
    assert_eq!(h.pool.health(h.now, |_| None).spares.target, 0);
}

#[test]
fn accounts_taking_turns_on_one_prompt_do_not_boot_for_every_job() {
    // Two accounts of one worker each take turns (least recently used
    // account first), one job of the same prompt at a time, each after the
    // other worker sat idle past `COLD`. Each job on the other account
    // takes what looks like the spare; retiring the worker just left for
    // it would make the next job boot, and so on for ever.
    let toml = "[pool]\nblank_spares = 1\n[[accounts]]\nname = \"a\"\nworkers = 1\n[[accounts]]\nname = \"b\"\nworkers = 1\n";
    let mut h = Harness::new(toml);
    for _ in 0..10 {
        h.advance(COLD * 2);
        h.tick();
        h.exit_stopped();
        h.boot_all();
        let job = h.job("s", "");
        h.submit(job).unwrap();
        let id = format!("job-{}", h.next_job);
        let worker = h.worker_of(&id).expect("a worker is ready");
        h.finish(worker);
    }
    let accounts = h.pool.health(h.now, |_| None).accounts;
    assert!(accounts.iter().all(|a| a.jobs >= 4), "{accounts:?}");
    // One refill, whose prompt came back at once: refills hold back.
    assert!(h.spawned.len() <= 3, "spawned {:?}", h.spawned);
    assert!(h.pool.health(h.now, |_| None).spares.held_back);
    assert_eq!(h.pool.stats.waited_for_boot, 0);
}

#[test]
fn two_prompts_taking_turns_with_too_many_spares_stop_retiring_each_other() {
    // Pool of 3 keeping 2 spares: one worker for two prompts in turn.
    // Before, every request retired the other prompt's worker and booted.
    let mut h = Harness::new("[pool]\nsize = 3\nblank_spares = 2\n");
    for i in 0..12 {
        h.advance(Duration::from_millis(500));
        h.tick();
        h.exit_stopped();
        h.boot_all();
        let job = h.job(&format!("prompt {}", i % 2), "");
        h.submit(job).unwrap();
        let id = format!("job-{}", h.next_job);
        let worker = h.worker_of(&id).expect("a worker is ready");
        h.finish(worker);
    }
    assert!(h.spawned.len() <= 4, "spawned {:?}", h.spawned);
}

#[test]
fn a_new_prompt_refills_from_an_idle_worker_at_once_even_after_a_regret() {
    let mut h = Harness::new("[pool]\nsize = 3\nblank_spares = 2\n");
    for system in ["p0", "p1", "p0"] {
        h.advance(Duration::from_millis(500));
        h.exit_stopped();
        h.boot_all();
        let job = h.job(system, "");
        h.submit(job).unwrap();
        let id = format!("job-{}", h.next_job);
        let worker = h.worker_of(&id).unwrap();
        h.finish(worker);
    }
    assert!(h.pool.spares.held_back, "p0 came back to a blank worker");
    let stops = h.stopped.len();
    h.advance(Duration::from_millis(500));
    let job = h.job("p2", "");
    h.submit(job).unwrap();
    assert!(!h.pool.spares.held_back);
    assert_eq!(h.stopped.len(), stops + 2, "both spares made at once");
}

#[test]
fn auto_keeps_no_spare_while_prompts_repeat_and_reports_it() {
    let mut h = Harness::new("[pool]\nsize = 3\nblank_spares = \"auto\"\n");
    let health = h.pool.health(h.now, |_| None);
    assert!(health.spares.auto);
    assert_eq!(health.spares.target, 1, "one to start with");
    // One prompt, three callers at once, again and again: prompts repeat.
    for _ in 0..20 {
        h.advance(Duration::from_secs(3));
        h.tick();
        h.exit_stopped();
        h.boot_all();
        for _ in 0..3 {
            let job = h.job("s", "");
            h.submit(job).unwrap();
        }
        for (id, _) in std::mem::take(&mut h.running) {
            h.finish(id);
        }
    }
    let health = h.pool.health(h.now, |_| None);
    assert_eq!(health.spares.target, 0, "{:?}", health.spares);
    assert_eq!(h.queued(), 0);
    // All three workers hold the prompt: nothing boots any more.
    let spawned = h.spawned.len();
    for _ in 0..3 {
        h.advance(COLD);
        h.tick();
    }
    assert_eq!(h.spawned.len(), spawned);
}

#[test]
fn auto_raises_the_target_when_jobs_wait_for_boots() {
    let mut h = Harness::new("[pool]\nsize = 4\nblank_spares = \"auto\"\nmax_queue = 8\n");
    // New prompts faster than workers boot (none boots here until the
    // end): once the blank workers are used up, the last ones wait.
    for system in ["p0", "p1", "p2", "p3", "p4", "p5"] {
        h.advance(Duration::from_millis(200));
        let job = h.job(system, "");
        h.submit(job).unwrap();
        for (id, _) in std::mem::take(&mut h.running) {
            h.finish(id);
        }
    }
    h.advance(Duration::from_millis(900));
    h.exit_stopped();
    h.boot_all();
    assert!(h.pool.stats.waited_for_boot > 0);
    let health = h.pool.health(h.now, |_| None);
    assert!(health.spares.target >= 2, "{:?}", health.spares);
    assert!(health.spares.target <= 3, "at most size - 1");
}

#[test]
fn the_idle_time_before_a_repeated_prompts_spare_is_restored_is_a_reloadable_setting() {
    assert_eq!(PoolSettings::default().spare_refill_idle(), COLD);
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 1\nspare_refill_idle_secs = 2\n");
    let (first, _) = two_at_once(&mut h, "s");
    h.advance(Duration::from_secs(2));
    h.tick();
    assert_eq!(h.stopped, [first], "idle for the 2 s set");

    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 1\n");
    let (first, _) = two_at_once(&mut h, "s");
    h.reconfigure("[pool]\nsize = 2\nblank_spares = 1\nspare_refill_idle_secs = 60\n");
    h.advance(COLD * 2);
    h.tick();
    assert!(h.stopped.is_empty(), "the reloaded 60 s hold it back");
    h.advance(Duration::from_secs(60));
    h.tick();
    assert_eq!(h.stopped, [first]);
}

#[test]
fn auto_measures_new_prompts_at_their_arrival_not_when_a_worker_was_found() {
    let mut h = Harness::new("[pool]\nsize = 8\nblank_spares = \"auto\"\nmax_queue = 8\n");
    for _ in 0..8 {
        let job = h.job("s", "");
        h.submit(job).unwrap();
    }
    // Three new prompts arrive 10 ms apart while every worker is busy.
    for system in ["p0", "p1", "p2"] {
        h.advance(Duration::from_millis(10));
        let job = h.job(system, "");
        h.submit(job).unwrap();
    }
    assert_eq!(h.queued(), 3);
    // A worker frees up and is replaced for the next one, which boots
    // in a second.
    for _ in 0..3 {
        let (id, _) = h.running.remove(0);
        h.finish(id);
        h.exit_stopped();
        h.advance(Duration::from_secs(1));
        h.boot_all();
    }
    assert_eq!(h.queued(), 0);
    // Four new prompts ("s" first) within 30 ms: demand beyond the pool,
    // so size - 1. Counted when workers were found for them, a second
    // apart, one a boot, they called for fewer (3).
    let health = h.pool.health(h.now, |_| None);
    assert_eq!(health.spares.target, 7, "{:?}", health.spares);
}

#[test]
fn a_spare_a_batch_job_took_is_restored_in_the_same_step() {
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 1\n");
    let job = h.job("s", "");
    h.submit(job).unwrap();
    let warm = h.worker_of("job-1").unwrap();
    h.finish(warm);
    h.advance(COLD * 2);
    h.tick();
    assert!(h.stopped.is_empty(), "the other worker is the spare");
    let mut job = h.job("b", "");
    job.spec.background = true;
    assert!(h.run_if_idle(job));
    assert_ne!(h.worker_of("job-2"), Some(warm), "on the blank worker");
    // No tick: the cold worker is retired for a blank one at once.
    assert_eq!(h.stopped, [warm]);
    assert_eq!(h.spawned.len(), 3);
}

/// A pool of agent workers (agent mode), every worker booted.
fn agent_pool(toml: &str) -> Harness {
    let mut h = Harness::new(toml);
    let settings = h.pool.settings.clone();
    h.pool = Pool::new(settings, WorkerKind::Agent, h.now, SystemTime::now());
    h.spawned.clear();
    h.account_of.clear();
    let effects = h.pool.start(h.now);
    h.apply(effects);
    h.boot_all();
    h
}

/// An agent job with `system` from key `scope`.
fn agent_job(h: &mut Harness, system: &str, scope: &str) -> Job {
    let mut job = h.job(system, scope);
    job.spec.agent = true;
    job
}

#[test]
fn an_agent_spare_another_keys_job_took_is_restored_at_once_from_an_idle_worker_never_a_busy_one() {
    let mut h = agent_pool("[pool]\nsize = 3\nblank_spares = 1\n");
    assert_eq!(h.spawned.len(), 3);
    // Three keys, one prompt: each key's job takes a worker of its own
    // (an agent worker serves only its first key), the last one the spare.
    for key in ["k1", "k2", "k3"] {
        let job = agent_job(&mut h, "s", key);
        h.submit(job).unwrap();
    }
    let workers: Vec<WorkerId> = (1..=3)
        .map(|n| h.worker_of(&format!("job-{n}")).unwrap())
        .collect();
    assert!(workers[0] != workers[1] && workers[1] != workers[2] && workers[0] != workers[2]);
    // The workers running k2's and k3's jobs are never retired for it.
    h.advance(COLD * 3);
    h.tick();
    assert!(h.stopped.is_empty(), "{:?}", h.pool.workers);
    // The prompt k1's worker holds was no use to k2 or k3: new to them, so
    // the spare is due, and the worker k1 leaves makes it at once.
    h.finish(workers[0]);
    assert_eq!(h.stopped, [workers[0]]);
    h.exit_stopped();
    h.boot_all();
    let spare = *h.spawned.last().unwrap();
    assert_eq!(h.spawned.len(), 4);
    assert_eq!(h.pool.workers[&spare].kind, WorkerKind::Agent);
    assert_eq!(
        h.pool.workers[&spare].tenant, None,
        "a blank spare serves any key"
    );
    // A fourth key's job takes it at once, no boot.
    let job = agent_job(&mut h, "s", "k4");
    h.submit(job).unwrap();
    assert_eq!(h.worker_of("job-4"), Some(spare));
    assert_eq!(h.pool.stats.waited_for_boot, 0);
}

#[test]
fn an_agent_spare_the_same_keys_second_job_took_is_restored_once_a_worker_sat_idle() {
    let mut h = agent_pool("[pool]\nsize = 2\nblank_spares = 1\n");
    for _ in 0..2 {
        let job = agent_job(&mut h, "s", "k1");
        h.submit(job).unwrap();
    }
    let (first, second) = (h.worker_of("job-1").unwrap(), h.worker_of("job-2").unwrap());
    assert_ne!(first, second);
    h.finish(first);
    h.advance(Duration::from_millis(100));
    h.finish(second);
    // A repeat (k1's own worker held the prompt): its jobs keep their
    // workers until one has sat idle.
    assert!(h.stopped.is_empty());
    h.advance(COLD / 2);
    h.tick();
    assert!(h.stopped.is_empty(), "not idle long enough yet");
    h.advance(COLD / 2);
    h.tick();
    assert_eq!(h.stopped, [first], "the least recently used");
}

#[test]
fn an_agent_job_of_a_new_prompt_makes_its_spare_due_at_once() {
    let mut h = agent_pool("[pool]\nsize = 3\nblank_spares = 1\n");
    let job = agent_job(&mut h, "s", "k1");
    h.submit(job).unwrap();
    let first = h.worker_of("job-1").unwrap();
    h.finish(first);
    // k2's job of another prompt takes a blank worker; k3's of a third
    // takes the spare, and the idle worker k1 left is retired at once for
    // a blank one (not only after it sat idle).
    for (system, key) in [("t", "k2"), ("u", "k3")] {
        let job = agent_job(&mut h, system, key);
        h.submit(job).unwrap();
    }
    assert_eq!(h.stopped, [first]);
    assert_eq!(h.spawned.len(), 4);
}
