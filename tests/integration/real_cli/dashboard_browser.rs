//! The dashboard in a real browser (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver by `tests/dashboard_browser.py`)
//! against a daemon of two workers on two accounts with the real CLI and
//! the fake upstream, whose account `b` answers 429 (`retry-after: 60`). The
//! script signs in (a client key refused), checks the worker table, finds
//! an official SDK request in the live tail within 2 s, makes and revokes a
//! key in the page (the SDK then gets 401), watches `b`'s countdown and a
//! batch's progress bar reach 100 %. Screenshots of each view go to
//! `target/tmp/dashboard-screenshots/`.

use std::process::Command;
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
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let out = Command::new(&python)
        .arg(repo_path("tests/dashboard_browser.py"))
        .args([&daemon.base, ADMIN, CLIENT, CLIENT_NAME])
        .arg(POOL_SIZE.to_string())
        .arg("b")
        .arg(&shots)
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
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
