//! One test per decision the pool makes, on the injected clock.

use super::*;
use crate::affinity::ConversationKey;
use crate::job::ToolResult;
use crate::prompt::{Role, Turn};
use serde_json::json;

fn turn(role: Role, text: &str) -> Turn {
    Turn {
        role,
        blocks: vec![json!({"type": "text", "text": text})],
    }
}

#[test]
fn admission_queues_up_to_max_queue_then_refuses() {
    let mut h = Harness::new("[pool]\nsize = 1\nmax_queue = 1\n");
    let first = h.job("s", "");
    assert!(h.submit(first).is_ok());
    assert_eq!(h.worker_of("job-1"), Some(1));
    let second = h.job("s", "");
    assert!(h.submit(second).is_ok(), "one may wait");
    assert_eq!(h.queued(), 1);
    let third = h.job("s", "");
    assert!(matches!(
        h.submit(third),
        Err(JobError::QueueFull { queued: 1, .. })
    ));
    assert_eq!(h.pool.stats.rejected, 1);
    // The worker comes free: the waiting job runs on it.
    h.finish(1);
    assert_eq!(h.worker_of("job-2"), Some(1));
    assert_eq!(h.queued(), 0);
}

#[test]
fn a_job_goes_to_a_worker_holding_its_prompt_before_a_blank_one() {
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 0\n");
    let a = h.job("prompt A", "");
    h.submit(a).unwrap();
    let first = h.worker_of("job-1").unwrap();
    h.finish(first);
    let again = h.job("prompt A", "");
    h.submit(again).unwrap();
    assert_eq!(h.worker_of("job-2"), Some(first), "the set-up worker");
    let b = h.job("prompt B", "");
    h.submit(b).unwrap();
    assert_ne!(h.worker_of("job-3"), Some(first));
    assert_eq!(
        *h.state(h.worker_of("job-3").unwrap()),
        busy("prompt B", "")
    );
}

#[test]
fn a_conversations_next_turn_goes_to_the_worker_bound_to_it() {
    // No spare kept: the other caller's conversation takes the blank worker.
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 0\n");
    let turns = [
        turn(Role::User, "hi"),
        turn(Role::Assistant, "hello"),
        turn(Role::User, "more"),
    ];
    let next = ConversationKey::new("s", "claude-test", None, &turns).unwrap();
    let first = h.job("s", "k");
    h.submit(first).unwrap();
    let id = h.worker_of("job-1").unwrap();
    h.finish_bound(id, next.lookup);
    // Another caller's job with the same history does not get it.
    let mut other = h.job("s", "other key");
    other.spec.conversation = ConversationKey::new("s", "claude-test", None, &turns);
    h.submit(other).unwrap();
    assert_ne!(h.worker_of("job-2"), Some(id));
    let mut continuing = h.job("s", "k");
    continuing.spec.conversation = Some(next);
    h.submit(continuing).unwrap();
    assert_eq!(h.worker_of("job-3"), Some(id));
}

#[test]
fn a_new_prompt_on_the_blank_worker_makes_another_blank_spare() {
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 1\n");
    let a = h.job("prompt A", "");
    h.submit(a).unwrap();
    let on_a = h.worker_of("job-1").unwrap();
    h.finish(on_a);
    // B is new: it takes the other (blank) worker, and the idle worker
    // holding A is replaced by a blank one in the background.
    let b = h.job("prompt B", "");
    h.submit(b).unwrap();
    assert_ne!(h.worker_of("job-2"), Some(on_a));
    assert_eq!(h.stopped, [on_a], "A's worker makes way for a blank spare");
    assert_eq!(h.spawned.len(), 3, "its replacement boots at once");
    h.exit_stopped();
    h.boot_all();
    let blank = *h.spawned.last().unwrap();
    assert_eq!(*h.state(blank), WorkerState::Ready { prompt: None });
    // The next new prompt does not wait for a boot.
    let c = h.job("prompt C", "");
    h.submit(c).unwrap();
    assert_eq!(h.worker_of("job-3"), Some(blank));
    assert_eq!(h.pool.stats.waited_for_boot, 0);
}

#[test]
fn a_rate_limited_account_hands_its_job_to_the_other() {
    let toml = "[[accounts]]\nname = \"a\"\nworkers = 1\n[[accounts]]\nname = \"b\"\nworkers = 1\n";
    let mut h = Harness::new(toml);
    let job = h.job("s", "");
    h.submit(job).unwrap();
    let first = h.worker_of("job-1").unwrap();
    let (_, job) = h.running.pop().unwrap();
    // The worker met a 429 before any output: it hands the job back.
    h.hand_back_limited(first, Some("s"), Duration::from_secs(60), job);
    let second = h.worker_of("job-1").unwrap();
    assert_ne!(second, first, "runs again on the other account");
    let health = h.pool.health(h.now, |_| None);
    let limited: Vec<_> = health.accounts.iter().map(|a| a.status).collect();
    assert!(limited.contains(&"limited"), "{limited:?}");
    // While limited, new work goes to the other account only; once its
    // limit ended, to both again.
    h.finish(second);
    let next = h.job("s", "");
    h.submit(next).unwrap();
    assert_eq!(h.worker_of("job-2"), Some(second));
    h.advance(Duration::from_secs(61));
    let another = h.job("s", "");
    h.submit(another).unwrap();
    assert_eq!(h.worker_of("job-3"), Some(first));
}

