//! What the real CLI itself prints when the upstream's stream breaks,
//! recorded by hand for the docs and the fixtures.

use super::*;

/// Runs the real CLI (as workers run it) on one prompt against `upstream`
/// and returns the exchange in the fixtures' form: `>> ` the stdin line,
/// `<< ` each stdout line up to the `result`, working directory neutral.
fn cli_transcript(upstream: &FakeUpstream, prompt: &str) -> Vec<String> {
    let config = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::common::real_cli())
        .args(claude_pool::worker::spawn::LEAN_FLAGS)
        .args([
            "--input-format",
            "stream-json",
            "--include-partial-messages",
        ])
        .env("ANTHROPIC_BASE_URL", &upstream.url)
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("CLAUDE_CONFIG_DIR", config.path())
        .current_dir(config.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn claude");
    let line = serde_json::json!({"type": "user", "message": {"role": "user", "content": prompt},
        "parent_tool_use_id": null, "session_id": ""});
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{line}").unwrap();
    let mut lines = vec![format!(">> {line}")];
    let deadline = Instant::now() + Duration::from_secs(120);
    let neutral = config.path().display().to_string();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with(r#"{"type":"result""#);
        lines.push(format!(
            "<< {}",
            line.replace(&neutral, "/var/lib/claude-pool/work")
        ));
        if done || Instant::now() > deadline {
            break;
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// What the real CLI prints when the upstream's stream breaks: the source
/// of `docs/cli-protocol.md` §12, "Upstream stream interrupted mid-way", and of
/// the `stream-cut-*` fixtures. With `TRANSCRIPT_DIR` set, each case is written
/// there as `<name>.jsonl`; otherwise printed.
#[test]
#[ignore = "records what the real CLI prints; run by hand"]
fn record_cli_transcripts_of_broken_streams() {
    let upstream = FakeUpstream::start();
    let tool = r#"[[force:lookup:{"q":"abcdefgh"}]]"#;
    for (name, prompt) in [
        ("text-cut", format!("text cut {} [[cut:3]]", faults::once())),
        (
            "error-event",
            format!("error event {} [[sse_error:3]]", faults::once()),
        ),
        (
            "same-id",
            format!("same id {} [[reuse_id]] [[cut:3]]", faults::once()),
        ),
        (
            "tool-cut",
            format!(
                "tool cut {} [[cut:1]] [[tools_only]] {tool}",
                faults::once()
            ),
        ),
        (
            "cut-after-a-block",
            format!("cut after a block {} [[cut:3]] [[think]]", faults::once()),
        ),
        ("drop", "drop [[drop]]".to_string()),
    ] {
        let lines = cli_transcript(&upstream, &prompt).join("\n") + "\n";
        match std::env::var("TRANSCRIPT_DIR") {
            Ok(dir) => std::fs::write(format!("{dir}/{name}.jsonl"), lines).unwrap(),
            Err(_) => println!("===== {name}\n{lines}"),
        }
    }
}
