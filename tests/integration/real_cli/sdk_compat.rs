//! The official Python SDKs (`anthropic`, `openai`, pinned by
//! `scripts/install-python-sdks.sh` into `.tools/pyenv`) against the daemon
//! with the real CLI: `tests/sdk_compat.py` makes the calls and checks what
//! the SDKs parse; this test starts the daemon and judges the exit status.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn official_python_sdks_work_against_the_daemon() {
    let python = python();
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let out = Command::new(&python)
        .arg(repo_path("tests/sdk_compat.py"))
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
    assert!(
        out.status.success(),
        "tests/sdk_compat.py failed ({}):\n{report}",
        out.status
    );
    println!("{report}");
    // The pool is whole afterwards. (`restarts` is not 0: a job with another
    // system prompt than an idle worker's retires and replaces it.)
    daemon.wait_ready(Duration::from_secs(20));
    let health = daemon.health();
    assert_eq!(health["status"], "ok", "{health}");
}
