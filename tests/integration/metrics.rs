//! `GET /metrics`: the Prometheus text after real traffic — request
//! counters by route and status, latency and time-to-first-token histograms,
//! tokens, upstream errors, and the pool's gauges.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text format's sample lines (`name{k="v",...} value`); panics
/// on a line that is neither a sample nor a comment.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value: {line}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                    let labels = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair
                                .split_once("=\"")
                                .unwrap_or_else(|| panic!("bad label: {line}"));
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name, labels)
                }
            };
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
                "bad metric name: {line}"
            );
            (name.to_string(), labels, value)
        })
        .collect()
}

/// The value of `name` with exactly `labels`, if present.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == wanted)
        .map(|(_, _, v)| *v)
}

fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn metrics_count_requests_tokens_errors_and_show_the_pool() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let post = |body: &serde_json::Value| daemon.post(body);

    let ok = post(&message_body("count these words please"));
    assert_eq!(ok.status(), 200);
    let _ = ok.text();
    let mut stream = message_body("and a stream");
    stream["stream"] = json!(true);
    let streamed = post(&stream);
    assert_eq!(streamed.status(), 200);
    let _ = streamed.text();
    let failed = post(&message_body("overloaded [[error:529]]"));
    assert_eq!(failed.status(), 529);
    let _ = failed.text();

    // Latency is recorded when a body is done and job counts when the worker
    // reports: poll briefly until everything has landed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let res = client().get(daemon.url("/metrics")).send().unwrap();
        assert_eq!(res.status(), 200);
        let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let samples = parse(&res.text().unwrap());
        let latency = value(
            &samples,
            "claude_pool_http_request_duration_seconds_count",
            &[("route", "/v1/messages"), ("dialect", "anthropic")],
        );
        let jobs = value(&samples, "claude_pool_jobs_total", &[("outcome", "failed")]);
        if latency == Some(3.0) && jobs == Some(1.0) {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never settled: {samples:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let requests = |status: &str| {
        value(
            &samples,
            "claude_pool_http_requests_total",
            &[
                ("route", "/v1/messages"),
                ("dialect", "anthropic"),
                ("status", status),
            ],
        )
    };
    assert_eq!(requests("200"), Some(2.0));
    assert_eq!(requests("529"), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "claude_pool_upstream_errors_total",
            &[("kind", "overloaded")]
        ),
        Some(1.0)
    );
    // The fake CLI reports input = prompt words + 10, output = reply words.
    let tokens = |direction| {
        value(
            &samples,
            "claude_pool_tokens_total",
            &[("direction", direction)],
        )
        .unwrap_or(0.0)
    };
    assert!(tokens("input") >= 20.0, "{samples:?}");
    assert!(tokens("output") > 0.0, "{samples:?}");
    for stream in ["true", "false"] {
        assert_eq!(
            value(
                &samples,
                "claude_pool_time_to_first_token_seconds_count",
                &[("dialect", "anthropic"), ("stream", stream)]
            ),
            Some(1.0),
            "stream={stream}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "claude_pool_jobs_total",
            &[("outcome", "completed")]
        ),
        Some(2.0)
    );

    // The pool, as /health sees it: one worker, in exactly one state.
    assert_eq!(sum(&samples, "claude_pool_workers"), 1.0, "{samples:?}");
    let idle = value(&samples, "claude_pool_workers", &[("state", "ready")]).unwrap()
        + value(&samples, "claude_pool_workers", &[("state", "bound")]).unwrap();
    assert_eq!(idle, 1.0);
    assert_eq!(
        value(&samples, "claude_pool_status", &[("status", "ok")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, "claude_pool_queue_depth", &[]), Some(0.0));
    assert_eq!(
        value(&samples, "claude_pool_queue_capacity", &[]),
        Some(32.0)
    );
    assert!(value(&samples, "claude_pool_worker_restarts_total", &[]).is_some());
    assert!(value(&samples, "claude_pool_worker_recycles_total", &[]).is_some());
    // Scrapes are counted under their own route (each after it answered).
    let text = daemon.metrics();
    assert!(value(
        &parse(&text),
        "claude_pool_http_requests_total",
        &[
            ("route", "/metrics"),
            ("dialect", "none"),
            ("status", "200")
        ]
    )
    .is_some_and(|n| n >= 1.0));
}
