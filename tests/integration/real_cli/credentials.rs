//! Workers without usable Claude credentials, with the real CLI: none at all
//! (no key, no login in its config directory) and a key the upstream
//! rejects. Either is the daemon's configuration problem: 502 `api_error`
//! saying what to do, and `/health` says so until a job succeeds.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// `(status, body)` of a Messages request.
fn ask(daemon: &Daemon, text: &str) -> (u16, Value) {
    let res = daemon.post(&message_body(text));
    let status = res.status().as_u16();
    (status, res.json().unwrap())
}

fn assert_says_what_to_do(message: &str) {
    for hint in ["claude login", "ANTHROPIC_API_KEY", "Credentials"] {
        assert!(message.contains(hint), "{hint:?} not in {message:?}");
    }
}

#[test]
fn a_worker_that_is_not_logged_in_gets_502_and_health_says_why() {
    let upstream = FakeUpstream::start();
    // The per-daemon CLAUDE_CONFIG_DIR holds no login; no key either.
    let daemon = Daemon::start(
        DaemonConfig::real(1)
            .with_env("ANTHROPIC_API_KEY", "")
            .with_env("CLAUDE_CODE_OAUTH_TOKEN", ""),
        &upstream,
    );
    let (status, body) = ask(&daemon, "hello");
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("Not logged in"), "{message}");
    assert_says_what_to_do(message);

    let res = daemon.post_to(
        "/v1/chat/completions",
        &json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(res.status(), 502);
    let body: Value = res.json().unwrap();
    assert_says_what_to_do(body["error"]["message"].as_str().unwrap());

    let res = client().get(daemon.url("/health")).send().unwrap();
    assert_eq!(res.status(), 503);
    let health: Value = res.json().unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let reason = health["reason"].as_str().unwrap();
    assert!(reason.contains("Not logged in"), "{reason}");
    assert_says_what_to_do(reason);
    assert!(upstream.message_calls().is_empty(), "no key, no call");
}

#[test]
fn a_rejected_key_gets_502_and_health_recovers_with_the_next_success() {
    let upstream = FakeUpstream::start();
    let rejected = Daemon::start(
        DaemonConfig::real(1).with_env("ANTHROPIC_API_KEY", upstream::REJECTED_KEY),
        &upstream,
    );
    let (status, body) = ask(&rejected, "hello");
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert_says_what_to_do(body["error"]["message"].as_str().unwrap());
    let health = rejected.health();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("Invalid API key"),
        "{health}"
    );
    drop(rejected);

    // Credentials that fail once and then work again: health follows.
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let (status, _) = ask(&daemon, "refused [[status:401]]");
    assert_eq!(status, 502);
    assert_eq!(daemon.health()["status"], "degraded");
    let (status, body) = ask(&daemon, "accepted again");
    assert_eq!(status, 200, "{body}");
    let health = daemon.wait_health(Duration::from_secs(30), |h| h["status"] == "ok");
    assert!(health.get("reason").is_none(), "{health}");
}
