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

    /// One conversation turn for a prompt whose texts are `all`.
    fn turn(&mut self, all: &str, last: &str) {
        self.turns += 1;
        self.history.push(last.to_string());
        if let Some(mib) = marker_arg(all, "flood") {
            let padding = "x".repeat(usize::try_from(mib << 20).unwrap_or(usize::MAX));
            emit!("type": "flood_event", "padding": padding);
        }
        if all.contains("[[stderr-bytes]]") {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(b"fake-claude: \xff\xfe not UTF-8\n");
            let _ = stderr.write_all(b"fake-claude: stderr after the bad bytes\n");
            let _ = stderr.flush();
        }
        if all.contains("[[garbage]]") {
            print_line("[SandboxDebug] noise");
            print_line(r#"{"type":"brand_new_event","x":1}"#);
            emit!("type": "huge_unknown_event", "padding": ("x".repeat(2 << 20)));
        }
        self.init();
        emit!("type": "system", "subtype": "status", "status": "requesting",
            "uuid": (uuid()), "session_id": (self.session_id));
        if let Some(status) = marker_arg(all, "error") {
            return self.api_error(status);
        }

        let mut reply = if all.contains("[[history]]") {
            self.history.join(" | ")
        } else if all.contains("[[system]]") {
            let system = self.system_prompt.as_deref();
            system.unwrap_or("(no system prompt)").to_string()
        } else {
            format!(
                "fake reply #{}: {}",
                self.turns,
                last.chars().take(200).collect::<String>()
            )
        };
        if all.contains("[[orphan]]") {
            reply.push_str(&format!(" orphan-pid={}", spawn_orphan()));
        }
        let delay = marker_arg(all, "slow");
        if delay.is_some() {
            for n in reply.split_whitespace().count()..20 {
                reply.push_str(&format!(" word{n}"));
            }
        }
        let pieces = word_pieces(&reply);
        let output_tokens = reply.split_whitespace().count() as u64;

        let id = format!("msg_fake_{}", MESSAGES.fetch_add(1, Ordering::Relaxed) + 1);
        let start_usage = usage(all.split_whitespace().count() as u64 + 10, 1);
        let model = self.model.clone();
        let message = |text: &str| {
            json!({"id": id, "type": "message", "role": "assistant",
                "content": [{"type": "text", "text": text}], "model": model,
                "stop_reason": null, "stop_sequence": null, "usage": start_usage,
                "context_management": null})
        };
        let mut opening = message("");
        opening["content"] = json!([]);
        self.event(json!({"type": "message_start", "message": opening}));
        if all.contains("[[hang]]") {
            loop {
                std::thread::park();
            }
        }
        self.event(json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}));
        let mut partial = String::new();
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 && self.wait(delay.unwrap_or(0)) {
                return self.aborted(message(&partial));
            }
            self.event(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}}));
            partial.push_str(piece);
            if all.contains("[[crash]]") {
                std::process::exit(3);
            }
        }
        emit!("type": "assistant", "message": (message(&reply)), "parent_tool_use_id": null,
            "session_id": (self.session_id), "uuid": (uuid()));
        self.event(json!({"type": "content_block_stop", "index": 0}));
        self.event(json!({"type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}}));
        self.event(json!({"type": "message_stop"}));
        let total = usage(
            start_usage["input_tokens"].as_u64().unwrap_or(0),
            output_tokens,
        );
        self.result(1, &reply, total);
        if all.contains("[[exit]]") {
            std::process::exit(0);
        }
    }

    /// The turn as the CLI ends it when the upstream answered `status`.
    fn api_error(&self, status: u64) {
        let text = format!("API Error: {status} fake error");
        let kind = match status {
            429 => "rate_limit",
            401 => "authentication_failed",
            500.. => "server_error",
            _ => "unknown",
        };
        emit!("type": "assistant",
            "message": {"id": (uuid()), "model": "<synthetic>", "role": "assistant",
                "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
                "usage": (usage(0, 0)), "content": [{"type": "text", "text": text}],
                "context_management": null},
            "parent_tool_use_id": null, "session_id": (self.session_id), "uuid": (uuid()),
            "error": kind);
        emit!("type": "result", "subtype": "success", "is_error": true,
            "api_error_status": status, "duration_ms": 1, "duration_api_ms": 0,
            "num_turns": 1, "result": text, "stop_reason": "stop_sequence",
            "session_id": (self.session_id), "total_cost_usd": 0, "usage": (usage(0, 0)),
            "modelUsage": {}, "permission_denials": [], "terminal_reason": "completed",
            "fast_mode_state": "off", "uuid": (uuid()));
    }

    /// The end of a turn interrupted mid-stream, after the interrupt's reply.
    fn aborted(&self, partial: Value) {
        emit!("type": "assistant", "message": partial, "parent_tool_use_id": null,
            "session_id": (self.session_id), "uuid": (uuid()));
        emit!("type": "user",
            "message": {"role": "user", "content": [{"type": "text", "text": INTERRUPTED}]},
            "parent_tool_use_id": null, "session_id": (self.session_id), "uuid": (uuid()),
            "timestamp": TIMESTAMP);
        emit!("type": "result", "subtype": "error_during_execution", "duration_ms": 1,
            "duration_api_ms": 0, "is_error": true, "num_turns": 2, "stop_reason": null,
            "session_id": (self.session_id), "total_cost_usd": 0, "usage": (usage(0, 0)),
            "modelUsage": {}, "permission_denials": [], "terminal_reason": "aborted_streaming",
            "fast_mode_state": "off", "uuid": (uuid()),
            "errors": ["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"]);
    }

    /// A successful `result`: a completed turn, or `/clear` (0 turns, no stop reason).
    fn result(&self, num_turns: u32, text: &str, usage: Value) {
        let stop_reason = (num_turns > 0).then_some("end_turn");
        emit!("type": "result", "subtype": "success", "is_error": false,
            "api_error_status": null, "duration_ms": 1, "duration_api_ms": 1,
            "num_turns": num_turns, "result": text, "stop_reason": stop_reason,
            "session_id": (self.session_id), "total_cost_usd": 0, "usage": usage,
            "modelUsage": {}, "permission_denials": [], "terminal_reason": "completed",
            "fast_mode_state": "off", "uuid": (uuid()));
    }

    fn event(&self, event: Value) {
        emit!("type": "stream_event", "event": event, "session_id": (self.session_id),
            "parent_tool_use_id": null, "uuid": (uuid()));
    }

    /// Waits `ms` while serving stdin: control requests are answered, user
    /// messages queued. True when an interrupt arrived.
    fn wait(&mut self, ms: u64) -> bool {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.eof {
                std::thread::sleep(left);
                return false;
            }
            match self.rx.recv_timeout(left) {
                Ok(Some(m)) if m["type"] == "control_request" => {
                    if self.control(&m) {
                        return true;
                    }
                }
                Ok(Some(m)) if m["type"] == "user" => self.pending.push_back(m),
                Ok(Some(_)) => {}
                Ok(None) | Err(RecvTimeoutError::Disconnected) => self.eof = true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

/// `text` cut before each word that follows whitespace, as the upstream
/// streams it ("Here ", "is ", "a ", "short ", "answer.").
fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut after_space) = (0, false);
    for (i, c) in text.char_indices() {
        if !c.is_whitespace() && after_space {
            pieces.push(&text[start..i]);
            start = i;
        }
        after_space = c.is_whitespace();
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// The number in a `[[name:N]]` marker of `text`.
fn marker_arg(text: &str, name: &str) -> Option<u64> {
    let start = text.find(&format!("[[{name}:"))? + name.len() + 3;
    let rest = &text[start..];
    rest[..rest.find("]]")?].trim().parse().ok()
}

fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0, "output_tokens": output_tokens,
        "service_tier": "standard"})
}

/// Starts `sleep 300` in a session of its own, as the Bash tool does, so that
/// it outlives this process unless the daemon kills descendants.
fn spawn_orphan() -> u32 {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("sleep");
    command.arg("300").stdin(std::process::Stdio::null());
    command.stdout(std::process::Stdio::null());
    command.stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| match libc::setsid() {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    command.spawn().expect("cannot spawn sleep").id()
}

/// Exit 0 at stdin EOF, after `FAKE_CLAUDE_EXIT_MS` with SIGTERM ignored
/// (a CLI slow to exit: only the SIGKILL that follows ends it early).
fn exit_slowly() -> ! {
    let ms = env_u64("FAKE_CLAUDE_EXIT_MS");
    if ms > 0 {
        // SAFETY: sets a signal disposition; no handler code runs.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        std::thread::sleep(Duration::from_millis(ms));
    }
    std::process::exit(0)
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        std::process::exit(1); // the reader went away
    }
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// N MiB with every page written, so that they count in RSS.
fn allocate_mib(n: u64) -> Vec<u8> {
    let mut ballast = vec![0u8; (n as usize) << 20];
    for page in ballast.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(ballast)
}

static MESSAGES: AtomicU64 = AtomicU64::new(0);

/// A UUID-shaped id, unique across processes (pid) and within one (counter).
fn uuid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:08x}-fa4e-4000-8000-{n:012x}", std::process::id())
}
