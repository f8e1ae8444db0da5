//! The `claude-pool` executable itself: configuration errors, refusal to
//! expose itself, and SIGTERM with a job in flight.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn daemon_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-pool"));
    cmd.env_remove("CLAUDE_POOL_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the daemon expecting it to refuse to start; returns its stderr.
fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "the daemon should have refused to start"
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "[pool]\nsize = 1\nworkers = 3\n");
    let err = refused(daemon_cmd().arg("--config").arg(&path));
    assert!(err.contains("workers"), "{err}");

    let path = write_config(&dir, "[pool]\nsize = 1\n");
    let err = refused(
        daemon_cmd()
            .arg("--config")
            .arg(&path)
            .env("CLAUDE_POOL__POOL__MAX_QUEUE", "lots"),
    );
    assert!(err.contains("max_queue"), "{err}");

    let err = refused(daemon_cmd().env("CLAUDE_POOL_CONFIG", dir.path().join("missing.toml")));
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn a_public_listener_needs_api_keys() {
    // Set through the environment, which also proves env overrides apply.
    let err = refused(daemon_cmd().env("CLAUDE_POOL__SERVER__LISTEN", "0.0.0.0:0"));
    assert!(err.contains("api_keys"), "{err}");
}

#[test]
fn a_missing_cli_is_named_at_startup() {
    let err = refused(
        daemon_cmd()
            .env("CLAUDE_POOL__SERVER__LISTEN", "127.0.0.1:0")
            .env("CLAUDE_POOL__CLAUDE__COMMAND", "/nonexistent/claude-xyz"),
    );
    assert!(err.contains("/nonexistent/claude-xyz"), "{err}");
}

#[test]
fn sigterm_lets_the_job_in_flight_finish_then_exits_cleanly() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = DaemonConfig::real(1).with_toml(&format!("server.listen = \"127.0.0.1:{port}\""));
    let path = write_config(&dir, &settings_toml(&cfg, &upstream, &dir));
    let mut child = daemon_cmd().arg("--config").arg(&path).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = reqwest::blocking::get(format!("{base}/health"))
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|h| h["workers"]["ready"] == 1);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "daemon never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let job = std::thread::spawn({
        let url = format!("{base}/v1/messages");
        move || {
            let res = client()
                .post(url)
                .json(&message_body("finish me [[slow:100]]"))
                .send()
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().unwrap())
        }
    });
    std::thread::sleep(Duration::from_millis(600));
    // SAFETY: signalling the child this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (status, body) = job.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let text = body["content"][0]["text"].as_str().unwrap();
    assert!(text.ends_with("word19 "), "the job must complete: {text}");
    let exit = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(exit.success(), "exit {exit:?}: {stderr}");
    let needle = format!(
        "CLAUDE_CONFIG_DIR={}",
        dir.path().join("claude-config").display()
    );
    assert_no_processes_with_env(&needle, Duration::from_secs(5));
}

#[test]
fn workers_do_not_outlive_a_killed_daemon() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = DaemonConfig::fake(2).with_toml(&format!("server.listen = \"127.0.0.1:{port}\""));
    let path = write_config(&dir, &settings_toml(&cfg, &upstream, &dir));
    let mut child = daemon_cmd().arg("--config").arg(&path).spawn().unwrap();
    let needle = format!(
        "CLAUDE_CONFIG_DIR={}",
        dir.path().join("claude-config").display()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with_env(&needle).len() < 2 {
        assert!(Instant::now() < deadline, "workers never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One worker hangs mid-turn, deaf to its closed stdin.
    let url = format!("http://127.0.0.1:{port}/v1/messages");
    std::thread::spawn(move || {
        let _ = client().post(url).json(&message_body("[[hang]]")).send();
    });
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocking_get_json(&health)["workers"]["busy"] != 1 {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // No chance to clean up: the kernel must take the workers down with it.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_no_processes_with_env(&needle, Duration::from_secs(5));
}
