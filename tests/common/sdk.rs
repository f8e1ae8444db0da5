//! The scripts the tests run with the official SDKs (`tests/*.py`): the SDK
//! virtualenv's Python, pointed at a daemon only by the script's arguments
//! (the SDKs' own environment variables removed), output unbuffered.

use std::process::{Command, Output};

use super::{python, repo_path};

/// `tests/<script> <args…>` ready to run.
pub fn sdk_script(script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(repo_path(&format!("tests/{script}")))
        .args(args)
        .env("PYTHONUNBUFFERED", "1");
    for var in [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A finished script's stdout, then its stderr.
pub fn report(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` (a [`sdk_script`]) to its end and fails the test, with the
/// script's output, unless it succeeds; prints that output and returns it.
pub fn run_to_success(mut cmd: Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    let report = report(&out);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{report}",
        out.status
    );
    println!("{report}");
    out
}
