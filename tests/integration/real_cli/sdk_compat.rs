//! The official Python SDKs (`anthropic`, `openai`, pinned by
//! `scripts/install-python-sdks.sh` into `.tools/pyenv`) against the daemon
//! with the real CLI: `tests/sdk_compat.py` makes the calls and checks what
//! the SDKs parse; this test starts the daemon and judges the exit status.

use std::time::Duration;

use crate::common::*;

#[test]
fn official_python_sdks_work_against_the_daemon() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    run_to_success(
        sdk_script("sdk_compat.py", &[&daemon.base]),
        "tests/sdk_compat.py",
    );
    // The pool is whole afterwards. (`restarts` is not 0: a job with another
    // system prompt than an idle worker's retires and replaces it.)
    daemon.wait_ready(Duration::from_secs(20));
    let health = daemon.health();
    assert_eq!(health["status"], "ok", "{health}");
}
