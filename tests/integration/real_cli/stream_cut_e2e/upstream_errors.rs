//! Upstream errors that are not a broken stream: a 529 says when to retry, a
//! dropped connection is a bad gateway, both counted.

use super::*;

/// The value of `claude_pool_upstream_errors_total{kind="KIND"}`, 0 if absent.
fn upstream_errors(daemon: &Daemon, kind: &str) -> f64 {
    let prefix = format!("claude_pool_upstream_errors_total{{kind=\"{kind}\"}} ");
    daemon
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

#[test]
fn an_upstream_529_says_when_to_retry_and_a_dropped_connection_is_a_bad_gateway() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);

    let res = daemon.post(&crate::common::message_body("busy [[status:529]]"));
    assert_eq!(res.status(), 529);
    let after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        after.is_some_and(|s| s.parse::<u64>().unwrap() > 0),
        "{:?}",
        res.headers()
    );

    // The connection closes before any byte (the CLI gets ECONNRESET).
    let res = daemon.post(&crate::common::message_body("gone [[drop]]"));
    assert_eq!(res.status(), 502);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert_eq!(upstream_errors(&daemon, "upstream_connection"), 1.0);
    assert_eq!(upstream_errors(&daemon, "timeout"), 0.0);

    // A stream broken off after part of the answer went out counts the same.
    let request = Api::Messages.request(&format!("cut {} [[cut:3]]", faults::once()), false, true);
    let events = post_stream(&daemon, Api::Messages, &request).unwrap();
    assert_eq!(Api::Messages.stream_end(&events), Ok(StreamEnd::Failed));
    assert_eq!(upstream_errors(&daemon, "upstream_connection"), 2.0);
}
