//! Named keys, per-key limits and the admin API end to end: the official
//! Python SDKs against the real CLI (`tests/keys_sdk.py`: limits with 429,
//! Retry-After and rate-limit headers, reset after the window; model
//! restriction; admin vs client keys; keys made, changed and revoked through
//! the admin API; expiry). Restart and reload are the fast tier's `keys_e2e`.

use std::process::Command;

use crate::common::*;
use crate::keys_e2e::{config, ALICE_BOB};

#[test]
fn keys_limits_and_the_admin_api_through_the_python_sdks() {
    let python = python();
    let upstream = FakeUpstream::start();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        config(DaemonConfig::real(1), ALICE_BOB, &state.path().join("s.db")),
        &upstream,
    );
    let out = Command::new(&python)
        .arg(repo_path("tests/keys_sdk.py"))
        .arg(&daemon.base)
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
    let report = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tests/keys_sdk.py failed:\n{report}");
    println!("{report}");
}
