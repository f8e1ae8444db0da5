//! The fake CLI (`tests/bin/fake_claude/`) behaves like the recorded real
//! one, so tests built on it test the daemon against the real protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use claude_pool::worker::protocol::{parse_line, CliMessage};
use serde_json::{json, Value};

mod behaviour;
mod recorded_shapes;

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
