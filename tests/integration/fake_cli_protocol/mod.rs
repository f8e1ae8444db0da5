//! The fake CLI (`tests/bin/fake_claude/`) behaves like the recorded real
//! one, so tests built on it test the daemon against the real protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use claude_pool::worker::protocol::{parse_line, CliMessage};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A running fake CLI with its stdout lines parsed on a reader thread.
struct Fake {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
}

impl Fake {
    fn spawn() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fake-claude"))
            .args(["--verbose", "--tools", "", "--model", "m-test"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fake-claude");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                // The daemon's own parser must accept every line, typed.
                let parsed = parse_line(line.as_bytes()).expect("a JSON line");
                assert!(
                    !matches!(parsed, Ok(CliMessage::Unknown) | Err(_)),
                    "{line}"
                );
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Fake {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, value: Value) {
        self.send_raw(&value.to_string());
    }

    fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn user(&mut self, text: &str) {
        self.send(
            json!({"type": "user", "message": {"role": "user", "content": text},
            "parent_tool_use_id": null, "session_id": ""}),
        );
    }

    fn control(&mut self, id: &str, subtype: &str) {
        self.send(json!({"type": "control_request", "request_id": id,
            "request": {"subtype": subtype}}));
    }

    /// Lines up to and including the first that matches `done`.
    fn until(&self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|e| panic!("{e} after {seen:#?}"));
            let last = done(&line);
            seen.push(line);
            if last {
                return seen;
            }
        }
    }

    fn turn(&self) -> Vec<Value> {
        self.until(|l| l["type"] == "result")
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("fake-claude did not exit");
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text_deltas(lines: &[Value]) -> String {
    lines
        .iter()
        .filter(|l| l["event"]["delta"]["type"] == "text_delta")
        .map(|l| l["event"]["delta"]["text"].as_str().unwrap())
        .collect()
}

fn kinds(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| match l["type"].as_str().unwrap() {
            "stream_event" => l["event"]["type"].as_str().unwrap().to_string(),
            "system" => format!("system/{}", l["subtype"].as_str().unwrap()),
            other => other.to_string(),
        })
        .collect()
}

#[test]
fn probe_then_turn_streams_like_the_cli_and_eof_exits_0() {
    let mut fake = Fake::spawn();
    fake.control("probe-1", "get_binary_version");
    let reply = fake.until(|_| true).remove(0);
    assert_eq!(reply["response"]["request_id"], "probe-1");
    assert_eq!(reply["response"]["subtype"], "success");
    assert!(reply["response"]["response"]["version"].is_string());

    fake.user("hello world");
    let lines = fake.turn();
    assert_eq!(
        kinds(&lines),
        [
            "system/init",
            "system/status",
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "assistant",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "result"
        ]
    );
    assert_eq!(lines[0]["model"], "m-test");
    let start = &lines[2]["event"]["message"];
    assert_eq!(start["model"], "m-test");
    assert_eq!(start["usage"]["input_tokens"], 12);
    let result = lines.last().unwrap();
    assert_eq!(text_deltas(&lines), "fake reply #1: hello world");
    assert_eq!(result["result"], "fake reply #1: hello world");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["usage"]["output_tokens"], 5);
    assert_eq!(result["terminal_reason"], "completed");

    drop(fake.stdin.take());
    assert_eq!(fake.wait().code(), Some(0));
}

#[test]
fn clear_resets_the_turn_counter_history_and_session() {
    let mut fake = Fake::spawn();
    fake.user("first");
    assert_eq!(
        fake.turn().last().unwrap()["result"],
        "fake reply #1: first"
    );
    fake.user("second");
    let before = fake.turn();
    assert_eq!(before.last().unwrap()["result"], "fake reply #2: second");

    fake.user("/clear");
    let clear = fake.turn();
    assert_eq!(kinds(&clear), ["system/init", "assistant", "result"]);
    assert_eq!(clear[1]["message"]["model"], "<synthetic>");
    assert_eq!(clear[2]["num_turns"], 0);
    assert_eq!(clear[2]["result"], "");
    assert_ne!(clear[0]["session_id"], before[0]["session_id"]);

    fake.user("third");
    assert_eq!(
        fake.turn().last().unwrap()["result"],
        "fake reply #1: third"
    );
    fake.user("[[history]]");
    assert_eq!(fake.turn().last().unwrap()["result"], "third | [[history]]");
}

#[test]
fn invalid_json_on_stdin_exits_1() {
    let mut fake = Fake::spawn();
    fake.send_raw("{not json");
    assert_eq!(fake.wait().code(), Some(1));
    let mut stderr = String::new();
    fake.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("Error parsing streaming input line"),
        "{stderr}"
    );
}

#[test]
fn interrupt_stops_a_slow_turn_within_one_delay() {
    let mut fake = Fake::spawn();
    fake.user("[[slow:200]] take your time");
    fake.until(|l| l["event"]["type"] == "content_block_delta");
    let sent = Instant::now();
    fake.control("int-1", "interrupt");
    let lines = fake.turn();
    // Unstopped, the 20 words would take 3.8 s more.
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        kinds(&lines),
        ["control_response", "assistant", "user", "result"]
    );
    assert_eq!(lines[0]["response"]["request_id"], "int-1");
    assert_eq!(
        lines[2]["message"]["content"][0]["text"],
        "[Request interrupted by user]"
    );
    let result = &lines[3];
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["terminal_reason"], "aborted_streaming");

    // The process stays usable.
    fake.user("again");
    assert_eq!(
        fake.turn().last().unwrap()["result"],
        "fake reply #2: again"
    );
}

