//! Lines the daemon writes to the CLI's stdin, as typed values: control
//! requests it originates ([`Request`]), its answers to the CLI's own
//! requests ([`Reply`]), user messages, `/clear` and the conversation
//! boundary ([`Outgoing`]). Each is serialized here and nowhere else, so
//! every line is one valid JSON object: a single invalid line kills the CLI.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::mcp::RpcReply;
use crate::job::ToolSet;

/// A control request the daemon sends the CLI (docs/cli-protocol.md §2.3). Each
/// awaits a `control_response` with the same request id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "subtype", rename_all = "snake_case")]
pub enum Request {
    /// Harmless, answered once the CLI has booted, and unlike `initialize`
    /// it leaves the system prompt open (docs/cli-protocol.md §10). The workers' readiness probe
    /// is [`Request::max_output_tokens`]`(None)`, as harmless and warming.
    GetBinaryVersion,
    /// Gives a blank conversation its system prompt; a second one is
    /// accepted and ignored by the CLI.
    Initialize {
        #[serde(rename = "systemPrompt", serialize_with = "one_block")]
        system_prompt: String,
    },
    SetModel {
        model: String,
    },
    SetMaxThinkingTokens {
        max_thinking_tokens: u32,
    },
    /// Registers the SDK MCP servers hosted over this channel, replacing
    /// the previous set (an empty map removes them all).
    McpSetServers {
        servers: BTreeMap<String, SdkServer>,
    },
    /// Applies settings as if given by flags; used for the output token
    /// limit (see [`Request::max_output_tokens`]).
    ApplyFlagSettings {
        settings: FlagSettings,
    },
    /// Ends the running turn with `error_during_execution` (docs/cli-protocol.md §4).
    Interrupt,
}

/// An SDK MCP server entry of `mcp_set_servers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SdkServer {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
}

/// The settings `apply_flag_settings` carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagSettings {
    env: FlagEnv,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct FlagEnv {
    /// Empty restores the CLI's default (verified).
    #[serde(rename = "CLAUDE_CODE_MAX_OUTPUT_TOKENS")]
    max_output_tokens: String,
}

impl Request {
    /// Registers the job's tool server, or removes every server (`None`).
    pub fn tool_server(tools: Option<&ToolSet>) -> Self {
        let servers = tools
            .map(|t| {
                let server = SdkServer {
                    kind: "sdk",
                    name: t.server.clone(),
                };
                (t.server.clone(), server)
            })
            .into_iter()
            .collect();
        Request::McpSetServers { servers }
    }

    /// Sets each turn's `max_tokens` through the CLI's own
    /// `CLAUDE_CODE_MAX_OUTPUT_TOKENS` (`None`: the CLI's default). With
    /// `None` on a fresh worker it is the readiness probe: it changes
    /// nothing, and the first call of a process is the slow one (25–60 ms,
    /// later ones ~2 ms), so boot pays it instead of the first job.
    pub fn max_output_tokens(limit: Option<u32>) -> Self {
        Request::ApplyFlagSettings {
            settings: FlagSettings {
                env: FlagEnv {
                    max_output_tokens: limit.map(|n| n.to_string()).unwrap_or_default(),
                },
            },
        }
    }
}

fn one_block<S: Serializer>(prompt: &str, s: S) -> Result<S::Ok, S::Error> {
    [prompt].serialize(s)
}

/// The daemon's answer to a control request the CLI sent (docs/cli-protocol.md §2.4, §6).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A JSON-RPC message for the CLI's SDK MCP client.
    Mcp(RpcReply),
    /// `can_use_tool`: run the tool with this input.
    Allow { input: Value },
    /// `can_use_tool`: refuse; the model reads `message` as the tool's error.
    Deny { message: String },
    /// A request the daemon does not serve, answered with an error rather
    /// than left blocking the turn.
    Unsupported(String),
}

