//! Admission counts workers that are only being cleared or replaced as
//! capacity, and a waiting job frees exactly one worker, with the real CLI.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

fn body(system: &str, text: &str) -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 64, "system": system,
           "messages": [{"role": "user", "content": text}]})
}

/// Sends `n` requests at the same instant; returns their statuses and bodies.
fn burst(daemon: &Daemon, n: usize, system: &str) -> Vec<(u16, String)> {
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let url = daemon.url("/v1/messages");
            let body = body(system, &format!("burst {i}"));
            std::thread::spawn(move || {
                let http = client();
                barrier.wait();
                let res = http.post(url).json(&body).send().unwrap();
                (res.status().as_u16(), res.text().unwrap())
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn assert_all_served(results: &[(u16, String)]) {
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert!(refused.is_empty(), "refused below capacity: {refused:?}");
}

const POOL_AND_QUEUE: &str = "pool.max_queue = 4";

#[test]
fn a_burst_as_large_as_pool_and_queue_is_served_while_bound_workers_unbind() {
    let upstream = FakeUpstream::start();
    // No blank spares, so that both workers stay bound.
    let daemon = Daemon::start(
        DaemonConfig::real(2).with_toml(&format!("{POOL_AND_QUEUE}\npool.blank_spares = 0")),
        &upstream,
    );
    // Two conversations, one with a system prompt: both workers bound.
    assert_eq!(daemon.post(&body("", "first conversation")).status(), 200);
    assert_eq!(daemon.post(&body("S", "second conversation")).status(), 200);
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["bound"] == 2);
    // New conversations take the bound workers only once they are cleared
    // (or, for the other prompt, replaced): they wait meanwhile.
    assert_all_served(&burst(&daemon, 2 + 4, ""));
}

#[test]
fn a_burst_as_large_as_pool_and_queue_is_served_while_mismatched_workers_are_replaced() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(2).with_toml(&format!("{POOL_AND_QUEUE}\npool.affinity = false")),
        &upstream,
    );
    // Both workers set up with system prompt A, idle.
    assert_all_served(&burst(&daemon, 2, "A"));
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["ready"] == 2);
    // Every job with prompt B waits for a worker replaced by a blank one.
    assert_all_served(&burst(&daemon, 2 + 4, "B"));
    let h = daemon.health();
    assert_eq!(h["jobs"]["rejected"], 0, "{h}");
}

#[test]
fn one_job_for_a_new_prompt_frees_one_bound_worker_not_all() {
    let upstream = FakeUpstream::start();
    // No blank spares: only the waiting job frees a worker here.
    let daemon = Daemon::start(
        DaemonConfig::real(3).with_toml("pool.blank_spares = 0"),
        &upstream,
    );
    for i in 0..3 {
        assert_eq!(
            daemon
                .post(&body("A", &format!("conversation {i}")))
                .status(),
            200
        );
        daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["bound"] == i + 1);
    }
    assert_eq!(daemon.post(&body("B", "another prompt")).status(), 200);
    // One worker was replaced (blank, then set up with B); the other two
    // conversations are still held.
    let h = daemon.wait_health(Duration::from_secs(30), |h| {
        h["workers"]["busy"] == 0 && h["workers"]["starting"] == 0 && h["workers"]["stopping"] == 0
    });
    assert_eq!(
        h["workers"]["bound"], 3,
        "two A conversations and the B one: {h}"
    );
    assert_eq!(h["restarts"], 1, "{h}");
}

#[test]
fn a_new_prompt_leaves_a_blank_spare_booting_for_the_next_one() {
    let upstream = FakeUpstream::start();
    // pool.blank_spares = 1 (the default).
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let settled = |h: &Value| {
        h["workers"]["busy"] == 0 && h["workers"]["starting"] == 0 && h["workers"]["stopping"] == 0
    };
    assert_eq!(daemon.post(&body("A", "first")).status(), 200);
    // B takes the last blank worker: A's idle worker is replaced by a blank
    // one in the background, with no job waiting for it.
    assert_eq!(daemon.post(&body("B", "second")).status(), 200);
    let h = daemon.wait_health(Duration::from_secs(30), |h| {
        settled(h) && h["restarts"] == 1
    });
    assert_eq!(h["workers"]["ready"], 1, "the blank spare: {h}");
    assert_eq!(h["workers"]["bound"], 1, "B's conversation stays: {h}");
    // C takes the spare (and makes the next one); more conversations with
    // the same prompt C take no blank worker and replace nothing.
    assert_eq!(daemon.post(&body("C", "third")).status(), 200);
    for i in 0..3 {
        assert_eq!(daemon.post(&body("C", &format!("more {i}"))).status(), 200);
    }
    let h = daemon.wait_health(Duration::from_secs(30), settled);
    assert_eq!(h["restarts"], 2, "{h}");
    assert_eq!(h["jobs"]["completed"], 6, "{h}");
}

