//! `fake-claude`: a stand-in for the `claude` CLI in stream-json mode, for
//! integration tests. It speaks the same line protocol as the recorded
//! sessions in `tests/fixtures/cli-transcripts/` (one JSON object per line on
//! stdin and stdout, stdout flushed per line) and injects faults on demand.
//!
//! # Protocol
//! - Control requests: `get_binary_version`, `initialize` (remembers the first
//!   `systemPrompt`), `set_model` (prints the `isReplay` user line first),
//!   `set_max_thinking_tokens`, `set_permission_mode`, `mcp_set_servers`,
//!   `mcp_status`, `interrupt` (aborts a streaming turn); any other subtype
//!   gets `Unsupported control request subtype: X`.
//! - A user message `/clear` (or whose last text block is `/clear`) starts a
//!   new conversation: new session_id, turn counter and history reset.
//! - A `system` line of subtype `compact_boundary` hides the conversation so
//!   far from the model, as the real CLI does: history reset (no output).
//! - Any other user message runs a turn replying
//!   `fake reply #N: <last text block, trimmed, ≤200 chars>`, N counting turns
//!   since the last `/clear`. Usage: input = words in the prompt + 10,
//!   output = words in the reply.
//! - Invalid JSON on stdin: `Error parsing streaming input line: …` on stderr,
//!   exit 1. Unknown `type`: ignored. EOF: exit 0 once queued turns are done.
//! - Arguments are ignored except `--model X` / `--model=X`, the initial model.
//!
//! # Markers (anywhere in the prompt's text)
//! - `[[history]]`: the reply is every user text of this conversation, ` | `-joined.
//! - `[[system]]`: the reply is the system prompt received by `initialize`.
//! - `[[error:STATUS]]`: an upstream error turn (synthetic assistant, then
//!   `result` success/`is_error:true`, `api_error_status:STATUS`).
//! - `[[hang]]`: `message_start`, then silence forever (interrupt ignored).
//! - `[[crash]]`: `message_start`, one text delta, then exit code 3.
//! - `[[slow:MS]]`: the reply is padded to ≥20 words, MS ms between deltas;
//!   an `interrupt` stops it within one delay.
//! - `[[garbage]]`: first a non-JSON line, a JSON line of unknown type and a
//!   ~2 MB JSON line of unknown type, then the normal turn.
//! - `[[flood:MIB]]`: first a JSON line of unknown type MIB MiB long.
//! - `[[stderr-bytes]]`: first a stderr line that is not UTF-8, then
//!   `fake-claude: stderr after the bad bytes` on stderr.
//! - `[[orphan]]`: spawns `sleep 300` in its own session and appends
//!   `orphan-pid=NNN` to the reply.
//! - `[[exit]]`: exit 0 right after the turn's `result` line.
//!
//! # Environment
//! - `FAKE_CLAUDE_BOOT_MS=N`: sleep N ms before reading stdin (slow boot).
//! - `FAKE_CLAUDE_EXIT_MS=N`: at stdin EOF, wait N ms before exiting, with
//!   SIGTERM ignored meanwhile (slow exit; SIGKILL still ends it).
//! - `FAKE_CLAUDE_FAIL_BOOT=1`: print an error to stderr and exit 1 at once.
//! - `FAKE_CLAUDE_LOG=<path>`: append every stdin line received to that file.
//! - `FAKE_CLAUDE_RSS_MB=N`: allocate and touch N MiB at start.
//! - `FAKE_CLAUDE_IGNORE_CLEAR=1`: `/clear` is answered (init, synthetic
//!   assistant, result) but changes nothing: same session_id and history, as
//!   a CLI whose `/clear` stopped working would.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Prints one line whose top-level keys keep the order written, as the real
/// CLI's do (`"type"` first); nested values are plain `json!` values.
macro_rules! emit {
    ($($key:literal : $value:tt),* $(,)?) => {{
        let fields: Vec<String> = vec![$(format!("{:?}:{}", $key, json!($value))),*];
        print_line(&format!("{{{}}}", fields.join(",")));
    }};
}

/// The synthetic user text the CLI records when a turn is interrupted.
const INTERRUPTED: &str = "[Request interrupted by user]";
/// For `timestamp` fields: right shape, fixed value (nothing reads it).
const TIMESTAMP: &str = "2026-01-01T00:00:00.000Z";

mod process;
mod turn;
mod wire;

use process::{allocate_mib, env_u64, exit_slowly, spawn_orphan};
use wire::{marker_arg, print_line, usage, uuid, word_pieces, MESSAGES};

fn main() {
    if std::env::var("FAKE_CLAUDE_FAIL_BOOT").is_ok_and(|v| v == "1") {
        eprintln!("fake-claude: boot failure requested by FAKE_CLAUDE_FAIL_BOOT");
        std::process::exit(1);
    }
    let ballast = allocate_mib(env_u64("FAKE_CLAUDE_RSS_MB"));
    std::thread::sleep(Duration::from_millis(env_u64("FAKE_CLAUDE_BOOT_MS")));

    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--model=") {
            Some(m) => Some(m.to_string()),
            None if a == "--model" => args.get(i + 1).cloned(),
            None => None,
        })
        .unwrap_or_else(|| "claude-fake-default".into());

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || read_stdin(tx));
    Fake {
        initial_model: model.clone(),
        model,
        session_id: uuid(),
        system_prompt: None,
        turns: 0,
        history: Vec::new(),
        rx,
        pending: VecDeque::new(),
        eof: false,
    }
    .run();
    drop(ballast);
}