/// One line the daemon writes to the CLI's stdin.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A control request; its reply carries `request_id`.
    Request {
        request_id: String,
        request: Request,
    },
    /// The answer to the CLI's control request `request_id`.
    Reply { request_id: String, reply: Reply },
    /// A user message carrying content blocks: runs a turn.
    User(Vec<Value>),
    /// The `/clear` command, which starts a fresh conversation in the same
    /// process (the system prompt set by `initialize` stays).
    Clear,
    /// A compaction boundary: the CLI sends the model nothing of the
    /// conversation before it. Verified on 2.1.197 (the fake upstream
    /// records what the model is sent): after `/clear` and this line, the
    /// next request carries the new prompt exactly as a fresh process sends
    /// it, with none of the `<local-command-caveat>`,
    /// `<command-name>/clear</command-name>` and `<local-command-stdout>`
    /// blocks that `/clear` alone leaves; after `set_model`, none of its
    /// `/model` record. The CLI answers nothing to it.
    Boundary,
}

/// The envelope of a stdin line, as the CLI reads it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    ControlRequest {
        request_id: &'a str,
        request: &'a Request,
    },
    ControlResponse {
        response: ResponseBody<'a>,
    },
    User {
        message: UserBody<'a>,
        parent_tool_use_id: Option<()>,
        session_id: &'static str,
    },
    System {
        subtype: &'static str,
        compact_metadata: CompactMetadata,
        uuid: String,
        session_id: &'static str,
    },
}

#[derive(Serialize)]
#[serde(tag = "subtype", rename_all = "snake_case")]
enum ResponseBody<'a> {
    Success {
        request_id: &'a str,
        response: Payload<'a>,
    },
    Error {
        request_id: &'a str,
        error: &'a str,
    },
}

/// The `response` of a successful reply, serialized straight from the
/// [`Reply`] it borrows (a tool result is not copied into a `Value` first).
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Mcp {
        mcp_response: &'a RpcReply,
    },
    Allow {
        behavior: &'static str,
        #[serde(rename = "updatedInput")]
        updated_input: &'a Value,
    },
    Deny {
        behavior: &'static str,
        message: &'a str,
    },
}