#[test]
fn upstream_error_and_crash_markers() {
    let mut fake = Fake::spawn();
    fake.user("[[error:529]] please");
    let lines = fake.turn();
    assert_eq!(
        kinds(&lines),
        ["system/init", "system/status", "assistant", "result"]
    );
    assert_eq!(lines[2]["message"]["model"], "<synthetic>");
    let result = &lines[3];
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 529);
    assert_eq!(result["result"], "API Error: 529 fake error");

    fake.user("[[crash]]");
    let lines = fake.until(|l| l["event"]["type"] == "content_block_delta");
    assert_eq!(text_deltas(&lines), "fake ");
    assert_eq!(fake.wait().code(), Some(3));
}

/// Every key path of `value` with the JSON type found there (array items
/// merged under `[]`), e.g. `message.usage.input_tokens: number`.
fn shape(value: &Value) -> std::collections::BTreeSet<String> {
    fn walk(value: &Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{path}[]"), out);
                }
                "array"
            }
            Value::Object(map) => {
                for (key, v) in map {
                    let sub = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(v, &sub, out);
                }
                "object"
            }
        };
        if !path.is_empty() {
            out.insert(format!("{path}: {kind}"));
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// The lines with each run of deltas cut to its first (texts differ).
fn collapsed(lines: &[Value]) -> Vec<&Value> {
    let mut out: Vec<&Value> = Vec::new();
    for line in lines {
        let delta = |l: &Value| l["event"]["type"] == "content_block_delta";
        if delta(line) && out.last().is_some_and(|l| delta(l)) {
            continue;
        }
        out.push(line);
    }
    out
}

/// The key paths of CLI output that the daemon's parser reads.
const READ_BY_THE_DAEMON: &[&str] = &[
    "subtype",
    "session_id",
    "model",
    "is_error",
    "api_error_status",
    "num_turns",
    "result",
    "stop_reason",
    "terminal_reason",
    "usage.input_tokens",
    "usage.output_tokens",
    "response.subtype",
    "response.request_id",
    "event.type",
    "event.index",
    "event.delta.type",
    "event.delta.text",
    "event.delta.stop_reason",
    "event.content_block.type",
    "event.message.id",
    "event.message.model",
    "event.message.usage.input_tokens",
    "event.usage.output_tokens",
    "message.id",
    "message.model",
    "message.role",
    "message.content",
    "message.content[].type",
    "message.content[].text",
    "message.usage.input_tokens",
];
/// The recorded exchange of `fixture`: (stdin line, stdout lines after it).
fn recorded(fixture: &str) -> Vec<(Value, Vec<Value>)> {
    let path = format!(
        "{}/tests/fixtures/cli-transcripts/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut out: Vec<(Value, Vec<Value>)> = Vec::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        if let Some(sent) = line.strip_prefix(">> ") {
            out.push((serde_json::from_str(sent).unwrap(), Vec::new()));
        } else if let Some(printed) = line.strip_prefix("<< ") {
            let last = out.last_mut().expect("a line sent first");
            last.1.push(serde_json::from_str(printed).unwrap());
        }
    }
    out
}

#[test]
fn the_fake_prints_the_recorded_shapes() {
    // Each recorded exchange, replayed to the fake; a prompt gets the
    // marker that makes the fake do what the real upstream was scripted to.
    // (05, thinking, is not compared: the fake does not think.)
    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("01-turn-probe-init-clear.jsonl", &[]),
        (
            "02-upstream-error-400.jsonl",
            &[("please fail with 400", "[[error:400]] please fail with 400")],
        ),
        (
            "04-interrupt-mid-stream.jsonl",
            &[("take your time", "[[slow:200]] take your time")],
        ),
    ];
    let mut differences = Vec::new();
    for (fixture, markers) in cases {
        let mut fake = Fake::spawn();
        for (i, (mut sent, real)) in recorded(fixture).into_iter().enumerate() {
            if let Some(text) = sent["message"]["content"].as_str() {
                if let Some((_, marked)) = markers.iter().find(|(t, _)| *t == text) {
                    sent["message"]["content"] = json!(marked);
                }
            }
            if sent["request"]["subtype"] == "interrupt" {
                // Recorded after three deltas; the fake has sent its first.
                fake.until(|l| l["event"]["type"] == "content_block_delta");
            }
            fake.send(sent.clone());
            let Some(last_kind) = kinds(&real).last().cloned() else {
                continue;
            };
            let printed = fake.until(|l| kinds(std::slice::from_ref(l))[0] == last_kind);
            let (real, printed) = (collapsed(&real), collapsed(&printed));
            let kinds_of =
                |lines: &[&Value]| kinds(&lines.iter().map(|l| (*l).clone()).collect::<Vec<_>>());
            if kinds_of(&real) != kinds_of(&printed) {
                differences.push(format!(
                    "{fixture} #{i} lines:\n  real {:?}\n  fake {:?}",
                    kinds_of(&real),
                    kinds_of(&printed)
                ));
                continue;
            }
            for (r, f) in real.iter().zip(&printed) {
                let fake_shape = shape(f);
                let missing: Vec<String> = shape(r)
                    .into_iter()
                    .filter(|p| {
                        let path = p.split(": ").next().unwrap_or_default();
                        READ_BY_THE_DAEMON.contains(&path)
                    })
                    .filter(|p| !fake_shape.contains(p))
                    .collect();
                if !missing.is_empty() {
                    differences.push(format!(
                        "{fixture} #{i} {}: the fake lacks {missing:?}",
                        kinds(std::slice::from_ref(*f))[0]
                    ));
                }
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
