//! A fake Anthropic Messages API for the real Claude CLI to talk to.
//!
//! It serves `POST /v1/messages` (SSE when `stream` is set, JSON otherwise)
//! and `POST /v1/messages/count_tokens`, records every request, and is
//! scripted by markers in the text of the request's final text block (system
//! reminders aside):
//!
//! | marker | effect |
//! |---|---|
//! | `[[slow:MS]]` | 20 words, MS milliseconds apart |
//! | `[[words:N]]` | N words |
//! | `[[status:N]]` | HTTP error N with an Anthropic error body |
//! | `[[hang]]` | never sends response headers |
//! | `[[max_tokens]]` | stop_reason `max_tokens` |
//! | `[[think]]` | a thinking block first, even if thinking is off |
//! | `[[tool:NAME]]` | a `tool_use` of the offered tool NAME (repeat for parallel calls) |
//! | `[[call:NAME:JSON]]` | a `tool_use` of NAME with input JSON (e.g. the CLI's `Bash`) |
//! | `[[force:NAME:JSON]]` | the same even if NAME was not offered, as a misbehaving model might |
//! | `[[tools_only]]` | with tool calls: no text block before them |
//! | `[[limit_after_first_token:S]]` | streams one word, then limits the request's key for S seconds and ends the stream with a `rate_limit_error` event |
//! | `[[cut:K]]` | a streamed answer stops after K deltas (text words `part0 part1 …`): the connection drops, no `message_stop` |
//! | `[[sse_error:K]]` | a streamed answer gets an `error` event (`overloaded_error`) after K deltas |
//! | `[[drop]]` | the connection closes before any byte of the response |
//! | `[[first_byte_ms:MS]]` | MS milliseconds before the response's first byte |
//! | `[[fault_once:NONCE]]` | the faults above only on the first call carrying NONCE ([`faults::once`]); later calls answer normally |
//! | `[[reuse_id]]` | with `fault_once`: the repeat answers with the faulted call's message id |
//!
//! Every answer is logged ([`FakeUpstream::answers`]) with whether it was
//! sent whole, so a test can tell what the upstream finally sent.
//!
//! Answers depend on the credential too: a key limited with
//! [`FakeUpstream::limit_key`] (or by the marker above) gets `429` with
//! `retry-after` until its limit ends.
//!
//! A request larger than [`CONTEXT_TOKENS`] (estimated as the body's
//! length / 4, as its `usage` counts) gets 400 `invalid_request_error`
//! "prompt is too long: N tokens > M maximum", as the real API answers.
//!
//! A request whose `x-api-key` is [`REJECTED_KEY`] gets 401
//! `authentication_error`, as the real API answers a revoked key.
//!
//! When the last user message carries `tool_result` blocks, the reply is
//! `Tool results: <their texts joined by " | ">`, unless a result's text
//! holds a `[[tool:NAME]]` marker, which asks for another round.
//!
//! Without markers the reply is `Hello! You said: <excerpt>`. A request with
//! `thinking.type == "enabled"` first gets a thinking block.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream;
use serde_json::{json, Value};

pub mod faults;
pub use faults::Answer;
use faults::{Faults, Frame};

mod limits;
mod recorded;
mod script;

use limits::{limit, limit_after_first_token, limited, rate_limit_response, Limits};
pub use recorded::Recorded;
use recorded::{collect_text, record};
use script::{estimate_tokens, last_text, marker, script_for, NEXT_TOOL_ID};

/// The API key the fake refuses with 401.
pub const REJECTED_KEY: &str = "sk-rejected";

/// The context window of the fake model, in estimated tokens.
pub const CONTEXT_TOKENS: u64 = 1_000_000;

