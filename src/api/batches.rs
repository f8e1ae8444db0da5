//! The Message Batches API on the wire: the create request and its
//! validation, and the result objects of its requests. (The `message_batch`
//! object and the results file are drawn from the batch store, in
//! `http::batch_objects`.)

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::anthropic::MessagesRequest;
use super::InvalidRequest;

/// `POST /v1/messages/batches`.
#[derive(Debug, Deserialize)]
pub struct CreateBatch {
    pub requests: Vec<BatchRequest>,
}

/// One request of a batch: the caller's id for it and Messages parameters.
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    pub custom_id: String,
    pub params: Value,
    /// claude-pool's own: `false` runs this request on a plain worker even
    /// when agent mode would take it (as `x-claude-pool-agent: off` does for
    /// an interactive request); `true` cannot enable what the batch may not.
    #[serde(default)]
    pub agent: Option<bool>,
}

/// The field of a stored request's params that keeps it out of agent mode
/// (removed before the params are parsed to run it).
pub const AGENT_OFF: &str = "claude_pool_agent_off";

/// A stored request's params, and whether it may run as an agent job.
pub fn stored_params(params: &str) -> Result<(Vec<u8>, bool), String> {
    if !params.contains(AGENT_OFF) {
        return Ok((params.as_bytes().to_vec(), true));
    }
    let mut value: Value = serde_json::from_str(params).map_err(|e| e.to_string())?;
    let off = value
        .as_object_mut()
        .and_then(|o| o.remove(AGENT_OFF))
        .is_some_and(|v| v == Value::Bool(true));
    Ok((value.to_string().into_bytes(), !off))
}

/// Longest `custom_id`.
const MAX_CUSTOM_ID: usize = 64;