/// Sends `body` and gives up after `patience`, as a client with a read
/// timeout does: the connection is closed without an answer.
fn give_up_after(daemon: &Daemon, body: Value, patience: Duration) -> std::thread::JoinHandle<()> {
    let url = daemon.url("/v1/messages");
    std::thread::spawn(move || {
        let http = reqwest::blocking::Client::builder()
            .timeout(patience)
            .build()
            .unwrap();
        let sent = http.post(url).json(&body).send().and_then(|r| r.text());
        assert!(sent.is_err(), "answered while the pool was busy: {sent:?}");
    })
}

#[test]
fn clients_that_leave_while_queued_never_reach_the_upstream() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("pool.max_queue = 16\npool.blank_spares = 0"),
        &upstream,
    );
    // The one worker is busy for a long while (20 words, 2 s apart): a
    // stream whose headers come with its first event, held open here.
    let mut hold = body("", "hold the worker [[slow:2000]]");
    hold["stream"] = json!(true);
    let holder = client()
        .post(daemon.url("/v1/messages"))
        .json(&hold)
        .send()
        .unwrap();
    assert_eq!(holder.status(), 200);
    // Streaming and non-streaming clients that give up while queued (a
    // stream gets its headers only after `server.keepalive_secs` of silence).
    const EACH: usize = 3;
    let leavers: Vec<_> = (0..2 * EACH)
        .map(|i| {
            let mut request = body("", &format!("left-{i} never to be run"));
            request["stream"] = json!(i % 2 == 0);
            give_up_after(&daemon, request, Duration::from_secs(1))
        })
        .collect();
    daemon.wait_health(Duration::from_secs(10), |h| h["queue"]["depth"] != 0);
    for leaver in leavers {
        leaver.join().unwrap();
    }
    // They leave the queue while the worker is still busy with the holder.
    let h = daemon.wait_health(Duration::from_secs(5), |h| h["queue"]["depth"] == 0);
    assert_eq!(h["workers"]["busy"], 1, "the holder still runs: {h}");
    assert_eq!(h["jobs"]["abandoned"], 2 * EACH, "{h}");
    // Free the worker (its turn is interrupted) and run one more job: a
    // departed job still queued would have run before it.
    drop(holder);
    assert_eq!(daemon.post(&body("", "after them")).status(), 200);
    let texts: Vec<String> = upstream
        .message_calls()
        .iter()
        .map(|c| c.all_text())
        .collect();
    assert!(texts.iter().any(|t| t.contains("after them")), "{texts:?}");
    let ran: Vec<_> = texts.iter().filter(|t| t.contains("left-")).collect();
    assert!(ran.is_empty(), "departed clients' jobs ran: {ran:?}");
    // Every request is counted once: the holder (its client left mid-turn),
    // the departed ones and the last one.
    let h = daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["busy"] == 0);
    let jobs = &h["jobs"];
    let counted: u64 = ["completed", "failed", "rejected", "abandoned"]
        .iter()
        .map(|k| jobs[k].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 2 * EACH as u64 + 2, "{h}");
}

/// Issue 27's project-A/project-B sequence on a pool of 2 (defaults): two
/// conversations in project A, the second while the first's worker is
/// still bound, then one in project B (a new system prompt). A's second
/// conversation clears A's bound worker instead of taking the blank spare,
/// so B finds the spare ready: no job waits for a boot. Before, A's second
/// conversation took the spare, none was made again (A's prompt was held),
/// and B waited for a boot.
#[test]
fn a_second_conversation_of_a_bound_prompt_leaves_the_spare_for_a_new_one() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let settled = |h: &Value| {
        h["workers"]["busy"] == 0 && h["workers"]["starting"] == 0 && h["workers"]["stopping"] == 0
    };
    assert_eq!(daemon.post(&body("project A", "first")).status(), 200);
    daemon.wait_health(Duration::from_secs(30), settled);
    assert_eq!(daemon.post(&body("project A", "second")).status(), 200);
    let h = daemon.wait_health(Duration::from_secs(30), settled);
    assert_eq!(
        h["workers"]["ready"], 1,
        "the blank spare is still there: {h}"
    );
    assert_eq!(h["restarts"], 0, "nothing booted: {h}");
    assert_eq!(daemon.post(&body("project B", "third")).status(), 200);
    let h = daemon.wait_health(Duration::from_secs(30), settled);
    assert_eq!(h["jobs"]["completed"], 3, "{h}");
    assert_eq!(h["jobs"]["waited_for_boot"], 0, "{h}");
}
