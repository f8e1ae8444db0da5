//! The lines of the real CLI's recorded sessions
//! (`tests/fixtures/cli-transcripts`), for tests of the typed lines.

use serde_json::Value;

/// Every recorded line in the direction `prefix` marks (`>> ` written to
/// the CLI's stdin, `<< ` read from its stdout), over all recordings.
fn lines(prefix: &str) -> Vec<String> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cli-transcripts"
    );
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        lines.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix(prefix))
                .map(str::to_string),
        );
    }
    lines
}

/// Every line the CLI wrote to its stdout, over all recordings.
pub fn stdout_lines() -> Vec<String> {
    lines("<< ")
}

/// Every line written to the CLI's stdin, over all recordings.
pub fn stdin_lines() -> Vec<Value> {
    lines(">> ")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The first recorded stdin line `pick` accepts (by the request id or user
/// text it carries).
pub fn stdin_line(pick: impl Fn(&Value) -> bool) -> Value {
    stdin_lines()
        .into_iter()
        .find(|v| pick(v))
        .expect("a recorded line")
}
