//! The three dialects as a client speaks them: each one's requests, how to
//! read its answers and streams, and posting them.

use super::*;

/// One of the three dialects, as a client speaks it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Api {
    Messages,
    Chat,
    Responses,
}

impl Api {
    pub(super) fn path(self) -> &'static str {
        match self {
            Api::Messages => "/v1/messages",
            Api::Chat => "/v1/chat/completions",
            Api::Responses => "/v1/responses",
        }
    }

    /// A request for `text`, offering the tool `lookup` if `tools`.
    pub(super) fn request(self, text: &str, tools: bool, stream: bool) -> Value {
        let schema = json!({"type": "object", "properties": {"query": {"type": "string"}}});
        let mut body = match self {
            Api::Messages => json!({"model": "claude-haiku-4-5", "max_tokens": 200,
                "messages": [{"role": "user", "content": text}]}),
            Api::Chat => json!({"model": "claude-haiku-4-5",
                "messages": [{"role": "user", "content": text}]}),
            Api::Responses => json!({"model": "claude-haiku-4-5", "input": text, "store": false}),
        };
        if tools {
            body["tools"] = match self {
                Api::Messages => {
                    json!([{"name": "lookup", "description": "Looks up", "input_schema": schema}])
                }
                Api::Chat => {
                    json!([{"type": "function", "function": {"name": "lookup", "description": "Looks up", "parameters": schema}}])
                }
                Api::Responses => {
                    json!([{"type": "function", "name": "lookup", "description": "Looks up", "parameters": schema}])
                }
            };
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
    }

    /// The text of a whole answer.
    pub(super) fn text(self, reply: &Value) -> String {
        let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
        match self {
            Api::Messages => items(&reply["content"])
                .iter()
                .filter(|b| b["type"] == "text")
                .map(|b| b["text"].as_str().unwrap().to_string())
                .collect(),
            Api::Chat => reply["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Api::Responses => items(&reply["output"])
                .iter()
                .filter(|i| i["type"] == "message")
                .flat_map(|i| items(&i["content"]))
                .filter_map(|c| c["text"].as_str().map(str::to_string))
                .collect(),
        }
    }

    /// The number of text blocks (message items) of a whole answer.
    pub(super) fn text_parts(self, reply: &Value) -> usize {
        let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
        match self {
            Api::Messages => items(&reply["content"])
                .iter()
                .filter(|b| b["type"] == "text")
                .count(),
            Api::Chat => usize::from(reply["choices"][0]["message"]["content"].is_string()),
            Api::Responses => items(&reply["output"])
                .iter()
                .filter(|i| i["type"] == "message")
                .count(),
        }
    }

    /// The tool calls of a whole answer: (id, arguments).
    pub(super) fn tool_calls(self, reply: &Value) -> Vec<(String, Value)> {
        let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let parse =
            |s: &Value| serde_json::from_str(s.as_str().unwrap_or("null")).unwrap_or(Value::Null);
        match self {
            Api::Messages => items(&reply["content"])
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| (b["id"].as_str().unwrap().to_string(), b["input"].clone()))
                .collect(),
            Api::Chat => items(&reply["choices"][0]["message"]["tool_calls"])
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap().to_string(),
                        parse(&c["function"]["arguments"]),
                    )
                })
                .collect(),
            Api::Responses => items(&reply["output"])
                .iter()
                .filter(|i| i["type"] == "function_call")
                .map(|i| {
                    (
                        i["call_id"].as_str().unwrap().to_string(),
                        parse(&i["arguments"]),
                    )
                })
                .collect(),
        }
    }

    /// (input, output) tokens of a whole answer.
    pub(super) fn usage(self, reply: &Value) -> (u64, u64) {
        let n = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
        match self {
            Api::Messages => (
                n(&reply["usage"]["input_tokens"]),
                n(&reply["usage"]["output_tokens"]),
            ),
            Api::Chat => (
                n(&reply["usage"]["prompt_tokens"]),
                n(&reply["usage"]["completion_tokens"]),
            ),
            Api::Responses => (
                n(&reply["usage"]["input_tokens"]),
                n(&reply["usage"]["output_tokens"]),
            ),
        }
    }

    /// The follow-up request answering the tool call `id`.
    pub(super) fn tool_result(self, request: &Value, reply: &Value, id: &str) -> Value {
        let mut next = request.clone();
        match self {
            Api::Messages => {
                let messages = next["messages"].as_array_mut().unwrap();
                messages.push(json!({"role": "assistant", "content": reply["content"]}));
                messages.push(json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": "sunny"}]}));
            }
            Api::Chat => {
                let messages = next["messages"].as_array_mut().unwrap();
                messages.push(reply["choices"][0]["message"].clone());
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": "sunny"}));
            }
            Api::Responses => {
                let mut input = vec![json!({"role": "user", "content": request["input"]})];
                input.extend(reply["output"].as_array().unwrap().iter().cloned());
                input.push(
                    json!({"type": "function_call_output", "call_id": id, "output": "sunny"}),
                );
                next["input"] = Value::Array(input);
            }
        }
        next
    }

    /// Whether a stream ended as a success, or with the dialect's error.
    pub(super) fn stream_end(self, events: &[(String, Value)]) -> Result<StreamEnd, String> {
        let failed = events.iter().any(|(name, data)| match self {
            Api::Messages => name == "error",
            Api::Chat => data.get("error").is_some(),
            Api::Responses => name == "response.failed",
        });
        let completed = events.iter().any(|(name, data)| match self {
            Api::Messages => name == "message_stop",
            Api::Chat => data["choices"][0]["finish_reason"].is_string(),
            Api::Responses => name == "response.completed",
        });
        match (failed, completed) {
            (true, false) => Ok(StreamEnd::Failed),
            (false, true) => Ok(StreamEnd::Completed),
            other => Err(format!(
                "failed and completed, or neither: {other:?} {events:?}"
            )),
        }
    }

    /// The text deltas of a stream.
    pub(super) fn stream_text(self, events: &[(String, Value)]) -> String {
        events
            .iter()
            .filter_map(|(name, data)| match self {
                Api::Messages => data["delta"]["text"].as_str(),
                Api::Chat => data["choices"][0]["delta"]["content"].as_str(),
                Api::Responses => (name == "response.output_text.delta")
                    .then(|| data["delta"].as_str())
                    .flatten(),
            })
            .collect()
    }

    /// The error type of a failed stream.
    pub(super) fn stream_error_type(self, events: &[(String, Value)]) -> String {
        let (_, data) = events.last().unwrap();
        match self {
            Api::Messages => data["error"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Api::Chat => data["error"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Api::Responses => data["response"]["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum StreamEnd {
    Completed,
    Failed,
}

pub(super) fn post(daemon: &Daemon, api: Api, body: &Value) -> Result<Value, String> {
    let res = client().post(daemon.url(api.path())).json(body).send();
    let res = res.map_err(|e| e.to_string())?;
    let status = res.status();
    let reply: Value = res.json().map_err(|e| e.to_string())?;
    ensure!(status == 200, "status {status}: {reply}");
    Ok(reply)
}

pub(super) fn post_stream(
    daemon: &Daemon,
    api: Api,
    body: &Value,
) -> Result<Vec<(String, Value)>, String> {
    let res = client().post(daemon.url(api.path())).json(body).send();
    let res = res.map_err(|e| e.to_string())?;
    ensure!(res.status() == 200, "status {}", res.status());
    let text = res.text().map_err(|e| e.to_string())?;
    Ok(parse_sse(&text)
        .into_iter()
        .filter(|(_, data)| !data.is_string()) // [DONE]
        .collect())
}
