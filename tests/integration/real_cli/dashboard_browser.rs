//! The dashboard in a real browser (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver by `tests/dashboard_browser.py`)
//! against a daemon of two workers on two accounts with the real CLI and
//! the fake upstream, whose account `b` answers 429 (`retry-after: 60`). The
//! script signs in (a client key refused), checks the worker table, finds
//! an official SDK request in the live tail within 2 s, makes and revokes a
//! key in the page (the SDK then gets 401), watches `b`'s countdown and a
//! batch's progress bar reach 100 %. A second test restarts the daemon
//! under an open page and sees it reconnect by itself. Screenshots of each
//! view go to `target/tmp/dashboard-screenshots/`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const ADMIN: &str = "admin-browser-secret";
const CLIENT: &str = "sdk-user-secret";
const CLIENT_NAME: &str = "sdk-user";
const POOL_SIZE: usize = 2;

#[test]
fn the_dashboard_in_chromium() {
    let python = python();
    let upstream = FakeUpstream::start();
    upstream.limit_key("sk-b", 60, Duration::from_secs(1200));
    let state = tempfile::tempdir().unwrap();
    let store = state.path().join("store.db");
    let mut cfg = DaemonConfig::real(POOL_SIZE)
        .with_toml("claude.max_retries = 2")
        .with_toml(&format!("server.admin_keys = [\"{ADMIN}\"]"))
        .with_toml(&format!(
            "batches.store_path = {}",
            serde_json::to_string(&store.display().to_string()).unwrap()
        ))
        .with_account("a", "sk-a", 1)
        .with_account("b", "sk-b", 1);
    cfg.accounts_toml.push_str(&format!(
        "[[keys]]\nname = \"{CLIENT_NAME}\"\nsecret = \"{CLIENT}\"\n"
    ));
    cfg.client_key = Some(CLIENT.into());
    let daemon = Daemon::start(cfg, &upstream);
    let out = browser(&python, "tour", &daemon.base)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
    let report = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "tests/dashboard_browser.py failed:\n{report}"
    );
    println!("{report}");
}

/// The browser script for `scenario` against the daemon at `base`.
fn browser(python: &std::path::Path, scenario: &str, base: &str) -> Command {
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let mut cmd = Command::new(python);
    cmd.arg(repo_path("tests/dashboard_browser.py"))
        .args([scenario, base, ADMIN, CLIENT, CLIENT_NAME])
        .arg(POOL_SIZE.to_string())
        .arg("b")
        .arg(&shots)
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL");
    cmd
}

/// The page reconnects to a daemon restarted on the same address: a new
/// ticket, a new stream (its `hello` names a new boot), and the new
/// daemon's requests in the live tail.
#[test]
fn the_page_reconnects_after_a_daemon_restart() {
    let python = python();
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    // The same port for both runs, or the page's origin would change.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = DaemonConfig::fake(1)
        .with_toml(&format!("server.listen = \"127.0.0.1:{port}\""))
        .with_toml(&format!("server.admin_keys = [\"{ADMIN}\"]"));
    cfg.accounts_toml.push_str(&format!(
        "[[keys]]\nname = \"{CLIENT_NAME}\"\nsecret = \"{CLIENT}\"\n"
    ));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, settings_toml(&cfg, &upstream, &dir)).unwrap();
    let mut daemon = DaemonProcess::start(&config, dir.path().join("daemon1.log"));
    let mut script = browser(&python, "restart", &daemon.base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
    let mut said = String::new();
    let mut lines = BufReader::new(script.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line == "RESTART" {
            daemon.signal(libc::SIGTERM);
            daemon.child.wait().unwrap();
            daemon = DaemonProcess::start(&config, dir.path().join("daemon2.log"));
            writeln!(script.stdin.as_mut().unwrap()).unwrap();
        }
    }
    let out = script.wait_with_output().unwrap();
    let report = format!(
        "{said}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the restart scenario failed:\n{report}"
    );
    assert!(said.contains("ok after a restart"), "{report}");
    println!("{report}");
    drop(daemon);
}