/// Reads stdin lines into `tx` (`None` at EOF), logging each to
/// `FAKE_CLAUDE_LOG`; exits 1 on a line that is not JSON, as the CLI does.
fn read_stdin(tx: mpsc::Sender<Option<Value>>) {
    let mut log = std::env::var_os("FAKE_CLAUDE_LOG").map(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("FAKE_CLAUDE_LOG is not writable")
    });
    let mut stdin = std::io::stdin().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if stdin.read_until(b'\n', &mut buf).unwrap_or(0) == 0 {
            let _ = tx.send(None);
            return;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(log) = &mut log {
            // One write per line, so that workers sharing a log never interleave.
            let _ = log.write_all(format!("{line}\n").as_bytes());
        }
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(value) => {
                let _ = tx.send(Some(value));
            }
            Err(e) => {
                eprintln!("Error parsing streaming input line: {line}: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// The state of the fake process.
struct Fake {
    /// The `--model` given at spawn, restored by `set_model` null/"default".
    initial_model: String,
    model: String,
    session_id: String,
    /// The `systemPrompt` of the first `initialize` (later ones are ignored,
    /// as by the CLI), its parts joined by newlines.
    system_prompt: Option<String>,
    /// Turns since the last `/clear`.
    turns: u32,
    /// User texts of the current conversation, for `[[history]]`.
    history: Vec<String>,
    rx: Receiver<Option<Value>>,
    /// User messages received while a turn ran, to run after it.
    pending: VecDeque<Value>,
    eof: bool,
}

impl Fake {
    fn run(mut self) {
        loop {
            let message = match self.pending.pop_front() {
                Some(m) => m,
                None if self.eof => exit_slowly(),
                None => match self.rx.recv() {
                    Ok(Some(m)) => m,
                    _ => {
                        self.eof = true;
                        continue;
                    }
                },
            };
            match message["type"].as_str() {
                Some("control_request") => {
                    self.control(&message);
                }
                Some("user") => self.user(&message),
                Some("system") if message["subtype"] == "compact_boundary" => self.history.clear(),
                _ => {}
            }
        }
    }

    /// Answers a control request; true when it was an interrupt.
    fn control(&mut self, message: &Value) -> bool {
        let id = &message["request_id"];
        let request = &message["request"];
        let subtype = request["subtype"].as_str().unwrap_or_default();
        let payload = match subtype {
            "get_binary_version" => {
                json!({"version": "2.1.197-fake", "buildTime": "2026-01-01T00:00:00Z"})
            }
            "initialize" => {
                if self.system_prompt.is_none() {
                    let parts = request["systemPrompt"].as_array().cloned();
                    let parts = parts.unwrap_or_else(|| vec![request["systemPrompt"].clone()]);
                    let texts: Vec<_> = parts.iter().filter_map(Value::as_str).collect();
                    self.system_prompt = Some(texts.join("\n"));
                }
                json!({"commands": [], "agents": [], "output_style": "default", "models": []})
            }
            "set_model" => {
                self.model = match request["model"].as_str() {
                    None | Some("default") => self.initial_model.clone(),
                    Some(m) => m.to_string(),
                };
                let text = format!(
                    "<local-command-stdout>Set model to {}</local-command-stdout>",
                    self.model
                );
                emit!("type": "user", "message": {"role": "user", "content": text},
                    "session_id": (self.session_id), "parent_tool_use_id": null,
                    "uuid": (uuid()), "timestamp": TIMESTAMP, "isReplay": true);
                Value::Null
            }
            "interrupt" | "set_max_thinking_tokens" | "apply_flag_settings" => Value::Null,
            "set_permission_mode" => json!({"mode": request["mode"]}),
            "mcp_set_servers" => json!({"added": [], "removed": [], "errors": {}}),
            "mcp_status" => json!({"mcpServers": []}),
            _ => {
                let error = format!("Unsupported control request subtype: {subtype}");
                emit!("type": "control_response",
                    "response": {"subtype": "error", "request_id": id, "error": error});
                return false;
            }
        };
        let mut response = json!({"subtype": "success", "request_id": id});
        if !payload.is_null() {
            response["response"] = payload;
        }
        emit!("type": "control_response", "response": response);
        subtype == "interrupt"
    }

    fn user(&mut self, message: &Value) {
        let texts: Vec<String> = match &message["message"]["content"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(blocks) => (blocks.iter())
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let last = texts
            .last()
            .map(|t| t.trim().to_string())
            .unwrap_or_default();
        if last == "/clear" {
            self.clear();
        } else {
            self.turn(&texts.join("\n"), &last);
        }
    }

    fn clear(&mut self) {
        if std::env::var("FAKE_CLAUDE_IGNORE_CLEAR").map_or(true, |v| v != "1") {
            self.session_id = uuid();
            self.turns = 0;
            self.history.clear();
        }
        self.init();
        emit!("type": "assistant",
            "message": {"id": (uuid()), "model": "<synthetic>", "role": "assistant",
                "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
                "usage": (usage(0, 0)), "content": [{"type": "text", "text": "(no content)"}],
                "context_management": null},
            "parent_tool_use_id": null, "session_id": (self.session_id), "uuid": (uuid()));
        self.result(0, "", usage(0, 0));
    }

    fn init(&self) {
        let cwd = std::env::current_dir().unwrap_or_default();
        emit!("type": "system", "subtype": "init", "cwd": (cwd.display().to_string()),
            "session_id": (self.session_id), "tools": [], "mcp_servers": [],
            "model": (self.model), "permissionMode": "default",
            "slash_commands": ["clear", "compact"], "apiKeySource": "ANTHROPIC_API_KEY",
            "claude_code_version": "2.1.197-fake", "output_style": "default",
            "agents": [], "skills": [], "plugins": [], "analytics_disabled": true,
            "product_feedback_disabled": true, "uuid": (uuid()), "memory_paths": {},
            "fast_mode_state": "off");
    }
}
