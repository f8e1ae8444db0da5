//! Several accounts in one pool, with the real CLI: the fake upstream
//! answers per credential (`x-api-key`), so one account can be rate-limited
//! while another is fine. Failover, limits that end, the all-limited 429,
//! a limit met mid-stream, load spread, and accounts added by a reload.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use serde_json::Value;

/// Two accounts of one worker each: `a` (key `sk-a`) and `b` (`sk-b`).
/// The CLI retries twice, so a 429 with `retry-after: 60` would keep it
/// waiting a minute per attempt: the daemon must act on the first one.
fn two_accounts() -> DaemonConfig {
    DaemonConfig::real(2)
        .with_toml("claude.max_retries = 2")
        .with_account("a", "sk-a", 1)
        .with_account("b", "sk-b", 1)
}

fn account<'h>(health: &'h Value, name: &str) -> &'h Value {
    health["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == name))
        .unwrap_or_else(|| panic!("no account {name} in {health}"))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends a request and returns its answer's text, asserting a 200.
fn ask(daemon: &Daemon, text: &str) -> String {
    let res = daemon.post(&message_body(text));
    let status = res.status();
    let body: Value = res.json().unwrap();
    assert_eq!(status, 200, "{body}");
    body["content"][0]["text"].as_str().unwrap().to_string()
}

#[test]
fn a_limited_account_fails_over_and_gets_no_more_work() {
    let upstream = FakeUpstream::start();
    upstream.limit_key("sk-b", 60, Duration::from_secs(600));
    let daemon = Daemon::start(two_accounts(), &upstream);

    for i in 0..4 {
        let started = Instant::now();
        let text = ask(&daemon, &format!("question {i}"));
        assert!(text.contains(&format!("question {i}")), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "request {i} took {:?}: the CLI's 60 s wait was not cut short",
            started.elapsed()
        );
    }
    assert_eq!(
        upstream.calls_with_key("sk-b"),
        1,
        "the limited account must get no further requests"
    );
    assert_eq!(upstream.calls_with_key("sk-a"), 4);

    let health = daemon.health();
    let b = account(&health, "b");
    assert_eq!(b["status"], "limited", "{health}");
    let until = b["limited_until"].as_u64().expect("limited_until");
    let left = until.saturating_sub(now_secs());
    assert!((45..=61).contains(&left), "limited for {left}s: {health}");
    assert_eq!(b["failovers"], 1, "{health}");
    assert_eq!(b["rate_limited"], 1, "{health}");
    let a = account(&health, "a");
    assert_eq!(a["status"], "ok", "{health}");
    assert!(a["limited_until"].is_null(), "{health}");
    assert_eq!(a["workers"], 1, "{health}");

    let metrics = daemon.metrics();
    for line in [
        "claude_pool_account_status{account=\"b\",status=\"limited\"} 1",
        "claude_pool_account_failovers_total{account=\"b\"} 1",
        "claude_pool_account_jobs_total{account=\"a\"} 4",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    for secret in ["sk-a", "sk-b"] {
        assert!(!health.to_string().contains(secret), "{health}");
        assert!(!metrics.contains(secret), "credentials in /metrics");
    }
}

#[test]
fn every_account_limited_gets_an_immediate_429_with_retry_after() {
    let upstream = FakeUpstream::start();
    // (A retry-after much longer than a minute makes the CLI give up at
    // once without saying how long; these it announces.)
    upstream.limit_key("sk-a", 60, Duration::from_secs(600));
    upstream.limit_key("sk-b", 30, Duration::from_secs(600));
    let daemon = Daemon::start(two_accounts(), &upstream);

    // The first request finds out, account by account.
    let res = daemon.post(&message_body("anyone?"));
    assert_eq!(res.status(), 429);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(upstream.message_calls().len(), 2);

    // Then the pool knows: refused at once, without asking the upstream.
    let started = Instant::now();
    let res = daemon.post(&message_body("still nobody?"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (20..=30).contains(&retry_after),
        "Retry-After {retry_after}: the soonest reset is b's 30 s; {}",
        daemon.health()
    );
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(upstream.message_calls().len(), 2, "no upstream call");

    // The OpenAI dialect says the same in its own shape.
    let res = daemon.post_to(
        "/v1/chat/completions",
        &serde_json::json!({"model": "claude-haiku-4-5",
                            "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
}

#[test]
fn a_short_limit_ends_and_the_account_takes_work_again() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(two_accounts(), &upstream);
    upstream.limit_key("sk-b", 2, Duration::from_secs(2));

    ask(&daemon, "first");
    assert_eq!(upstream.calls_with_key("sk-b"), 1);
    let health = daemon.health();
    assert_eq!(account(&health, "b")["rate_limited"], 1, "{health}");
    assert_eq!(account(&health, "b")["failovers"], 1, "{health}");

    daemon.wait_health(Duration::from_secs(20), |h| {
        account(h, "b")["status"] == "ok"
    });
    // `a` served last, so the next new conversation goes to `b`.
    let text = ask(&daemon, "second");
    assert!(text.contains("second"), "{text}");
    assert_eq!(upstream.calls_with_key("sk-b"), 2, "b takes work again");
    assert_eq!(account(&daemon.health(), "b")["jobs"], 2);
}

#[test]
fn a_stream_limited_after_its_first_token_ends_with_a_rate_limit_error_event() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(two_accounts(), &upstream);
    let mut body = message_body("tell me [[limit_after_first_token:60]]");
    body["stream"] = true.into();

    let started = Instant::now();
    let res = daemon.post(&body);
    assert_eq!(res.status(), 200);
    let events = parse_sse(&res.text().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(sse_text(&events), "First ", "{names:?}");
    let (last, error) = events.last().unwrap();
    assert_eq!(last, "error", "{names:?}");
    assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
    assert!(!names.contains(&"message_stop"), "{names:?}");

    // The account that met the limit is marked; the other one serves on.
    let health = daemon.health();
    let limited: Vec<&Value> = health["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "limited")
        .collect();
    assert_eq!(limited.len(), 1, "{health}");
    assert!(ask(&daemon, "and now?").contains("and now?"));
}

#[test]
fn both_accounts_take_work_when_both_are_fine() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(two_accounts(), &upstream);
    for i in 0..4 {
        ask(&daemon, &format!("turn {i}"));
    }
    assert_eq!(upstream.calls_with_key("sk-a"), 2);
    assert_eq!(upstream.calls_with_key("sk-b"), 2);
    let health = daemon.health();
    assert_eq!(account(&health, "a")["jobs"], 2, "{health}");
    assert_eq!(account(&health, "b")["jobs"], 2, "{health}");
    assert_eq!(health["workers"]["total"], 2);
}

#[test]
fn a_reload_adds_and_removes_accounts() {
    let upstream = FakeUpstream::start();
    let one = DaemonConfig::real(1).with_account("a", "sk-a", 1);
    let daemon = Daemon::start(one, &upstream);
    ask(&daemon, "before");
    assert_eq!(upstream.calls_with_key("sk-a"), 1);

    // Add `c`.
    let two = DaemonConfig::real(1)
        .with_account("a", "sk-a", 1)
        .with_account("c", "sk-c", 1);
    daemon.reload(&two, &upstream);
    daemon.wait_health(Duration::from_secs(30), |h| {
        h["accounts"].as_array().unwrap().len() == 2
            && h["workers"]["total"] == 2
            && h["workers"]["starting"] == 0
    });
    // `c` has never served, so it is the least recently used.
    ask(&daemon, "after");
    assert_eq!(upstream.calls_with_key("sk-c"), 1);

    // Remove `a`: its worker retires, `c` serves alone.
    let only_c = DaemonConfig::real(1).with_account("c", "sk-c", 1);
    daemon.reload(&only_c, &upstream);
    let health = daemon.wait_health(Duration::from_secs(30), |h| {
        h["accounts"].as_array().unwrap().len() == 1 && h["workers"]["total"] == 1
    });
    assert_eq!(health["accounts"][0]["name"], "c", "{health}");
    ask(&daemon, "last");
    assert_eq!(
        upstream.calls_with_key("sk-a"),
        1,
        "a removed account gets no work"
    );
    assert_eq!(upstream.calls_with_key("sk-c"), 2);
}

#[test]
fn an_account_whose_key_is_rejected_is_marked_and_the_others_serve_on() {
    let upstream = FakeUpstream::start();
    let cfg = || {
        DaemonConfig::real(2)
            .with_account("a", "sk-a", 1)
            .with_account("bad", upstream::REJECTED_KEY, 1)
    };
    let daemon = Daemon::start(cfg(), &upstream);
    // Both accounts are new, so the first requests reach both: the job
    // that meets the rejected key had no output yet, so it runs again on
    // `a`; after that only `a` takes work.
    for i in 0..4 {
        let res = daemon.post(&message_body(&format!("q{i}")));
        let status = res.status();
        let body: Value = res.json().unwrap();
        assert_eq!(status, 200, "q{i}: {body}");
        let text = body["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(&format!("q{i}")), "{text}");
    }
    assert_eq!(upstream.calls_with_key("sk-a"), 4);

    let res = client().get(daemon.url("/health")).send().unwrap();
    assert_eq!(res.status(), 200, "the pool still serves");
    let health: Value = res.json().unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let bad = account(&health, "bad");
    assert_eq!(bad["status"], "login_failed", "{health}");
    assert_eq!(bad["jobs"], 1, "no work after its login failed: {health}");
    assert_eq!(health["jobs"]["completed"], 4, "{health}");
    assert_eq!(health["jobs"]["failed"], 0, "{health}");
    let reason = bad["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Invalid API key"), "{health}");
    assert_eq!(account(&health, "a")["status"], "ok", "{health}");
    assert!(account(&health, "a").get("reason").is_none(), "{health}");
    let metrics = daemon.metrics();
    let line = "claude_pool_account_status{account=\"bad\",status=\"login_failed\"} 1";
    assert!(metrics.contains(line), "{line} missing:\n{metrics}");

    // A reload (after fixing a login in place, say) tries the account
    // again: the least recently used, it gets the next job, whose failure
    // marks it again while `a` answers.
    daemon.reload(&cfg(), &upstream);
    daemon.wait_health(Duration::from_secs(30), |h| {
        account(h, "bad")["status"] == "ok"
    });
    assert!(ask(&daemon, "after the reload").contains("after the reload"));
    let health = daemon.health();
    let bad = account(&health, "bad");
    assert_eq!(bad["status"], "login_failed", "{health}");
    assert_eq!(bad["jobs"], 2, "{health}");
}

#[test]
fn health_is_degraded_naming_each_account_when_no_login_works() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(2)
            .with_account("x", upstream::REJECTED_KEY, 1)
            .with_account("y", upstream::REJECTED_KEY, 1),
        &upstream,
    );
    for i in 0..2 {
        let res = daemon.post(&message_body(&format!("q{i}")));
        assert_eq!(res.status(), 502, "{}", res.text().unwrap());
    }
    let res = client().get(daemon.url("/health")).send().unwrap();
    assert_eq!(res.status(), 503);
    let health: Value = res.json().unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let reason = health["reason"].as_str().unwrap();
    for name in ["account x:", "account y:"] {
        assert!(reason.contains(name), "{name} not in {reason}");
    }
    assert!(reason.contains("Invalid API key"), "{reason}");
}
