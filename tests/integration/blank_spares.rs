//! Blank spares (`pool.blank_spares`): when a job with a new system prompt
//! takes a blank worker, the worker retired to make the next spare is
//! replaced by a blank one booting alongside it, not after its process has
//! exited; and jobs that did wait for a worker to boot are counted
//! (`jobs.waited_for_boot` in `/health`, `/metrics`); a spare taken by a
//! repeated prompt is restored from a worker left idle; the target
//! (`spares` in `/health`) may be `"auto"`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

fn body(system: &str, text: &str) -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 64, "system": system,
           "messages": [{"role": "user", "content": text}]})
}

fn items(h: &Value) -> Vec<(u64, &str, u64)> {
    h["workers"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["id"].as_u64().unwrap(),
                w["state"].as_str().unwrap(),
                w["pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn settled(h: &Value) -> bool {
    h["workers"]["busy"] == 0 && h["workers"]["starting"] == 0 && h["workers"]["stopping"] == 0
}

#[test]
fn a_consumed_spare_is_replaced_while_the_retired_worker_is_still_exiting() {
    let upstream = FakeUpstream::start();
    // The CLI takes 60 s to exit on stdin EOF and ignores SIGTERM: a retired
    // worker lingers until the daemon's grace periods end in SIGKILL.
    let cfg = DaemonConfig::fake(2).with_env("FAKE_CLAUDE_EXIT_MS", "60000");
    let daemon = Daemon::start(cfg, &upstream);
    let first: BTreeSet<u64> = items(&daemon.health()).iter().map(|w| w.0).collect();

    assert_eq!(daemon.post(&body("A", "first")).status(), 200);
    daemon.wait_health(Duration::from_secs(30), settled);
    // B takes the other blank worker; A's idle worker is retired to make a
    // spare, and the spare's worker is spawned at once.
    assert_eq!(daemon.post(&body("B", "second")).status(), 200);
    let h = daemon.wait_health(Duration::from_secs(30), |h| {
        let items = items(h);
        items.iter().any(|w| w.1 == "stopping")
            && items
                .iter()
                .any(|w| !first.contains(&w.0) && w.1 == "ready")
    });
    let retiring = items(&h).into_iter().find(|w| w.1 == "stopping").unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{}", retiring.2)).exists(),
        "the retired worker's process is still there: {h}"
    );
    assert_eq!(h["workers"]["total"], 3, "one process over the size: {h}");
    // The exiting process is no capacity: the account counts two workers.
    assert_eq!(h["accounts"][0]["workers"], 2, "{h}");
    assert_eq!(h["restarts"], 1, "{h}");

    // Once it is gone the pool is back to its size: nothing else replaces it.
    let h = daemon.wait_health(Duration::from_secs(30), settled);
    assert_eq!(h["workers"]["total"], 2, "{h}");
    assert_eq!(h["restarts"], 1, "{h}");
    assert_eq!(h["accounts"][0]["workers"], 2, "{h}");

    // The next new prompt finds the spare ready: no job waited for a boot.
    assert_eq!(daemon.post(&body("C", "third")).status(), 200);
    let h = daemon.wait_health(Duration::from_secs(30), settled);
    assert_eq!(h["restarts"], 2, "{h}");
    assert_eq!(h["jobs"]["completed"], 3, "{h}");
    assert_eq!(h["jobs"]["waited_for_boot"], 0, "{h}");
}

#[test]
fn a_job_that_waits_for_a_worker_to_boot_is_counted() {
    let upstream = FakeUpstream::start();
    // A pool of one keeps no spare: a new prompt retires the only worker
    // and waits for its blank replacement to boot.
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    assert_eq!(daemon.post(&body("A", "first")).status(), 200);
    assert_eq!(daemon.health()["jobs"]["waited_for_boot"], 0);
    assert_eq!(daemon.post(&body("B", "second")).status(), 200);
    let h = daemon.health();
    assert_eq!(h["jobs"]["waited_for_boot"], 1, "{h}");
    assert_eq!(h["restarts"], 1, "{h}");
    let metrics = daemon.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l == "claude_pool_jobs_waited_for_boot_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_spare_replaces_a_worker_on_the_same_account() {
    let upstream = FakeUpstream::start();
    let cfg = DaemonConfig::fake(3)
        .with_account("a", "sk-a", 2)
        .with_account("b", "sk-b", 1);
    let daemon = Daemon::start(cfg, &upstream);
    let workers = |h: &Value, name: &str| {
        h["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["workers"].as_u64().unwrap())
    };
    // Every request a new prompt: from the second on, each retires an idle
    // worker (of either account) to keep a blank spare.
    for i in 0..6 {
        let system = format!("prompt {i}");
        assert_eq!(daemon.post(&body(&system, "hi")).status(), 200);
        let h = daemon.wait_health(Duration::from_secs(30), settled);
        assert_eq!(
            (workers(&h, "a"), workers(&h, "b")),
            (Some(2), Some(1)),
            "after {i}: {h}"
        );
        assert_eq!(h["workers"]["total"], 3, "{h}");
    }
    let h = daemon.health();
    assert!(h["restarts"].as_u64().unwrap() >= 4, "{h}");
}

#[test]
fn a_spare_a_repeated_prompt_took_is_restored_once_the_worker_left_is_idle() {
    let upstream = FakeUpstream::start();
    // Two accounts of one worker take turns: the second request, with the
    // prompt the first worker holds, takes the other (blank) worker. Before,
    // nothing restored the spare: the next new prompt waited for a boot.
    let cfg = DaemonConfig::fake(2)
        .with_account("a", "sk-a", 1)
        .with_account("b", "sk-b", 1);
    let daemon = Daemon::start(cfg, &upstream);
    assert_eq!(daemon.post(&body("A", "first")).status(), 200);
    assert_eq!(daemon.post(&body("A", "second")).status(), 200);
    let h = daemon.health();
    assert_eq!(h["spares"]["blank"], 0, "{h}");
    assert_eq!(h["restarts"], 0, "the jobs at hand keep their workers: {h}");
    // Once the first worker has sat idle (10 s), it makes the spare.
    let h = daemon.wait_health(Duration::from_secs(30), |h| {
        h["restarts"] == 1 && h["spares"]["blank"] == 1 && settled(h)
    });
    assert_eq!(h["spares"]["target"], 1, "{h}");
    assert_eq!(h["spares"]["auto"], false, "{h}");
    assert_eq!(daemon.post(&body("B", "new")).status(), 200);
    let h = daemon.health();
    assert_eq!(h["jobs"]["waited_for_boot"], 0, "{h}");
}

#[test]
fn an_auto_target_is_reported_in_health_and_metrics() {
    let upstream = FakeUpstream::start();
    let cfg = DaemonConfig::fake(3).with_toml("pool.blank_spares = \"auto\"");
    let daemon = Daemon::start(cfg, &upstream);
    let h = daemon.health();
    assert_eq!(h["spares"]["auto"], true, "{h}");
    assert_eq!(h["spares"]["target"], 1, "one to start with: {h}");
    let metrics = daemon.metrics();
    for line in [
        "claude_pool_blank_spares_target 1",
        "claude_pool_blank_spares_auto 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
}
