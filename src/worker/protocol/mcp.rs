//! The JSON-RPC replies of the daemon's SDK MCP server, as typed values: the
//! `mcp_response` of a [`Reply::Mcp`](super::Reply::Mcp). The server offers
//! tools and nothing else; the shapes are those the CLI was answered with in
//! the recorded session (`cli-transcripts/06-sdk-mcp-parallel-tool-calls`).

use serde::Serialize;
use serde_json::Value;

use crate::job::{ToolContent, ToolResult};

/// The MCP revision the server speaks. The CLI asks for a newer one and
/// accepts this answer (recorded).
const PROTOCOL_VERSION: &str = "2024-11-05";

/// One JSON-RPC response message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcReply {
    jsonrpc: &'static str,
    /// The request's id, echoed; `null` when answering a notification.
    pub id: Value,
    pub result: RpcResult,
}

impl RpcReply {
    /// The reply to the JSON-RPC request `id`.
    pub fn new(id: Value, result: RpcResult) -> Self {
        Self {
            jsonrpc: "2.0",
            id,
            result,
        }
    }
}

/// The `result` of a reply, by the method it answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RpcResult {
    /// `initialize`: the server offers tools.
    #[serde(rename_all = "camelCase")]
    Initialize {
        protocol_version: &'static str,
        capabilities: Capabilities,
        server_info: ServerInfo,
    },
    /// `tools/list`: the job's tools, in MCP's shape.
    Tools { tools: Vec<Value> },
    /// `tools/call`: the tool's result.
    #[serde(rename_all = "camelCase")]
    ToolCall {
        content: Vec<ToolContent>,
        is_error: bool,
    },
    /// Notifications and methods the server does not implement: `{}`.
    Empty {},
}

impl RpcResult {
    /// The answer to `initialize` for the server called `name`.
    pub fn initialize(name: &str) -> Self {
        RpcResult::Initialize {
            protocol_version: PROTOCOL_VERSION,
            capabilities: Capabilities::default(),
            server_info: ServerInfo {
                name: name.to_string(),
                version: env!("CARGO_PKG_VERSION"),
            },
        }
    }

    /// The answer to `tools/call`, from the caller's result.
    pub fn tool_result(result: &ToolResult) -> Self {
        RpcResult::ToolCall {
            content: result.content.clone(),
            is_error: result.is_error,
        }
    }

    /// The answer to a `tools/call` nobody answered: an error the model reads.
    pub fn unanswered() -> Self {
        RpcResult::ToolCall {
            content: vec![ToolContent::text(
                "no result was provided for this tool call",
            )],
            is_error: true,
        }
    }
}

/// `capabilities` of `initialize`: `{"tools": {}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Capabilities {
    tools: NoOptions,
}

/// An empty object: a capability offered with no options.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NoOptions {}

/// `serverInfo` of `initialize`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerInfo {
    pub name: String,
    pub version: &'static str,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::recorded;
    use super::*;

    /// The `mcp_response` the CLI was sent for the control request `id`.
    fn recorded_reply(id: &str) -> Value {
        recorded::stdin_line(|v| v["response"]["request_id"] == id)["response"]["response"]
            ["mcp_response"]
            .clone()
    }

    fn ours(id: Value, result: RpcResult) -> Value {
        serde_json::to_value(RpcReply::new(id, result)).unwrap()
    }

    #[test]
    fn handshake_replies_match_the_recorded_ones() {
        let mut initialize = recorded_reply("7be43e8b-3694-474b-ae2f-3aae09418b12");
        // The recording's server called itself version "1"; ours says its own.
        initialize["result"]["serverInfo"]["version"] = json!(env!("CARGO_PKG_VERSION"));
        assert_eq!(
            ours(json!(0), RpcResult::initialize("caller_ab12")),
            initialize
        );
        assert_eq!(
            ours(Value::Null, RpcResult::Empty {}),
            recorded_reply("244274a2-ffa9-4765-9139-08de7cd0094e")
        );
        let tools = vec![json!({"name": "get_weather", "description": "Weather",
            "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}}})];
        assert_eq!(
            ours(json!(1), RpcResult::Tools { tools }),
            recorded_reply("ee4f7f37-48a8-4b63-9227-0916b9f8aadc")
        );
    }

    #[test]
    fn tool_call_replies_match_the_recorded_ones() {
        let result = ToolResult {
            tool_use_id: "toolu_fake000007_1".into(),
            content: vec![crate::job::ToolContent::text("Sunny in Pune")],
            is_error: false,
        };
        assert_eq!(
            ours(json!(3), RpcResult::tool_result(&result)),
            recorded_reply("d206a50e-00e4-480c-b749-1dd94dd1f81e")
        );
        let unanswered = ours(json!(4), RpcResult::unanswered());
        assert_eq!(unanswered["result"]["isError"], true);
        assert_eq!(unanswered["result"]["content"][0]["type"], "text");
    }
}
