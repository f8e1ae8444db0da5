//! Upstream faults the fake can inject into a `/v1/messages` call, scripted
//! by markers in the request's last text (see the table in `upstream.rs`):
//! a stream that stops after K deltas with no `message_stop` (the TCP
//! connection drops), an SSE `error` event (`overloaded_error`) after K
//! deltas, and a delay before the first byte. `[[fault_once:NONCE]]` limits
//! the fault to the first call carrying NONCE, so the CLI's repeat of the
//! call is answered normally; `[[reuse_id]]` makes that repeat carry the
//! aborted call's message id.
//!
//! Every answer the fake gives is logged as an [`Answer`], so a test can
//! compare what a client got with what the upstream finally sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::marker;

/// How a streamed answer is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// After this many `content_block_delta` events the connection drops.
    Cut(usize),
    /// After this many deltas an `error` event (`overloaded_error`) ends
    /// the stream.
    SseError(usize),
}

/// The faults one call gets.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Breaks the stream (streamed calls only).
    pub broken: Option<Break>,
    /// The connection closes before any byte of the response.
    pub drop: bool,
    /// Waited before the response's first byte.
    pub first_byte: Duration,
    /// The message id to answer with (the aborted call's, for `[[reuse_id]]`).
    pub reuse_id: Option<String>,
    /// The `[[fault_once]]` nonce, to note the id this call answers with.
    nonce: Option<String>,
}

/// One answer the fake sent (or began to send).
#[derive(Debug, Clone)]
pub struct Answer {
    pub message_id: String,
    /// Whether it was sent whole: `false` for a broken stream.
    pub completed: bool,
    /// The text of its text blocks, as far as it was sent.
    pub text: String,
    /// The ids of its tool_use blocks whose input was sent whole.
    pub tool_ids: Vec<String>,
    /// The `[[fault_once]]` nonce of the request, if it had one.
    pub nonce: Option<String>,
    /// The usage it reported: input tokens, and output tokens (0 for a
    /// broken stream, which never reports them).
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What the fake remembers about faults and answers.
#[derive(Debug, Default)]
pub struct FaultLog {
    /// Per `[[fault_once]]` nonce: the id of the call that got the fault.
    faulted: HashMap<String, String>,
    pub answers: Vec<Answer>,
}

pub type Faults = Arc<Mutex<FaultLog>>;

/// A marker that faults only the first call of its request, with a nonce
/// unique in this process.
pub fn once() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("[[fault_once:{}-{n}]]", std::process::id())
}

/// The nonce of a request text's `[[fault_once]]` marker.
pub fn nonce_in(text: &str) -> Option<&str> {
    marker(text, "fault_once")
}

/// The faults of a call whose last text is `text`.
pub fn plan(faults: &Faults, text: &str, streamed: bool) -> Plan {
    let number = |name| marker(text, name).and_then(|v| v.parse::<u64>().ok());
    let mut plan = Plan {
        broken: match (number("cut"), number("sse_error")) {
            (Some(k), _) => Some(Break::Cut(k as usize)),
            (None, Some(k)) => Some(Break::SseError(k as usize)),
            _ => None,
        },
        first_byte: Duration::from_millis(number("first_byte_ms").unwrap_or(0)),
        drop: text.contains("[[drop]]"),
        ..Plan::default()
    };
    if !streamed {
        plan.broken = None;
    }
    let Some(nonce) = marker(text, "fault_once") else {
        return plan;
    };
    let log = faults.lock().unwrap();
    match log.faulted.get(nonce) {
        // A repeat: answered normally.
        Some(id) => Plan {
            reuse_id: marker(text, "reuse_id").map(|_| id.clone()),
            nonce: Some(nonce.to_string()),
            ..Plan::default()
        },
        None => Plan {
            nonce: Some(nonce.to_string()),
            ..plan
        },
    }
}

impl Plan {
    pub fn is_faulted(&self) -> bool {
        self.broken.is_some() || self.drop || !self.first_byte.is_zero()
    }

    /// Notes that the call answering with `message_id` was given this plan.
    pub fn note_call(&self, faults: &Faults, message_id: &str) {
        if let (Some(nonce), true) = (&self.nonce, self.is_faulted()) {
            let mut log = faults.lock().unwrap();
            log.faulted
                .entry(nonce.clone())
                .or_insert_with(|| message_id.to_string());
        }
    }

    /// Logs a whole (non-streamed) answer.
    pub fn note_answer(&self, faults: &Faults, body: &Value) {
        let text = body["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect();
        let tool_ids = body["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "tool_use")
            .filter_map(|b| b["id"].as_str().map(str::to_string))
            .collect();
        faults.lock().unwrap().answers.push(Answer {
            message_id: body["id"].as_str().unwrap_or_default().to_string(),
            completed: true,
            text,
            tool_ids,
            nonce: self.nonce.clone(),
            input_tokens: body["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: body["usage"]["output_tokens"].as_u64().unwrap_or(0),
        });
    }
}

/// One SSE frame to send, or the connection dropping.
pub enum Frame {
    Event(Duration, Value),
    Drop,
}

/// The stream's events as sent under `broken`, logged as an answer.
pub fn break_stream(faults: &Faults, plan: &Plan, events: Vec<(Duration, Value)>) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut deltas = 0;
    let mut answer = Answer {
        message_id: String::new(),
        completed: true,
        text: String::new(),
        tool_ids: Vec::new(),
        nonce: plan.nonce.clone(),
        input_tokens: 0,
        output_tokens: 0,
    };
    let mut open_tool: Option<String> = None;
    for (delay, event) in events {
        if event["type"] == "content_block_delta" {
            if let Some(limit) = plan.broken.map(|(Break::Cut(k) | Break::SseError(k))| k) {
                if deltas == limit {
                    answer.completed = false;
                    frames.push(match plan.broken {
                        Some(Break::SseError(_)) => Frame::Event(
                            Duration::ZERO,
                            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                        ),
                        _ => Frame::Drop,
                    });
                    break;
                }
            }
            deltas += 1;
            if let Some(text) = event["delta"]["text"].as_str() {
                answer.text.push_str(text);
            }
        }
        match event["type"].as_str() {
            Some("message_start") => {
                answer.message_id = event["message"]["id"].as_str().unwrap_or_default().into();
                answer.input_tokens = event["message"]["usage"]["input_tokens"]
                    .as_u64()
                    .unwrap_or(0);
            }
            Some("message_delta") => {
                answer.output_tokens = event["usage"]["output_tokens"].as_u64().unwrap_or(0)
            }
            Some("content_block_start") if event["content_block"]["type"] == "tool_use" => {
                open_tool = event["content_block"]["id"].as_str().map(str::to_string)
            }
            Some("content_block_stop") => answer.tool_ids.extend(open_tool.take()),
            _ => {}
        }
        frames.push(Frame::Event(delay, event));
    }
    faults.lock().unwrap().answers.push(answer);
    frames
}

/// Words of an answer that will be cut: distinct from any full answer, so
/// that a client given any of them got part of an aborted call.
pub fn aborted_words(broken: Break) -> Vec<String> {
    let (Break::Cut(k) | Break::SseError(k)) = broken;
    (0..k + 3).map(|i| format!("part{i} ")).collect()
}