/// Parses and validates a create body: at least one and at most
/// `max_requests` requests, each `custom_id` well-formed and unique, each
/// `params` a valid non-streaming Messages request. Returns the requests as
/// (`custom_id`, params JSON text). `agent`: whether the batch's requests
/// may run as agent jobs (agent mode on, the key allowed, not opted out);
/// a request kept out of it carries [`AGENT_OFF`] in its stored params.
pub fn parse_create(
    body: &[u8],
    max_requests: usize,
    agent: bool,
) -> Result<Vec<(String, String)>, InvalidRequest> {
    let create: CreateBatch = super::parse_json(body)?;
    if create.requests.is_empty() {
        return Err(InvalidRequest(
            "requests: a batch needs at least one request".into(),
        ));
    }
    if create.requests.len() > max_requests {
        return Err(InvalidRequest(format!(
            "requests: {} requests exceed the limit of {max_requests} per batch",
            create.requests.len()
        )));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(create.requests.len());
    for (i, request) in create.requests.iter().enumerate() {
        let id = &request.custom_id;
        let at = |why: String| InvalidRequest(format!("requests[{i}]: {why}"));
        if !is_custom_id(id) {
            return Err(at(format!(
                "custom_id {id:?} must be 1 to {MAX_CUSTOM_ID} letters, digits, `_` or `-`"
            )));
        }
        if let Some(first) = seen.insert(id, i) {
            return Err(at(format!(
                "custom_id {id:?} is already used by requests[{first}]; custom_ids must be unique within a batch"
            )));
        }
        let mut params = request.params.to_string();
        if !request.params.is_object() {
            return Err(at(format!("({id}) params: expected an object")));
        }
        if request.params.get("stream") == Some(&Value::Bool(true)) {
            return Err(at(format!(
                "({id}) params.stream: batch requests cannot stream"
            )));
        }
        MessagesRequest::parse(params.as_bytes())
            .map_err(|e| at(format!("({id}) params.{}", e.0)))?;
        if !(agent && request.agent.unwrap_or(true)) {
            let mut value = request.params.clone();
            value[AGENT_OFF] = Value::Bool(true);
            params = value.to_string();
        }
        out.push((id.clone(), params));
    }
    Ok(out)
}

/// `^[a-zA-Z0-9_-]{1,64}$`
fn is_custom_id(id: &str) -> bool {
    (1..=MAX_CUSTOM_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `{"id", "type": "message_batch_deleted"}`
pub fn deleted_object(id: &str) -> Value {
    json!({"id": id, "type": "message_batch_deleted"})
}

/// The result object of a request that ran: `succeeded` with its message.
pub fn succeeded(message: &Value) -> String {
    json!({"type": "succeeded", "message": message}).to_string()
}

/// The result object of a request that failed, with the error body the
/// Messages API would have answered.
pub fn errored(error_body: &Value) -> String {
    json!({"type": "errored", "error": error_body}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(requests: Value) -> Vec<u8> {
        json!({ "requests": requests }).to_string().into_bytes()
    }

    fn params(text: &str) -> Value {
        json!({"model": "claude-haiku-4-5", "max_tokens": 16,
               "messages": [{"role": "user", "content": text}]})
    }

    #[test]
    fn requests_kept_out_of_agent_mode_say_so_in_their_stored_params() {
        let requests = json!([{"custom_id": "a", "params": params("hi")},
                              {"custom_id": "b", "params": params("hi"), "agent": false},
                              {"custom_id": "c", "params": params("hi"), "agent": true}]);
        let agent_of = |batch_agent: bool| -> Vec<bool> {
            parse_create(&body(requests.clone()), 10, batch_agent)
                .unwrap()
                .iter()
                .map(|(_, stored)| {
                    let (bytes, agent) = stored_params(stored).unwrap();
                    let back: Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(back, params("hi"), "the marker is gone again");
                    agent
                })
                .collect()
        };
        assert_eq!(agent_of(true), [true, false, true]);
        assert_eq!(
            agent_of(false),
            [false, false, false],
            "true cannot enable it"
        );
    }

    #[test]
    fn valid_batches_keep_their_params() {
        let parsed = parse_create(
            &body(json!([{"custom_id": "a-1_B", "params": params("hi")},
                         {"custom_id": "x".repeat(64), "params": params("yo")}])),
            10,
            true,
        )
        .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, "a-1_B");
        let back: Value = serde_json::from_str(&parsed[1].1).unwrap();
        assert_eq!(back, params("yo"));
    }

    #[test]
    fn invalid_batches_name_the_request_and_the_reason() {
        let err =
            |requests: Value, max: usize| parse_create(&body(requests), max, true).unwrap_err().0;
        assert!(err(json!([]), 10).contains("at least one"));
        let two = json!([{"custom_id": "a", "params": params("x")},
                         {"custom_id": "b", "params": params("y")}]);
        assert!(err(two, 1).contains("limit of 1"));
        for bad in ["", "has space", "ünï", &"x".repeat(65)] {
            let e = err(json!([{"custom_id": bad, "params": params("x")}]), 10);
            assert!(e.starts_with("requests[0]: custom_id"), "{bad}: {e}");
        }
        let e = err(
            json!([{"custom_id": "a", "params": params("x")},
                   {"custom_id": "a", "params": params("y")}]),
            10,
        );
        assert!(
            e.starts_with("requests[1]") && e.contains("requests[0]"),
            "{e}"
        );
        let e = err(
            json!([{"custom_id": "ok", "params": params("x")},
                   {"custom_id": "bad", "params": {"model": "m", "messages": []}}]),
            10,
        );
        assert!(e.starts_with("requests[1]: (bad) params.messages"), "{e}");
        let mut streaming = params("x");
        streaming["stream"] = json!(true);
        let e = err(json!([{"custom_id": "s", "params": streaming}]), 10);
        assert!(e.contains("cannot stream"), "{e}");
        let e = err(json!([{"custom_id": "s", "params": "text"}]), 10);
        assert!(e.contains("expected an object"), "{e}");
        let e = parse_create(b"{\"requests\": 5}", 10, true).unwrap_err().0;
        assert!(e.starts_with("requests"), "{e}");
    }
}