/// A running fake upstream; stopped when dropped.
pub struct FakeUpstream {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    limits: Limits,
    faults: Faults,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake upstream");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let shared = web::Data::new(requests.clone());
        let limits: Limits = Arc::default();
        let shared_limits = web::Data::new(limits.clone());
        let faults: Faults = Arc::default();
        let shared_faults = web::Data::new(faults.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .app_data(shared_limits.clone())
                        .app_data(shared_faults.clone())
                        .app_data(web::JsonConfig::default().limit(64 * 1024 * 1024))
                        .route("/v1/messages", web::post().to(messages))
                        .route("/v1/messages/count_tokens", web::post().to(count_tokens))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("fake upstream started");
        Self {
            url,
            requests,
            limits,
            faults,
            handle,
            thread: Some(thread),
        }
    }

    /// Every answer sent (or begun) so far, in order.
    pub fn answers(&self) -> Vec<Answer> {
        self.faults.lock().unwrap().answers.clone()
    }

    /// The last answer sent whole to a request whose text carries the
    /// `[[fault_once]]` marker `once`: what the upstream finally sent.
    pub fn final_answer(&self, once: &str) -> Option<Answer> {
        let nonce = faults::nonce_in(once)?;
        self.answers()
            .into_iter()
            .rev()
            .find(|a| a.completed && a.nonce.as_deref() == Some(nonce))
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The latest `/v1/messages` call for which `pred` holds.
    pub fn last_message_call(&self, pred: impl Fn(&Recorded) -> bool) -> Option<Recorded> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .rev()
            .find(|r| r.is_messages_call() && pred(r))
            .cloned()
    }

    /// Makes `key` answer 429 with `retry-after: retry_after_secs` for
    /// `lasting` (`Duration::MAX`-like values: for the rest of the test).
    pub fn limit_key(&self, key: &str, retry_after_secs: u64, lasting: Duration) {
        let until = std::time::Instant::now() + lasting;
        limit(&self.limits, key, until, retry_after_secs);
    }

    /// The `/v1/messages` calls made with `key` so far.
    pub fn calls_with_key(&self, key: &str) -> usize {
        self.message_calls()
            .iter()
            .filter(|r| r.api_key.as_deref() == Some(key))
            .count()
    }

