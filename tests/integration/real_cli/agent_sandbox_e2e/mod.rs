//! Agent mode contained, with the real CLI: what a job's tools try against
//! the host (reading outside the workspace, another worker's files, the
//! upstream credential; escaping through a symlink; leaving processes
//! behind) fails, and what a job is for (Bash, Read, Write, Edit in the
//! workspace, files kept between a worker's jobs, and only those) works. The fake upstream
//! makes the model call the CLI's own tools with `[[call:NAME:JSON]]`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

mod host;
mod jobs;
mod workspace;

fn agent_daemon(upstream: &FakeUpstream, root: &Path, pool: usize, extra: &str) -> Daemon {
    let toml = format!(
        "agent.enabled = true\nagent.workspace_root = {}\n{extra}",
        serde_json::to_string(&root.display().to_string()).unwrap()
    );
    let cfg = DaemonConfig::real(pool).with_toml(&toml);
    Daemon::start(cfg.with_client_key("sk-agent-client"), upstream)
}

/// The text of the reply to a prompt holding tool-call markers. The fake
/// model answers a tool round with `Tool results: <texts>`.
fn ask(daemon: &Daemon, text: &str) -> String {
    let res = daemon.post(&message_body(text));
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().unwrap();
    reply["content"][0]["text"].as_str().unwrap().to_string()
}

fn call(tool: &str, input: Value) -> String {
    format!("[[call:{tool}:{input}]]")
}

fn bash(command: &str) -> String {
    call("Bash", json!({"command": command, "description": "run"}))
}

/// `path` as a shell word the CLI's own analysis of Bash commands does not
/// recognise as a path (it asks the daemon about paths it recognises): the
/// sandbox, not that analysis, must stop what follows.
fn hidden(path: &str) -> String {
    let (head, tail) = path.split_at(path.len() / 2);
    format!("\"$(printf %s '{head}')$(printf %s '{tail}')\"")
}

/// A file outside every workspace, holding a unique secret.
fn secret_file(dir: &Path, name: &str) -> (String, String) {
    let secret = format!("SECRET-{name}-{}", std::process::id());
    let path = dir.join(name);
    std::fs::write(&path, &secret).unwrap();
    (path.display().to_string(), secret)
}

#[test]
fn without_bubblewrap_agent_mode_refuses_to_start() {
    // Port 0: the daemon listens before it checks the sandbox, and this test
    // also runs as `nobody` (below) while the root run goes on beside it.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_keys = [\"k\"]\n[claude]\ncommand = {:?}\n\
         [agent]\nenabled = true\nworkspace_root = {:?}\n",
        real_cli(),
        dir.path().join("ws").display().to_string()
    );
    std::fs::write(&config, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claude-pool"))
        .arg("--config")
        .arg(&config)
        .env("PATH", dir.path())
        .env_remove("CLAUDE_POOL_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apt-get install bubblewrap") && stderr.contains("agent.sandbox"),
        "{stderr}"
    );
}

/// A daemon run as root gets a different sandbox from one run by any other
/// user (see `AS_ROOT` in `src/worker/sandbox.rs`), so the checks above
/// must hold for both. Run as root, this runs them all again as `nobody`;
/// run as anyone else, they have just run unprivileged.
#[test]
fn every_check_holds_for_an_unprivileged_daemon_too() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    // nobody may not write the directory the tests were started in.
    let cwd = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        cwd.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // This module's tests only (the binary holds every integration test):
    // their names start with the module path below the crate's.
    let this_module = format!("{}::", module_path!().split_once("::").unwrap().1);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            &this_module,
            "--test-threads=1",
            "--skip",
            "every_check_holds_for",
        ])
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("setpriv (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok"),
        "as nobody:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran = stdout.matches("... ok").count();
    assert!(ran >= 10, "the checks ran as nobody: {stdout}");
}
