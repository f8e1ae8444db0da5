//! The official Python SDKs (`anthropic`, `openai`, pinned by
//! `scripts/install-python-sdks.sh` into `.tools/pyenv`) against the daemon
//! with the real CLI: `tests/sdk_compat.py` makes the calls and checks what
//! the SDKs parse; this test starts the daemon and judges the exit status.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's interpreter; a missing one fails the test, never skips it.
fn python() -> PathBuf {
    let python = root().join(".tools/pyenv/bin/python");
    assert!(
        python.exists(),
        "no Python SDK virtualenv at {}: run scripts/install-python-sdks.sh \
         (scripts/test.sh does); it needs python3 with the venv module \
         (Debian/Ubuntu: apt-get install python3 python3-venv)",
        python.display()
    );
    python
}

#[test]
fn official_python_sdks_work_against_the_daemon() {
    let python = python();
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let out = Command::new(&python)
        .arg(root().join("tests/sdk_compat.py"))
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
