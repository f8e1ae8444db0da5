//! Named keys, per-key limits and the admin API end to end: the official
//! Python SDKs against the real CLI (`tests/keys_sdk.py`: limits with 429,
//! Retry-After and rate-limit headers, reset after the window; model
//! restriction; admin vs client keys; keys made, changed and revoked through
//! the admin API; expiry). Restart and reload are the fast tier's `keys_e2e`.

use crate::common::*;
use crate::keys_e2e::{config, ALICE_BOB};

#[test]
fn keys_limits_and_the_admin_api_through_the_python_sdks() {
    let upstream = FakeUpstream::start();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        config(DaemonConfig::real(1), ALICE_BOB, &state.path().join("s.db")),
        &upstream,
    );
    let script = sdk_script("keys_sdk.py", &[&daemon.base]);
    run_to_success(script, "tests/keys_sdk.py");
}
