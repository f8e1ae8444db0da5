//! Between jobs: every job is followed by `/clear` and a conversation
//! boundary, and a `/clear` that keeps the conversation retires the worker.

use super::*;

#[test]
fn every_job_is_followed_by_clear_and_only_valid_json_is_written() {
    let upstream = FakeUpstream::start();
    let log = tempfile::NamedTempFile::new().unwrap();
    let daemon = Daemon::start(
        DaemonConfig::fake(1)
            .with_env("FAKE_CLAUDE_LOG", log.path().to_str().unwrap())
            .with_toml("pool.affinity = false"),
        &upstream,
    );
    for text in ["one", "two [[error:500]]", "three"] {
        let _ = daemon.post(&message_body(text));
    }
    daemon.wait_ready(Duration::from_secs(5));
    // Each job runs in a fresh conversation: the counter never passes 1.
    let body: Value = daemon.post(&message_body("four")).json().unwrap();
    assert!(
        body["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("fake reply #1:"),
        "{body}"
    );
    daemon.wait_ready(Duration::from_secs(5));
    let users: Vec<String> = stdin_log(log.path())
        .iter()
        .filter(|l| l["type"] == "user")
        .map(|l| l["message"]["content"].to_string())
        .collect();
    let prompts: Vec<&String> = users.iter().filter(|u| *u != "\"/clear\"").collect();
    assert_eq!(prompts.len(), 4, "{users:?}");
    // Every prompt is followed by a /clear before anything else is sent.
    for (i, line) in users.iter().enumerate() {
        if *line != "\"/clear\"" {
            assert_eq!(
                users.get(i + 1).map(String::as_str),
                Some("\"/clear\""),
                "a job must be followed by /clear: {users:?}"
            );
        }
    }
}

#[test]
fn clear_is_followed_by_a_conversation_boundary() {
    let upstream = FakeUpstream::start();
    let log = tempfile::NamedTempFile::new().unwrap();
    let daemon = Daemon::start(
        DaemonConfig::fake(1)
            .with_env("FAKE_CLAUDE_LOG", log.path().to_str().unwrap())
            .with_toml("pool.affinity = false"),
        &upstream,
    );
    for text in ["one", "two"] {
        assert_eq!(daemon.post(&message_body(text)).status(), 200);
    }
    daemon.wait_ready(Duration::from_secs(5));
    let lines = stdin_log(log.path());
    let clears: Vec<usize> = (lines.iter().enumerate())
        .filter(|(_, l)| l["message"]["content"] == "/clear")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(clears.len(), 2, "{lines:?}");
    for i in clears {
        let next = &lines[i + 1];
        assert_eq!(
            (&next["type"], &next["subtype"]),
            (&json!("system"), &json!("compact_boundary")),
            "/clear must be followed by a boundary: {lines:?}"
        );
    }
}

#[test]
fn a_clear_that_keeps_the_conversation_retires_the_worker() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1)
            .with_env("FAKE_CLAUDE_IGNORE_CLEAR", "1")
            .with_toml("pool.affinity = false"),
        &upstream,
    );
    assert_eq!(daemon.post(&message_body("secret one")).status(), 200);
    // The /clear result shows the same session: the worker is replaced.
    daemon.wait_health(Duration::from_secs(30), |h| {
        h["restarts"] == 1 && h["workers"]["ready"] == 1
    });
    let body: Value = daemon
        .post(&message_body("two [[history]]"))
        .json()
        .unwrap();
    let text = body["content"][0]["text"].as_str().unwrap();
    assert_eq!(text, "two [[history]]", "a fresh conversation: {text}");
}
