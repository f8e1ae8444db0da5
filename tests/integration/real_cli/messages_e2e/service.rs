//! The daemon around the turns: request ids, and every CLI process stopped
//! at shutdown.

use super::*;

#[test]
fn request_ids_are_echoed_or_generated() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let res = client()
        .get(daemon.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    assert_eq!(res.headers()["request-id"], "abc-123");
    let head = client().head(daemon.url("/health")).send().unwrap();
    assert_eq!(head.status(), 200, "HEAD /health for load balancers");
    let res = client().get(daemon.url("/health")).send().unwrap();
    assert!(res.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let h: Value = res.json().unwrap();
    for key in [
        "status",
        "workers",
        "queue",
        "jobs",
        "restarts",
        "uptime_secs",
        "version",
    ] {
        assert!(h.get(key).is_some(), "{key} missing from {h}");
    }
    for key in ["total", "ready", "busy", "starting"] {
        assert!(h["workers"].get(key).is_some(), "workers.{key} missing");
    }
}

#[test]
fn shutdown_stops_every_cli_process() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let needle = format!("CLAUDE_CONFIG_DIR={}", daemon.config_dir());
    assert_eq!(
        root_processes_with_env(&needle).len(),
        2,
        "two workers should be running"
    );
    assert_eq!(daemon.post(&message_body("one job")).status(), 200);
    daemon.stop().expect("clean stop");
    assert_no_processes_with_env(&needle, Duration::from_secs(5));
}
