//! The `claude-pool` executable itself, with no CLI or the fake one:
//! configuration errors, refusal to expose itself, workers dying with it,
//! and workers' stderr in its log. SIGTERM with a job in flight is
//! `real_cli::daemon_binary`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

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
fn agent_mode_needs_client_keys() {
    let err = refused(
        daemon_cmd()
            .env("CLAUDE_POOL__SERVER__LISTEN", "127.0.0.1:0")
            .env("CLAUDE_POOL__AGENT__ENABLED", "true"),
    );
    assert!(
        err.contains("agent mode without client keys") && err.contains("server.api_keys"),
        "{err}"
    );
}

#[test]
fn cors_origins_on_a_keyless_daemon_need_an_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[server]\nlisten = \"127.0.0.1:0\"\ncors_allowed_origins = [\"*\"]\n",
    );
    let err = refused(daemon_cmd().arg("--config").arg(&path));
    assert!(
        err.contains("cors_allowed_origins") && err.contains("server.allow_keyless_cors"),
        "{err}"
    );
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

/// The executable with `cfg` (on port 0), its directory and its config.
pub(crate) fn start_binary(
    cfg: DaemonConfig,
    upstream: &FakeUpstream,
) -> (DaemonProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg.with_toml("server.listen = \"127.0.0.1:0\"");
    let path = write_config(&dir, &settings_toml(&cfg, upstream, &dir));
    let daemon = DaemonProcess::start(&path, dir.path().join("daemon.log"));
    (daemon, dir)
}

pub(crate) fn config_dir_needle(dir: &tempfile::TempDir) -> String {
    format!(
        "CLAUDE_CONFIG_DIR={}",
        dir.path().join("claude-config").display()
    )
}

#[test]
fn workers_do_not_outlive_a_killed_daemon() {
    let upstream = FakeUpstream::start();
    let (mut daemon, dir) = start_binary(DaemonConfig::fake(2), &upstream);
    let needle = config_dir_needle(&dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with_env(&needle).len() < 2 {
        assert!(Instant::now() < deadline, "workers never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One worker hangs mid-turn, deaf to its closed stdin.
    let url = daemon.url("/v1/messages");
    std::thread::spawn(move || {
        let _ = client().post(url).json(&message_body("[[hang]]")).send();
    });
    daemon.wait_health("the job started", |h| h["workers"]["busy"] == 1);
    // No chance to clean up: the kernel must take the workers down with it.
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert_no_processes_with_env(&needle, Duration::from_secs(5));
}

#[test]
fn worker_stderr_is_logged_past_bytes_that_are_not_utf8() {
    let upstream = FakeUpstream::start();
    let (mut daemon, _dir) = start_binary(DaemonConfig::fake(1), &upstream);
    daemon.wait_health("a ready worker", |h| h["workers"]["ready"] == 1);
    let res = client()
        .post(daemon.url("/v1/messages"))
        .json(&message_body("noisy stderr [[stderr-bytes]]"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let bad = daemon.wait_log("not UTF-8", Duration::from_secs(10));
    assert!(
        bad.contains("worker-1 stderr: fake-claude: \u{fffd}\u{fffd}"),
        "{bad}"
    );
    daemon.wait_log(
        "worker-1 stderr: fake-claude: stderr after the bad bytes",
        Duration::from_secs(10),
    );
}