    /// The `/v1/messages` calls received so far.
    pub fn message_calls(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_messages_call)
            .collect()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        let stop = self.handle.stop(false);
        drop(stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn count_tokens(
    req: HttpRequest,
    body: web::Json<Value>,
    log: web::Data<Arc<Mutex<Vec<Recorded>>>>,
) -> HttpResponse {
    record(&req, &body, &log);
    HttpResponse::Ok().json(json!({"input_tokens": estimate_tokens(&body)}))
}

/// A response whose body fails before its first byte: actix then closes
/// the connection without sending even the headers.
fn dropped_connection() -> HttpResponse {
    let body = stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("fake upstream: connection dropped"))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(body)
}

async fn messages(
    req: HttpRequest,
    body: web::Json<Value>,
    log: web::Data<Arc<Mutex<Vec<Recorded>>>>,
    limits: web::Data<Limits>,
    faults: web::Data<Faults>,
) -> HttpResponse {
    let body = body.into_inner();
    record(&req, &body, &log);
    if req
        .headers()
        .get("x-api-key")
        .is_some_and(|k| k == REJECTED_KEY)
    {
        return HttpResponse::Unauthorized().json(json!({"type": "error",
            "error": {"type": "authentication_error", "message": "invalid x-api-key"}}));
    }
    let key = req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
    if let Some(retry_after) = limited(&limits, key) {
        return rate_limit_response(retry_after);
    }
    let tokens = estimate_tokens(&body);
    if tokens > CONTEXT_TOKENS {
        return HttpResponse::BadRequest().json(json!({"type": "error", "error": {
            "type": "invalid_request_error",
            "message": format!("prompt is too long: {tokens} tokens > {CONTEXT_TOKENS} maximum")}}));
    }
    let text = last_text(&body);
    if let Some(secs) = marker(&text, "limit_after_first_token") {
        if body["stream"] == true {
            let secs = secs.parse().unwrap_or(30);
            return limit_after_first_token(&body, key, secs, &limits);
        }
    }
    if marker(&text, "hang").is_some() {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(status) = marker(&text, "status").and_then(|s| s.parse::<u16>().ok()) {
        let kind = match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(json!({"type": "error", "error": {"type": kind, "message": format!("fake {status} error")}}));
    }
    let plan = faults::plan(&faults, &text, body["stream"] == true);
    if !plan.first_byte.is_zero() {
        tokio::time::sleep(plan.first_byte).await;
    }
    if plan.drop {
        return dropped_connection();
    }
    let mut script = script_for(&body, &text);
    if let (Some(broken), true) = (plan.broken, script.calls.is_empty()) {
        script.words = faults::aborted_words(broken);
    }
    // Unique, as the real API's: the CLI merges consecutive assistant
    // messages that share an id into one.
    let message_id = plan.reuse_id.clone().unwrap_or_else(|| {
        format!(
            "msg_fake_{}",
            NEXT_TOOL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    });
    plan.note_call(&faults, &message_id);
    let model = body["model"].as_str().unwrap_or("claude-fake").to_string();
    let input_tokens = estimate_tokens(&body);
    let output_tokens = script.words.len().max(1) as u64;
    if body["stream"] != true {
        let mut content = Vec::new();
        if script.thinking {
            content.push(
                json!({"type": "thinking", "thinking": "Let me think.", "signature": "sig-fake"}),
            );
        }
        if !script.words.is_empty() {
            content.push(json!({"type": "text", "text": script.words.concat()}));
        }
        for (id, name, input) in &script.calls {
            content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
        let answer = json!({
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": script.stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        });
        plan.note_answer(&faults, &answer);
        return HttpResponse::Ok().json(answer);
    }
    let mut events: Vec<(Duration, Value)> = vec![(
        Duration::ZERO,
        json!({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
    )];
    let mut index = 0;
    if script.thinking {
        events.push((Duration::ZERO, json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
        events.push((Duration::ZERO, json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me think."}})));
        events.push((Duration::ZERO, json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-fake"}})));
        events.push((
            Duration::ZERO,
            json!({"type": "content_block_stop", "index": 0}),
        ));
        index = 1;
    }
    let mut next_index = index;
    if !script.words.is_empty() {
        events.push((Duration::ZERO, json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
        for word in &script.words {
            events.push((script.delay, json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": word}})));
        }
        events.push((
            Duration::ZERO,
            json!({"type": "content_block_stop", "index": index}),
        ));
        next_index += 1;
    }
    for (id, name, input) in &script.calls {
        index = next_index;
        next_index += 1;
        let input = input.to_string();
        let (head, tail) = input.split_at(input.len() / 2);
        let start = json!({"type": "tool_use", "id": id, "name": name, "input": {}});
        events.push((
            Duration::ZERO,
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        for part in [head, tail] {
            let delta = json!({"type": "input_json_delta", "partial_json": part});
            events.push((
                Duration::ZERO,
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push((
            Duration::ZERO,
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push((Duration::ZERO, json!({"type": "message_delta", "delta": {"stop_reason": script.stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    events.push((Duration::ZERO, json!({"type": "message_stop"})));

    let frames = faults::break_stream(&faults, &plan, events);
    let body = stream::unfold(frames.into_iter(), |mut rest| async move {
        let (delay, event) = match rest.next()? {
            Frame::Event(delay, event) => (delay, event),
            // An error in the body makes actix close the connection
            // without ending the chunked body: a dropped connection.
            Frame::Drop => {
                // Sent first: actix drops what it has not yet written.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let dropped = std::io::Error::other("fake upstream: connection dropped");
                return Some((Err(dropped), rest));
            }
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let name = event["type"].as_str().unwrap_or("ping").to_string();
        let frame = Bytes::from(format!("event: {name}\ndata: {event}\n\n"));
        Some((Ok::<_, std::io::Error>(frame), rest))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(body)
}
