//! Errors keep their meaning: the upstream's, an overloaded pool's and a bad
//! request's, and the daemon keeps serving after them.

use super::*;

#[test]
fn upstream_errors_keep_their_meaning() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    // 429 last: it marks the pool's account rate-limited (see below).
    for (status, kind, expect) in [
        (400, "invalid_request_error", 400),
        (529, "overloaded_error", 529),
        (401, "api_error", 502),
        (500, "api_error", 500),
        (429, "rate_limit_error", 429),
    ] {
        let res = daemon.post(&message_body(&format!("fail please [[status:{status}]]")));
        assert_eq!(res.status().as_u16(), expect, "upstream {status}");
        let body: Value = res.json().unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], kind, "upstream {status}: {body}");
    }
    // In a stream, an early failure is still a real HTTP status: here the
    // pool's only account is known to be rate-limited, so at once, with
    // the time until the limit ends.
    let mut body = message_body("[[status:429]]");
    body["stream"] = json!(true);
    let res = daemon.post(&body);
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // The limit ends by itself (the account still shows the 401 as
    // `login_failed` until a job succeeds), and the worker is fine
    // afterwards.
    daemon.wait_health(Duration::from_secs(30), |h| {
        h["accounts"][0]["limited_until"].is_null()
    });
    let res = daemon.post(&message_body("after errors"));
    assert_eq!(res.status(), 200);
    let health = daemon.wait_health(Duration::from_secs(30), |h| h["status"] == "ok");
    assert_eq!(health["accounts"][0]["status"], "ok", "{health}");
}

#[test]
fn overload_is_refused_at_once_with_retry_after() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("pool.max_queue = 1"),
        &upstream,
    );
    let url = daemon.url("/v1/messages");
    let slow = message_body("hold the worker [[slow:100]]");
    let busy = {
        let (url, body) = (url.clone(), slow.clone());
        std::thread::spawn(move || client().post(url).json(&body).send().unwrap().status())
    };
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["busy"] == 1);
    let queued = {
        let (url, body) = (url.clone(), message_body("queued one"));
        std::thread::spawn(move || client().post(url).json(&body).send().unwrap().status())
    };
    daemon.wait_health(Duration::from_secs(10), |h| h["queue"]["depth"] == 1);
    let started = Instant::now();
    let res = client()
        .post(&url)
        .json(&message_body("one too many"))
        .send()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal must be immediate"
    );
    assert_eq!(res.status().as_u16(), 529);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
}

#[test]
fn bad_requests_get_clear_4xx_and_the_daemon_keeps_serving() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("server.max_body_bytes = 4096"),
        &upstream,
    );
    let url = daemon.url("/v1/messages");
    let raw = |body: &'static [u8]| {
        client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    let cases: Vec<(reqwest::blocking::Response, u16, &str)> = vec![
        (raw(b"{not json"), 400, "invalid_request_error"),
        (raw(b""), 400, "invalid_request_error"),
        (raw(b"[]"), 400, "invalid_request_error"),
        (raw(br#"{"model":"x"}"#), 400, "invalid_request_error"),
        (raw(br#"{"messages":[]}"#), 400, "invalid_request_error"),
        (
            raw(br#"{"messages":"hello"}"#),
            400,
            "invalid_request_error",
        ),
        (
            raw(br#"{"messages":[{"role":"robot","content":"x"}]}"#),
            400,
            "invalid_request_error",
        ),
        (
            raw(br#"{"messages":[{"role":"user","content":42}]}"#),
            400,
            "invalid_request_error",
        ),
        (
            raw(br#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#),
            400,
            "invalid_request_error",
        ),
        (raw(b"\xff\xfe\x00garbage"), 400, "invalid_request_error"),
        (
            client()
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 10_000])
                .send()
                .unwrap(),
            413,
            "request_too_large",
        ),
        (
            client().get(daemon.url("/v1/nothing")).send().unwrap(),
            404,
            "not_found_error",
        ),
    ];
    for (i, (res, status, kind)) in cases.into_iter().enumerate() {
        assert_eq!(res.status().as_u16(), status, "case {i}");
        let body: Value = res.json().unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(body["type"], "error", "case {i}: {body}");
        assert_eq!(body["error"]["type"], kind, "case {i}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let res = daemon.post(&message_body("still alive?"));
    assert_eq!(res.status(), 200);
    assert_eq!(
        daemon.health()["restarts"],
        0,
        "bad input must not cost a worker"
    );
    assert!(
        upstream.message_calls().len() == 1,
        "no bad request may reach the model"
    );
}
