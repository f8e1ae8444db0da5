//! The daemon's side of an SDK MCP server hosted over the CLI's control
//! channel: which reply each JSON-RPC message the CLI sends gets (the reply
//! types are in [`protocol::mcp`](super::protocol::mcp)). Pure functions;
//! the worker's session does the routing.
//!
//! The CLI opens the server lazily at the first turn (each handshake
//! message arrives twice), lists its tools, and, when the model calls one,
//! sends `tools/call` and blocks until the daemon answers.

use serde_json::Value;

use super::protocol::mcp::{RpcReply, RpcResult};
use crate::job::{ToolResult, ToolSet};

/// An MCP message the CLI sent, with what the worker needs of it.
#[derive(Debug, Clone, PartialEq)]
pub enum McpRequest {
    /// Answer with this JSON-RPC message right away.
    Immediate(RpcReply),
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
    let id = || message.get("id").cloned().unwrap_or(Value::Null);
    let result = match message["method"].as_str().unwrap_or_default() {
        "initialize" => RpcResult::initialize(server),
        "tools/list" => RpcResult::Tools {
            tools: tools.map(|t| t.tools.clone()).unwrap_or_default(),
        },
        "tools/call" => {
            return McpRequest::ToolCall(ToolCall {
                request_id: request_id.to_string(),
                rpc_id: id(),
                tool_use_id: message["params"]["_meta"]["claudecode/toolUseId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        // Notifications (initialized, cancelled, …) and anything else.
        _ => RpcResult::Empty {},
    };
    McpRequest::Immediate(RpcReply::new(id(), result))
}

/// The reply to a tool call, from the caller's result.
pub fn call_reply(call: &ToolCall, result: &ToolResult) -> RpcReply {
    RpcReply::new(call.rpc_id.clone(), RpcResult::tool_result(result))
}

/// The reply to a tool call nobody answered.
pub fn call_unanswered(call: &ToolCall) -> RpcReply {
    RpcReply::new(call.rpc_id.clone(), RpcResult::unanswered())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
            McpRequest::Immediate(reply) => {
                assert_eq!(reply.id, 1);
                assert_eq!(
                    reply.result,
                    RpcResult::Tools {
                        tools: t.tools.clone()
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let stale = json!({"method": "tools/list", "id": 2});
        match classify("r2", "cold", &stale, Some(&t)) {
            McpRequest::Immediate(reply) => {
                assert_eq!(reply.result, RpcResult::Tools { tools: vec![] })
            }
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
                content: vec![crate::job::ToolContent::text("Sunny")],
                is_error: false,
            },
        );
        assert_eq!(reply.id, 7);
        assert_eq!(
            reply.result,
            RpcResult::ToolCall {
                content: vec![crate::job::ToolContent::text("Sunny")],
                is_error: false
            }
        );
    }
}
