//! The lines written to the real CLI in the recorded sessions
//! (`tests/fixtures/cli-transcripts`), for tests of the typed lines.

use serde_json::Value;

/// Every line written to the CLI's stdin, over all recordings.
pub fn stdin_lines() -> Vec<Value> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cli-transcripts"
    );
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for l in text.lines().filter_map(|l| l.strip_prefix(">> ")) {
            lines.push(serde_json::from_str(l).unwrap());
        }
    }
    lines
}

/// The first recorded stdin line `pick` accepts (by the request id or user
/// text it carries).
pub fn stdin_line(pick: impl Fn(&Value) -> bool) -> Value {
    stdin_lines()
        .into_iter()
        .find(|v| pick(v))
        .expect("a recorded line")
}
