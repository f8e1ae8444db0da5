//! Graceful shutdown under load, with the fake CLI: the shutdown future
//! (what SIGTERM resolves) fires while two jobs run and three wait. The
//! running jobs finish in full, the waiting ones are refused at once, `run`
//! returns Ok, and no worker process is left.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

/// What one client thread saw.
struct Outcome {
    name: String,
    status: u16,
    body: String,
    done_at: Instant,
}

fn spawn_client(base: &str, name: &str, stream: bool, tx: &mpsc::Sender<Outcome>) {
    let url = format!("{base}/v1/messages");
    let name = name.to_string();
    let tx = tx.clone();
    thread::spawn(move || {
        let mut body = message_body(&format!("{name} [[slow:100]]"));
        body["stream"] = json!(stream);
        let res = client().post(&url).json(&body).send();
        let (status, body) = match res {
            Ok(res) => (res.status().as_u16(), res.text().unwrap_or_default()),
            Err(e) => (0, format!("no response: {e}")),
        };
        let _ = tx.send(Outcome {
            name,
            status,
            body,
            done_at: Instant::now(),
        });
    });
}

/// Asserts `text` is the whole reply fake-claude gives under `[[slow:…]]`:
/// `fake reply #N: <prompt>` padded to 20 words, the last `word19`.
fn assert_full_slow_reply(name: &str, text: &str) {
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(
        text.starts_with("fake reply #") && text.contains(name),
        "{name}: {text}"
    );
    assert_eq!(words.len(), 20, "{name}: not the full reply: {text}");
    assert_eq!(words.last(), Some(&"word19"), "{name}: {text}");
}

#[test]
fn in_flight_jobs_finish_queued_jobs_are_refused_and_nothing_is_left() {
    let upstream = FakeUpstream::start();
    let logs = tempfile::tempdir().unwrap();
    let stdin_log = logs.path().join("stdin.jsonl");
    let daemon = Daemon::start(
        DaemonConfig::fake(2)
            .with_toml("pool.max_queue = 4")
            .with_env("FAKE_CLAUDE_LOG", &stdin_log.display().to_string()),
        &upstream,
    );
    let config_dir = daemon.config_dir();
    assert_eq!(processes_with_env(&config_dir).len(), 2, "two workers");
    let (tx, rx) = mpsc::channel();

    // Two slow jobs (20 deltas 100 ms apart), one streaming, take both workers…
    spawn_client(&daemon.base, "inflight-plain", false, &tx);
    spawn_client(&daemon.base, "inflight-stream", true, &tx);
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["busy"] == 2);
    // …and three more wait in the queue.
    for (name, stream) in [("queued-1", false), ("queued-2", true), ("queued-3", false)] {
        spawn_client(&daemon.base, name, stream, &tx);
    }
    daemon.wait_health(Duration::from_secs(5), |h| h["queue"]["depth"] == 3);
    drop(tx);

    let stop_at = Instant::now();
    let stopped = daemon.stop();
    let stop_took = stop_at.elapsed();
    assert_eq!(stopped, Ok(()), "run must return Ok");

    let outcomes: Vec<Outcome> = rx.iter().collect();
    assert_eq!(outcomes.len(), 5, "every client got an answer");
    for o in &outcomes {
        let after_stop = o.done_at.saturating_duration_since(stop_at);
        if o.name.starts_with("inflight") {
            assert_eq!(o.status, 200, "{}: {}", o.name, o.body);
            let text = if o.name.ends_with("stream") {
                let events = parse_sse(&o.body);
                let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(names.last(), Some(&"message_stop"), "{}", o.body);
                sse_text(&events)
            } else {
                let body: Value = serde_json::from_str(&o.body).unwrap();
                assert_eq!(body["stop_reason"], "end_turn", "{body}");
                body["content"][0]["text"].as_str().unwrap().to_string()
            };
            assert_full_slow_reply(&o.name, &text);
            // They were still running when shutdown began: drained, not cut.
            assert!(
                after_stop > Duration::from_millis(500),
                "{} ended {after_stop:?} after the stop",
                o.name
            );
        } else {
            assert_eq!(o.status, 503, "{}: {}", o.name, o.body);
            let body: Value = serde_json::from_str(&o.body)
                .unwrap_or_else(|e| panic!("{}: {e}: {}", o.name, o.body));
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], "overloaded_error", "{body}");
            assert!(
                after_stop < Duration::from_millis(1000),
                "{} refused only {after_stop:?} after the stop",
                o.name
            );
        }
    }
    // Drained within the grace period, not by waiting it out.
    assert!(
        stop_took < Duration::from_secs(8),
        "stop took {stop_took:?}"
    );
    assert_no_processes_with_env(&config_dir, Duration::from_secs(5));
    // Only the two in-flight jobs ever reached a worker.
    assert!(
        upstream.requests().is_empty(),
        "the fake CLI calls no upstream"
    );
}

#[test]
fn a_draining_daemon_keeps_no_connection_alive() {
    let upstream = FakeUpstream::start();
    let mut daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let connection = |res: &reqwest::blocking::Response| {
        res.headers()
            .get("connection")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let res = client().get(daemon.url("/health")).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_ne!(connection(&res).as_deref(), Some("close"), "kept alive");
    // A slow job keeps the drain going.
    let slow = thread::spawn({
        let url = daemon.url("/v1/messages");
        move || {
            let res = client()
                .post(url)
                .json(&message_body("slow [[slow:200]]"))
                .send()
                .unwrap();
            (res.status().as_u16(), connection(&res))
        }
    });
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["busy"] == 1);
    daemon.begin_stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let res = client().get(daemon.url("/health")).send().unwrap();
        if res.status() == 503 {
            break res;
        }
        assert!(Instant::now() < deadline, "never drained");
        thread::sleep(Duration::from_millis(20));
    };
    // Every answer while draining closes its connection, so that a load
    // balancer keeps none to reuse as the listener closes.
    assert_eq!(connection(&refused).as_deref(), Some("close"));
    let res = client()
        .post(daemon.url("/v1/messages"))
        .json(&message_body("new work"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(connection(&res).as_deref(), Some("close"));
    let (status, _) = slow.join().unwrap();
    assert_eq!(status, 200, "the job in flight finishes");
    assert_eq!(daemon.stop(), Ok(()));
}
