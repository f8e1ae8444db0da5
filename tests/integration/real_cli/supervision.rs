//! Faults and supervision with the real CLI: a client that disconnects
//! mid-stream, an upstream that never answers. The fake CLI's share is in
//! `../supervision/`.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

fn stream_body(text: &str) -> Value {
    let mut body = message_body(text);
    body["stream"] = json!(true);
    body
}

#[test]
fn a_disconnected_stream_is_interrupted_and_the_worker_freed() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    // 20 words, 300 ms apart: six seconds if nobody interrupts it.
    let mut res = daemon.post(&stream_body("long story [[slow:300]]"));
    let mut buf = [0u8; 1024];
    let mut seen = String::new();
    while !seen.contains("text_delta") {
        let n = res.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(res);
    let dropped = Instant::now();
    let res = daemon.post(&message_body("next please"));
    assert_eq!(res.status(), 200);
    assert!(
        dropped.elapsed() < Duration::from_secs(2),
        "next request served {:?} after the disconnect",
        dropped.elapsed()
    );
    assert_eq!(daemon.health()["restarts"], 0);
}

#[test]
fn an_upstream_that_never_answers_becomes_a_timeout_in_bounded_time() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("claude.api_timeout_ms = 1500"),
        &upstream,
    );
    let started = Instant::now();
    let res = daemon.post(&message_body("silence [[hang]]"));
    assert_eq!(res.status(), 504);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "timeout_error", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // The worker recovers: the failed turn is cleared, the next one works.
    assert_eq!(daemon.post(&message_body("and now?")).status(), 200);
}
