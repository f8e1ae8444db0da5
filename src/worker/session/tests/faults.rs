//! Faults: a silent turn, a departed client, a crash, a boot or a `/clear`
//! that never answers.

use super::*;

#[test]
fn a_silent_turn_times_out_then_a_stuck_interrupt_kills_the_process() {
    let mut h = Harness::booted();
    let (job, _client) = job(spec());
    h.start(job);
    let idle = h.settings.pool.turn_idle_timeout();
    assert!(h.tick_after(idle - Duration::from_secs(1)).is_empty());
    // Output resets the idle clock.
    h.line(json!({"type": "system", "subtype": "api_retry", "attempt": 1}));
    assert!(h.tick_after(Duration::from_secs(2)).is_empty());

    let effects = h.tick_after(idle);
    assert!(
        matches!(
            events(&effects)[..],
            [JobEvent::Failed(JobError::Timeout(_))]
        ),
        "{effects:?}"
    );
    assert!(effects.iter().any(is_interrupt));

    assert!(h.tick_after(INTERRUPT_GRACE).is_empty());
    let effects = h.tick_after(Duration::from_millis(200));
    assert_eq!(states(&effects), [WorkerState::Stopping]);
    assert_eq!(
        reports(&effects)[0].job,
        Some(Outcome::Failed),
        "the job killed with its worker is counted"
    );
    assert!(
        events(&effects).is_empty(),
        "the client already has its error"
    );
    assert!(matches!(
        effects.last(),
        Some(Effect::Terminate(Duration::ZERO))
    ));
    let effects = h.input(Input::Exited("signal: 9".into()));
    assert!(matches!(
        &states(&effects)[..],
        [WorkerState::Exited(ExitReason::Crashed(why))] if why.contains("interrupt")
    ));
    assert!(matches!(effects.last(), Some(Effect::Stop)));
}

#[test]
fn a_departed_client_gets_its_turn_interrupted() {
    let mut h = Harness::booted();
    let (job, client) = job(spec());
    h.start(job);
    h.line(answer("Partial"));
    assert!(h.tick_after(Duration::from_millis(200)).is_empty());
    drop(client);
    let effects = h.tick_after(Duration::from_millis(200));
    assert!(
        matches!(effects[..], [ref e] if is_interrupt(e)),
        "{effects:?}"
    );
    // Interrupted once, not at every tick.
    assert!(h.tick_after(Duration::from_millis(200)).is_empty());

    let effects = h.line(interrupted("s1"));
    assert_eq!(reports(&effects)[0].job, Some(Outcome::Failed));
    assert_eq!(states(&effects), [clearing()]);
}

#[test]
fn a_crash_mid_turn_fails_the_job_and_reports_the_exit() {
    let mut h = Harness::booted();
    let (job, _client) = job(spec());
    h.start(job);
    h.line(answer("Half"));
    let effects = h.input(Input::Exited("exit status: 1".into()));
    let failed = position(
        &effects,
        |e| matches!(e, Effect::Emit(_, JobEvent::Failed(JobError::WorkerCrashed(why))) if why.contains("exit status: 1")),
    );
    let exited = position(&effects, |e| {
        matches!(
            e,
            Effect::Report(WorkerReport {
                state: WorkerState::Exited(ExitReason::Crashed(_)),
                ..
            })
        )
    });
    assert!(failed < exited);
    assert_eq!(
        reports(&effects)[0].job,
        Some(Outcome::Failed),
        "the job the crash killed is counted"
    );
    assert!(matches!(effects.last(), Some(Effect::Stop)));
}

#[test]
fn a_worker_that_never_answers_its_probe_fails_to_boot() {
    let mut h = Harness::new(|_| {});
    h.input(Input::Spawned(h.process.clone()));
    let boot = h.settings.pool.boot_timeout();
    assert!(h.tick_after(boot).is_empty());
    let effects = h.tick_after(Duration::from_millis(200));
    assert_eq!(states(&effects), [WorkerState::Stopping]);
    let effects = h.input(Input::Exited("signal: 15".into()));
    assert!(matches!(
        &states(&effects)[..],
        [WorkerState::Exited(ExitReason::BootFailed(why))] if why.contains("not ready")
    ));
}

#[test]
fn a_stuck_clear_kills_the_process() {
    let mut h = Harness::booted();
    let (job, _client) = job(spec());
    h.start(job);
    h.line(result("s1"));
    assert!(h.tick_after(CLEAR_TIMEOUT).is_empty());
    let effects = h.tick_after(Duration::from_millis(200));
    assert_eq!(states(&effects), [WorkerState::Stopping]);
}