#[test]
fn failures_within_the_window_are_a_crash_loop_that_refuses_jobs() {
    let toml = "[pool]\nsize = 1\ncrash_loop_failures = 2\ncrash_loop_window_secs = 60\nrestart_backoff_ms = 100\n";
    let mut h = Harness::new(toml);
    let crash = |h: &mut Harness, id| {
        let why = ExitReason::Crashed("boom".into());
        h.report(id, WorkerState::Exited(why), None);
    };
    crash(&mut h, 1);
    assert_eq!(h.spawned, [1], "respawned only after the backoff");
    h.advance(Duration::from_millis(100));
    h.tick();
    assert_eq!(h.spawned, [1, 2]);
    let job = h.job("s", "");
    assert!(h.submit(job).is_ok(), "one failure is no loop");
    assert_eq!(h.queued(), 1);
    crash(&mut h, 2);
    // Two failures, no worker serving: degraded; the waiting job is failed.
    assert!(matches!(h.failed[..], [(_, JobError::Unavailable(_))]));
    let refused = h.job("s", "");
    assert!(matches!(h.submit(refused), Err(JobError::Unavailable(_))));
    // Time passes beyond the window: the pool admits again.
    h.advance(Duration::from_secs(61));
    h.tick();
    let later = h.job("s", "");
    assert!(h.submit(later).is_ok());
}

#[test]
fn a_queued_job_times_out_on_the_clock() {
    let mut h = Harness::new("[pool]\nsize = 1\nqueue_timeout_secs = 10\n");
    let first = h.job("s", "");
    h.submit(first).unwrap();
    let second = h.job("s", "");
    h.submit(second).unwrap();
    h.advance(Duration::from_secs(10));
    h.tick();
    assert!(h.failed.is_empty(), "not yet");
    h.advance(Duration::from_millis(1));
    h.tick();
    assert!(matches!(
        &h.failed[..],
        [(id, JobError::QueueTimeout { .. })] if id == "job-2"
    ));
    assert_eq!(h.queued(), 0);
}

#[test]
fn batch_jobs_leave_a_worker_for_interactive_requests() {
    let mut h = Harness::new("[pool]\nsize = 2\n");
    let batch = |h: &mut Harness| {
        let mut job = h.job("s", "");
        job.spec.background = true;
        h.run_if_idle(job)
    };
    assert!(batch(&mut h), "the first batch job takes an idle worker");
    assert!(
        !batch(&mut h),
        "the last worker is kept for interactive work"
    );
    let interactive = h.job("s", "");
    h.submit(interactive).unwrap();
    assert!(h.worker_of(&format!("job-{}", h.next_job)).is_some());
}

#[test]
fn a_lone_callers_job_goes_before_another_callers_burst() {
    let mut h = Harness::new("[pool]\nsize = 2\nmax_queue = 10\n");
    for _ in 0..4 {
        let job = h.job("s", "busy key");
        h.submit(job).unwrap();
    }
    let lone = h.job("s", "lone key");
    h.submit(lone).unwrap();
    let first = h.worker_of("job-1").unwrap();
    h.finish(first);
    assert_eq!(h.worker_of("job-5"), Some(first), "the lone key goes first");
    h.finish(first);
    assert_eq!(
        h.worker_of("job-3"),
        Some(first),
        "then the burst, in order"
    );
}

#[test]
fn a_parked_turn_is_resumed_by_its_results_and_released_for_a_waiting_job() {
    let mut h = Harness::new("[pool]\nsize = 1\n");
    let first = h.job("s", "k");
    h.submit(first).unwrap();
    let parked = WorkerState::Parked {
        holder: Holder {
            prompt: "s".into(),
            scope: "k".into(),
            background: false,
        },
        tool_use_ids: vec!["toolu_1".into()],
    };
    h.report(1, parked.clone(), Some(Outcome::Succeeded));
    let mut results = h.job("s", "k");
    results.spec.tool_results = vec![ToolResult {
        tool_use_id: "toolu_1".into(),
        content: Vec::new(),
        is_error: false,
    }];
    h.submit(results).unwrap();
    assert_eq!(h.worker_of("job-2"), Some(1), "the results resume it");
    h.report(1, parked, Some(Outcome::Succeeded));
    // Another job waits and nothing else can be freed: the park goes.
    let other = h.job("s", "k2");
    h.submit(other).unwrap();
    assert_eq!(h.cleared, [1]);
    assert!(matches!(h.state(1), WorkerState::Clearing { .. }));
}

