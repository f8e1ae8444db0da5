//! Rate-limited keys: `429` with `retry-after` while a key's limit lasts,
//! and the mid-stream `rate_limit_error` of `[[limit_after_first_token:S]]`.

use super::*;

/// Keys answering 429: until when, and the `retry-after` they send.
pub(super) type Limits = Arc<Mutex<Vec<(String, std::time::Instant, u64)>>>;

pub(super) fn limit(limits: &Limits, key: &str, until: std::time::Instant, retry_after: u64) {
    let mut limits = limits.lock().unwrap();
    limits.retain(|(k, _, _)| k != key);
    limits.push((key.to_string(), until, retry_after));
}

/// The `retry-after` of the request's key while it is limited.
pub(super) fn limited(limits: &Limits, key: Option<&str>) -> Option<u64> {
    let key = key?;
    let now = std::time::Instant::now();
    limits
        .lock()
        .unwrap()
        .iter()
        .find(|(k, until, _)| k == key && *until > now)
        .map(|(_, _, after)| *after)
}

pub(super) fn rate_limit_response(retry_after: u64) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header(("retry-after", retry_after.to_string()))
        .json(json!({"type": "error", "error": {"type": "rate_limit_error", "message": "fake 429: this key is rate-limited"}}))
}

/// One word of a streamed answer, then the key is limited and the stream
/// ends with a `rate_limit_error` event.
pub(super) fn limit_after_first_token(
    body: &Value,
    key: Option<&str>,
    secs: u64,
    limits: &Limits,
) -> HttpResponse {
    if let Some(key) = key {
        limit(
            limits,
            key,
            std::time::Instant::now() + Duration::from_secs(secs),
            secs,
        );
    }
    let model = body["model"].as_str().unwrap_or("claude-fake");
    let events = [
        json!({"type": "message_start", "message": {
            "id": format!("msg_fake_limited_{}", NEXT_TOOL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)), "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "First "}}),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "fake mid-stream rate limit"}}),
    ];
    let frames: String = events
        .iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {e}\n\n",
                e["type"].as_str().unwrap_or("ping")
            )
        })
        .collect();
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(frames)
}
