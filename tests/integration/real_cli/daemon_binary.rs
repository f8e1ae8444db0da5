//! The `claude-pool` executable with the real CLI: SIGTERM lets the job in
//! flight finish, then it exits cleanly. The rest of the executable's tests
//! are the fast tier's `daemon_binary`.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::daemon_binary::{config_dir_needle, start_binary};
use serde_json::Value;

#[test]
fn sigterm_lets_the_job_in_flight_finish_then_exits_cleanly() {
    let upstream = FakeUpstream::start();
    let (mut daemon, dir) = start_binary(DaemonConfig::real(1), &upstream);
    daemon.wait_health("a ready worker", |h| h["workers"]["ready"] == 1);
    let job = std::thread::spawn({
        let url = daemon.url("/v1/messages");
        move || {
            let res = client()
                .post(url)
                .json(&message_body("finish me [[slow:100]]"))
                .send()
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().unwrap())
        }
    });
    // The job is in flight once the upstream has its request (its 20 words
    // then take 2 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while upstream.message_calls().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the job never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.signal(libc::SIGTERM);
    let (status, body) = job.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let text = body["content"][0]["text"].as_str().unwrap();
    assert!(text.ends_with("word19 "), "the job must complete: {text}");
    let exit = daemon.child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}: {}", daemon.log_text());
    assert!(
        daemon.log_text().contains("shutdown requested"),
        "{}",
        daemon.log_text()
    );
    assert_no_processes_with_env(&config_dir_needle(&dir), Duration::from_secs(5));
}