#[test]
fn a_new_conversation_clears_a_bound_worker_of_its_prompt_and_leaves_the_spare() {
    // Issue 27: project A's second conversation while the first's worker is
    // bound, then project B (a new prompt). Before, A's second conversation
    // took the blank spare, none was made again (A was held), and B waited
    // for a boot.
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 1\n");
    let first = h.job("project A", "");
    h.submit(first).unwrap();
    let on_a = h.worker_of("job-1").unwrap();
    h.finish_bound(on_a, 1);
    let second = h.job("project A", "");
    h.submit(second).unwrap();
    assert_eq!(
        h.worker_of("job-2"),
        None,
        "waits for a /clear, not the spare"
    );
    assert_eq!(h.cleared, [on_a]);
    h.report(
        on_a,
        WorkerState::Ready {
            prompt: Some("project A".into()),
        },
        None,
    );
    assert_eq!(h.worker_of("job-2"), Some(on_a));
    let b = h.job("project B", "");
    h.submit(b).unwrap();
    let on_b = h.worker_of("job-3").expect("the spare, ready");
    assert_ne!(on_b, on_a);
    assert_eq!(h.pool.stats.waited_for_boot, 0);
}

#[test]
fn a_queued_job_whose_client_left_never_runs() {
    let mut h = Harness::new("[pool]\nsize = 1\nmax_queue = 4\n");
    for _ in 0..3 {
        let job = h.job("s", "");
        h.submit(job).unwrap();
    }
    assert_eq!(h.queued(), 2);
    h.client_leaves("job-2");
    assert_eq!(h.queued(), 1);
    assert_eq!(h.pool.stats.abandoned, 1);
    // The worker comes free: the job whose client still waits takes it.
    h.finish(1);
    assert_eq!(h.worker_of("job-3"), Some(1));
    assert_eq!(h.worker_of("job-2"), None);
    // A client leaving whose job is not queued changes nothing.
    h.client_leaves("job-3");
    assert_eq!(h.pool.stats.abandoned, 1);
}

#[test]
fn a_run_effect_says_where_the_job_runs_and_how_long_it_waited() {
    let toml = "[[accounts]]\nname = \"a\"\nworkers = 1\n";
    let mut h = Harness::new(toml);
    let first = h.job("s", "");
    h.submit(first).unwrap();
    let second = h.job("s", "");
    h.submit(second).unwrap();
    h.advance(Duration::from_millis(1500));
    h.finish(1);
    let placed = |h: &Harness, id: &str| {
        h.placements
            .iter()
            .find(|(job, _)| job == id)
            .map(|(_, p)| p.clone())
    };
    let expected = |queued| Placement {
        worker: 1,
        account: "a".into(),
        queued,
    };
    assert_eq!(placed(&h, "job-1"), Some(expected(Duration::ZERO)));
    assert_eq!(
        placed(&h, "job-2"),
        Some(expected(Duration::from_millis(1500)))
    );
    // The pool wrote nothing into the jobs: the actor notes the placement
    // when it sends the job.
    assert!(h.running.iter().all(|(_, job)| job.placed.get().is_none()));
}

#[test]
fn a_new_conversation_waits_for_the_bound_worker_being_cleared_not_the_spare() {
    // Issue 27's project A -> A when the `/clear` is slow (a loaded host): a
    // dispatch round while A's worker clears for the second conversation
    // (a tick, any report) must not hand that job the blank spare, which
    // the next new prompt would then wait a boot for.
    let mut h = Harness::new("[pool]\nsize = 2\nblank_spares = 1\n");
    let first = h.job("project A", "k");
    h.submit(first).unwrap();
    let a = h.worker_of("job-1").unwrap();
    h.finish_bound(a, 7);
    let second = h.job("project A", "k");
    h.submit(second).unwrap();
    assert_eq!(h.queued(), 1);
    assert!(matches!(h.state(a), WorkerState::Clearing { .. }));
    h.advance(Duration::from_millis(250));
    h.tick();
    assert_eq!(h.queued(), 1, "it waits for the worker clearing for it");
    let cleared = WorkerState::Ready {
        prompt: Some("project A".into()),
    };
    h.report(a, cleared, None);
    assert_eq!(h.worker_of("job-2"), Some(a));
    let blank = 3 - a;
    assert_eq!(*h.state(blank), WorkerState::Ready { prompt: None });
    let third = h.job("project B", "k");
    h.submit(third).unwrap();
    assert_eq!(h.worker_of("job-3"), Some(blank));
    assert_eq!(h.pool.stats.waited_for_boot, 0);
}