#[derive(Serialize)]
struct UserBody<'a> {
    role: &'static str,
    content: Content<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Blocks(&'a [Value]),
    Text(&'static str),
}

#[derive(Serialize)]
struct CompactMetadata {
    trigger: &'static str,
    pre_tokens: u64,
}

impl Outgoing {
    /// The line to write: one JSON object and its `\n`. Always valid JSON,
    /// since a single invalid line kills the CLI.
    pub fn to_line(&self) -> String {
        let user = |content| Line::User {
            message: UserBody {
                role: "user",
                content,
            },
            parent_tool_use_id: None,
            session_id: "",
        };
        let line = match self {
            Outgoing::Request {
                request_id,
                request,
            } => Line::ControlRequest {
                request_id,
                request,
            },
            Outgoing::Reply { request_id, reply } => {
                let success = |response| ResponseBody::Success {
                    request_id,
                    response,
                };
                Line::ControlResponse {
                    response: match reply {
                        Reply::Mcp(mcp_response) => success(Payload::Mcp { mcp_response }),
                        Reply::Allow { input } => success(Payload::Allow {
                            behavior: "allow",
                            updated_input: input,
                        }),
                        Reply::Deny { message } => success(Payload::Deny {
                            behavior: "deny",
                            message,
                        }),
                        Reply::Unsupported(error) => ResponseBody::Error { request_id, error },
                    },
                }
            }
            Outgoing::User(blocks) => user(Content::Blocks(blocks)),
            Outgoing::Clear => user(Content::Text("/clear")),
            Outgoing::Boundary => Line::System {
                subtype: "compact_boundary",
                compact_metadata: CompactMetadata {
                    trigger: "manual",
                    pre_tokens: 0,
                },
                uuid: uuid::Uuid::new_v4().to_string(),
                session_id: "",
            },
        };
        // Serializing these types cannot fail: no map has non-string keys.
        let mut s = serde_json::to_string(&line).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::mcp::RpcResult;
    use super::super::recorded::stdin_line as recorded;
    use super::*;
    use crate::job::ToolResult;
    use serde_json::json;

    #[test]
    fn outgoing_lines_are_single_json_lines() {
        let l = Outgoing::User(vec![json!({"type": "text", "text": "a\nb\"c"})]).to_line();
        assert!(l.ends_with('\n'));
        assert_eq!(l.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(v["message"]["content"][0]["text"], "a\nb\"c");
    }

    fn ours(line: Outgoing) -> Value {
        serde_json::from_str(line.to_line().trim_end()).unwrap()
    }

    fn request(request_id: &str, request: Request) -> Value {
        ours(Outgoing::Request {
            request_id: request_id.into(),
            request,
        })
    }

    #[test]
    fn control_requests_match_the_recorded_lines() {
        let by_id = |id: &'static str| recorded(move |v| v["request_id"] == id);
        assert_eq!(
            request("probe-1", Request::GetBinaryVersion),
            by_id("probe-1")
        );
        let system_prompt = "You are terse.".to_string();
        assert_eq!(
            request("init-1", Request::Initialize { system_prompt }),
            by_id("init-1")
        );
        let model = "claude-haiku-4-5".to_string();
        assert_eq!(
            request("model-1", Request::SetModel { model }),
            by_id("model-1")
        );
        let max_thinking_tokens = 2048;
        assert_eq!(
            request(
                "think-1",
                Request::SetMaxThinkingTokens {
                    max_thinking_tokens
                }
            ),
            by_id("think-1")
        );
        assert_eq!(request("int-1", Request::Interrupt), by_id("int-1"));
        let mut tools = ToolSet::new(Vec::new());
        tools.server = "caller_ab12".into();
        assert_eq!(
            request("srv-1", Request::tool_server(Some(&tools))),
            by_id("srv-1")
        );
    }

    /// Not in the recordings: the shapes verified by hand
    /// (docs/cli-protocol.md §2.3, `mcp_set_servers` and `apply_flag_settings`).
    #[test]
    fn unrecorded_requests_have_the_verified_shape() {
        assert_eq!(
            request("t", Request::tool_server(None))["request"],
            json!({"subtype": "mcp_set_servers", "servers": {}})
        );
        let env = |limit| request("m", Request::max_output_tokens(limit))["request"].clone();
        assert_eq!(
            env(Some(100)),
            json!({"subtype": "apply_flag_settings",
                   "settings": {"env": {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "100"}}})
        );
        assert_eq!(
            env(None)["settings"]["env"]["CLAUDE_CODE_MAX_OUTPUT_TOKENS"],
            ""
        );
    }

    #[test]
    fn replies_and_user_lines_match_the_recorded_lines() {
        let reply = |id: &str, reply| {
            ours(Outgoing::Reply {
                request_id: id.into(),
                reply,
            })
        };
        let id = "c73c3c5e-2bcb-40ba-a5dd-e9db5d7aa6db";
        let input = json!({"city": "Lima"});
        assert_eq!(
            reply(id, Reply::Allow { input }),
            recorded(|v| v["response"]["request_id"] == id)
        );
        let id = "795dac10-3772-4f4b-b2d3-599122685d44";
        let result = ToolResult {
            tool_use_id: "toolu_fake000007_0".into(),
            content: vec![crate::job::ToolContent::text("Sunny in Lima")],
            is_error: false,
        };
        let rpc = RpcReply::new(json!(2), RpcResult::tool_result(&result));
        assert_eq!(
            reply(id, Reply::Mcp(rpc)),
            recorded(|v| v["response"]["request_id"] == id)
        );
        let deny = reply(
            "d",
            Reply::Deny {
                message: "NOPE".into(),
            },
        );
        assert_eq!(
            deny["response"]["response"],
            json!({"behavior": "deny", "message": "NOPE"})
        );
        let refused = reply("e", Reply::Unsupported("no".into()));
        assert_eq!(
            refused["response"],
            json!({"subtype": "error", "request_id": "e", "error": "no"})
        );

        assert_eq!(
            ours(Outgoing::Clear),
            recorded(|v| v["message"]["content"] == "/clear")
        );
        // Recorded with string content; the daemon sends blocks, which the
        // CLI takes alike (docs/cli-protocol.md §2.1).
        let mut hello = recorded(|v| v["message"]["content"] == "hello");
        hello["message"]["content"] = json!([{"type": "text", "text": "hello"}]);
        assert_eq!(
            ours(Outgoing::User(vec![
                json!({"type": "text", "text": "hello"})
            ])),
            hello
        );
        let boundary = ours(Outgoing::Boundary);
        assert_eq!(boundary["type"], "system");
        assert_eq!(boundary["subtype"], "compact_boundary");
        assert_ne!(ours(Outgoing::Boundary)["uuid"], boundary["uuid"]);
    }
}
