//! The official Python SDK (`tests/batches_sdk.py`) through a whole batch's
//! life and a cancel.

use super::*;

fn run_sdk_scenario(scenario: &str) {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let script = sdk_script("batches_sdk.py", &[&daemon.base, scenario]);
    run_to_success(script, &format!("tests/batches_sdk.py {scenario}"));
}

#[test]
fn the_python_sdk_runs_a_batch_from_create_to_delete() {
    run_sdk_scenario("lifecycle");
}

#[test]
fn the_python_sdk_cancels_a_batch_mid_way() {
    run_sdk_scenario("cancel");
}
