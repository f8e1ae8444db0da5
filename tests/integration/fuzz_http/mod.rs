//! Bad request bodies against every body-taking route, with the fake CLI:
//! truncated and malformed JSON, a wrong type in every field, bodies over
//! `server.max_body_bytes` (declared and chunked), 10 000-level nesting,
//! bytes that are not UTF-8, empty bodies and non-JSON or missing content
//! types.
//!
//! Every answer must be the exact 4xx for its kind, with a JSON error body in
//! the route's dialect; none may reach the pool, cost a worker, or stop the
//! daemon from serving the next valid request. Cases come from fixed lists
//! and a fixed-seed generator ([`SEED`]), so a failure reproduces exactly.

use crate::common::*;
use serde_json::{json, Value};

mod cases;
mod routes;

use cases::{all_cases, to_bytes, Case};
use routes::Route;

/// Seed of the generated cases; change it to explore, keep it to reproduce.
const SEED: u64 = 0x5eed_c1a0_de00_f022;
/// The body limit the daemon runs with.
const MAX_BODY: usize = 64 * 1024;
const NEST: usize = 10_000;

/// Why `res` is not the error `case` expects, if it is not.
fn judge(case: &Case, res: reqwest::blocking::Response) -> Result<(), String> {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = res.text().map_err(|e| format!("reading the body: {e}"))?;
    if status != case.expect.status() {
        return Err(format!(
            "status {status}, expected {}: {text}",
            case.expect.status()
        ));
    }
    if !content_type.starts_with("application/json") {
        return Err(format!("content-type {content_type:?}: {text}"));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let error = &body["error"];
    let message_ok = error["message"].as_str().is_some_and(|m| !m.is_empty());
    let shape_ok = if case.route.is_openai() {
        body.as_object().is_some_and(|o| o.len() == 1)
            && error.as_object().is_some_and(|o| o.len() == 4)
            && message_ok
            && error["type"] == "invalid_request_error"
            && error["param"].is_null()
            && (error["code"].is_null() || error["code"].is_string())
    } else {
        body.as_object().is_some_and(|o| o.len() == 2)
            && body["type"] == "error"
            && error.as_object().is_some_and(|o| o.len() == 2)
            && message_ok
            && error["type"] == case.expect.anthropic_type()
    };
    if shape_ok {
        Ok(())
    } else {
        Err(format!("not the route's error shape: {body}"))
    }
}

fn send(http: &reqwest::blocking::Client, daemon: &Daemon, case: &Case) -> Result<(), String> {
    let mut req = http.post(daemon.url(case.route.path()));
    if let Some(content_type) = case.content_type {
        req = req.header("content-type", content_type);
    }
    req = if case.chunked {
        req.body(reqwest::blocking::Body::new(std::io::Cursor::new(
            case.body.clone(),
        )))
    } else {
        req.body(case.body.clone())
    };
    let res = req.send().map_err(|e| format!("no response: {e}"))?;
    judge(case, res)
}

#[test]
fn bad_bodies_get_exact_4xx_in_the_route_dialect_and_cost_nothing() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml(&format!("server.max_body_bytes = {MAX_BODY}")),
        &upstream,
    );
    let http = client();
    // The bases are valid, so each mutation is what makes its case bad.
    let res = http
        .post(daemon.url(Route::CountTokens.path()))
        .json(&Route::Messages.base())
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().unwrap());

    let cases = all_cases();
    let mut failures = Vec::new();
    for route in Route::ALL {
        let n = cases.iter().filter(|c| c.route == route).count();
        assert!(n >= 150, "only {n} cases for {route:?}");
    }
    for (i, case) in cases.iter().enumerate() {
        if let Err(why) = send(&http, &daemon, case) {
            failures.push(format!(
                "#{i} {} [{}] ({} bytes): {why}",
                case.route.path(),
                case.name,
                case.body.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (seed {SEED:#x}):\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(40)].join("\n")
    );

    // Nothing reached the pool, and it is intact.
    let health = daemon.health();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["restarts"], 0, "{health}");
    daemon.assert_no_jobs("a bad body became a job");
    assert!(upstream.requests().is_empty());

    // Valid requests still succeed on every route.
    for route in Route::ALL {
        let res = http
            .post(daemon.url(route.path()))
            .header("content-type", "application/json; charset=utf-8")
            .body(to_bytes(&route.base()))
            .send()
            .unwrap();
        let status = res.status();
        let body: Value = res.json().unwrap();
        assert_eq!(status, 200, "{route:?}: {body}");
        match route {
            Route::Messages => {
                let text = body["content"][0]["text"].as_str().unwrap();
                assert!(text.contains("fuzz again"), "{body}");
            }
            Route::Chat => {
                let text = body["choices"][0]["message"]["content"].as_str().unwrap();
                assert!(text.contains("fuzz again"), "{body}");
            }
            Route::CountTokens => assert!(body["input_tokens"].as_u64().unwrap() > 0),
        }
    }
    let health = daemon.health();
    assert_eq!(health["restarts"], 0, "{health}");
    assert_eq!(health["jobs"]["completed"], 2, "{health}");
}
