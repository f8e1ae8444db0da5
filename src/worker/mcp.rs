//! The daemon's side of an SDK MCP server hosted over the CLI's control
//! channel: the JSON-RPC replies for the handshake and `tools/list`, and the
//! shapes of `tools/call`. Pure functions; the worker does the routing.
//!
//! The CLI opens the server lazily at the first turn (each handshake
//! message arrives twice), lists its tools, and, when the model calls one,
//! sends `tools/call` and blocks until the daemon answers.

use serde_json::{json, Value};

use crate::job::{ToolResult, ToolSet};

/// An MCP message the CLI sent, with what the worker needs of it.
#[derive(Debug, Clone, PartialEq)]
pub enum McpRequest {
    /// Answer with this JSON-RPC message right away.
    Immediate(Value),
    /// The model called a tool: answer once the caller's result is known.
    ToolCall(ToolCall),
}

/// A `tools/call` the CLI is blocked on.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The control request to answer.
    pub request_id: String,
    /// The JSON-RPC id to echo.
    pub rpc_id: Value,
    /// The API `tool_use.id`, as the client knows the call.
    pub tool_use_id: String,
}

/// Classifies the `message` of an `mcp_message` control request for
/// `server` under the current tool set.
pub fn classify(
    request_id: &str,
    server: &str,
    message: &Value,
    tools: Option<&ToolSet>,
) -> McpRequest {
    // A message for a server that is no longer the job's gets nothing.
    let tools = tools.filter(|t| t.server == server);
    let result = match message["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": "2024-11-05",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": server, "version": env!("CARGO_PKG_VERSION")}
        }),
        "tools/list" => json!({"tools": tools.map(|t| t.tools.clone()).unwrap_or_default()}),
        "tools/call" => {
            let params = &message["params"];
            return McpRequest::ToolCall(ToolCall {
                request_id: request_id.to_string(),
                rpc_id: message.get("id").cloned().unwrap_or(Value::Null),
                tool_use_id: params["_meta"]["claudecode/toolUseId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        // Notifications (initialized, cancelled, …) and anything else.
        _ => json!({}),
    };
    McpRequest::Immediate(rpc_reply(
        message.get("id").cloned().unwrap_or(Value::Null),
        result,
    ))
}

/// The JSON-RPC message carrying `result` (the control response wraps it,
/// see [`Reply::Mcp`](super::protocol::Reply::Mcp)).
pub fn rpc_reply(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The reply to a tool call, from the caller's result.
pub fn call_reply(call: &ToolCall, result: &ToolResult) -> Value {
    rpc_reply(
        call.rpc_id.clone(),
        json!({"content": result.content, "isError": result.is_error}),
    )
}

/// The reply to a tool call nobody answered.
pub fn call_unanswered(call: &ToolCall) -> Value {
    rpc_reply(
        call.rpc_id.clone(),
        json!({"content": [{"type": "text", "text": "no result was provided for this tool call"}], "isError": true}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> ToolSet {
        ToolSet::new(vec![
            json!({"name": "get_weather", "description": "W", "inputSchema": {"type": "object"}}),
        ])
    }

    #[test]
    fn handshake_and_listing_answer_for_the_current_server() {
        let t = tools();
        let req = json!({"method": "tools/list", "jsonrpc": "2.0", "id": 1});
        match classify("r1", &t.server, &req, Some(&t)) {
            McpRequest::Immediate(v) => {
                assert_eq!(v["id"], 1);
                assert_eq!(v["result"]["tools"][0]["name"], "get_weather");
            }
            other => panic!("{other:?}"),
        }
        let stale = json!({"method": "tools/list", "id": 2});
        match classify("r2", "cold", &stale, Some(&t)) {
            McpRequest::Immediate(v) => assert_eq!(v["result"]["tools"], json!([])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tool_calls_carry_the_api_tool_use_id() {
        let t = tools();
        let req = json!({"method": "tools/call", "jsonrpc": "2.0", "id": 7,
            "params": {"name": "get_weather", "arguments": {"city": "Lima"}, "_meta": {"claudecode/toolUseId": "toolu_1"}}});
        let McpRequest::ToolCall(call) = classify("r3", &t.server, &req, Some(&t)) else {
            panic!()
        };
        assert_eq!(call.tool_use_id, "toolu_1");
        let reply = call_reply(
            &call,
            &ToolResult {
                tool_use_id: "toolu_1".into(),
                content: vec![json!({"type": "text", "text": "Sunny"})],
                is_error: false,
            },
        );
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["result"]["content"][0]["text"], "Sunny");
    }
}
