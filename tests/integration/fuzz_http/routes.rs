//! The body-taking routes under test: each one's path, dialect, a valid base
//! body and the wrong values of each of its fields.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    Messages,
    CountTokens,
    Chat,
}

impl Route {
    pub(super) const ALL: [Route; 3] = [Route::Messages, Route::CountTokens, Route::Chat];

    pub(super) fn path(self) -> &'static str {
        match self {
            Route::Messages => "/v1/messages",
            Route::CountTokens => "/v1/messages/count_tokens",
            Route::Chat => "/v1/chat/completions",
        }
    }

    pub(super) fn is_openai(self) -> bool {
        self == Route::Chat
    }

    /// A valid body exercising most fields, the base of the mutations.
    pub(super) fn base(self) -> Value {
        match self {
            Route::Messages | Route::CountTokens => json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "system": [{"type": "text", "text": "Be terse."}],
                "stream": false,
                "thinking": {"type": "disabled"},
                "tools": [{"name": "lookup", "description": "Looks up",
                           "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "auto"},
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "fuzz hello"}]},
                    {"role": "assistant", "content": "hi"},
                    {"role": "user", "content": "fuzz again"}
                ]
            }),
            Route::Chat => json!({
                "model": "claude-haiku-4-5",
                "messages": [
                    {"role": "system", "content": "Be terse."},
                    {"role": "user", "content": [{"type": "text", "text": "fuzz hello"}]},
                    {"role": "assistant", "content": "hi"},
                    {"role": "user", "content": "fuzz again"}
                ],
                "stream": false,
                "stream_options": {"include_usage": true},
                "max_tokens": 64,
                "temperature": 0.5,
                "top_p": 1.0,
                "n": 1,
                "stop": ["STOP"],
                "seed": 7,
                "user": "fuzzer",
                "response_format": {"type": "text"},
                "reasoning_effort": "none"
            }),
        }
    }

    /// (JSON pointer, values of the wrong type or out of range) for every
    /// field the route reads.
    pub(super) fn wrong_values(self) -> Vec<(&'static str, Vec<Value>)> {
        let long_name = "x".repeat(65);
        match self {
            Route::Messages | Route::CountTokens => vec![
                ("/model", vec![json!(42), json!(true), json!([]), json!({})]),
                (
                    "/messages",
                    vec![json!({}), json!("hello"), json!(42), json!(null), json!([])],
                ),
                (
                    "/messages/0",
                    vec![json!("hi"), json!(42), json!([]), json!(null)],
                ),
                (
                    "/messages/0/role",
                    vec![
                        json!(["user"]),
                        json!(42),
                        json!(null),
                        json!("robot"),
                        // `system` is a valid role: mid-conversation system context.
                        json!("developer"),
                        json!("User"),
                    ],
                ),
                (
                    "/messages/0/content",
                    vec![
                        json!(42),
                        json!({}),
                        json!(true),
                        json!(null),
                        json!([]),
                        json!([42]),
                        json!(["text"]),
                        json!([{}]),
                        json!([{"type": 42}]),
                        json!([{"type": "text"}]),
                        json!([{"type": "text", "text": 42}]),
                        json!([{"type": "image"}]),
                        json!([{"type": "image", "source": "x"}]),
                        json!([{"type": "image", "source": {}}]),
                        json!([{"type": "document", "source": []}]),
                        json!([{"type": "bogus", "text": "x"}]),
                    ],
                ),
                ("/messages/1/content", vec![json!(""), json!(7), json!([])]),
                ("/messages/2/role", vec![json!([]), json!(1.5)]),
                (
                    "/max_tokens",
                    vec![json!("64"), json!(-1), json!(1.5), json!([]), json!(0)],
                ),
                (
                    "/stream",
                    vec![json!("true"), json!(1), json!([]), json!({})],
                ),
                (
                    "/system",
                    vec![
                        json!(42),
                        json!({}),
                        json!(true),
                        json!([42]),
                        json!([{"text": "x"}]),
                        json!([{"type": "image", "text": "x"}]),
                        json!([{"type": "text", "text": 42}]),
                    ],
                ),
                (
                    "/tools",
                    vec![
                        json!("lookup"),
                        json!(42),
                        json!({}),
                        json!(["lookup"]),
                        json!([{}]),
                        json!([{"name": 42}]),
                        json!([{"name": ""}]),
                        json!([{"name": long_name}]),
                        json!([{"type": "web_search_20250305", "name": "web"}]),
                    ],
                ),
                (
                    "/thinking",
                    vec![
                        json!("enabled"),
                        json!(42),
                        json!({}),
                        json!({"type": "enabled"}),
                        json!({"type": "enabled", "budget_tokens": "2048"}),
                        json!({"type": "enabled", "budget_tokens": -1}),
                        json!({"type": "bogus"}),
                    ],
                ),
                (
                    "/tool_choice",
                    vec![
                        json!("auto"),
                        json!(42),
                        json!({"type": "tool"}),
                        json!({"type": "tool", "name": "nope"}),
                        json!({"type": "bogus"}),
                    ],
                ),
            ],
            Route::Chat => vec![
                ("/model", vec![json!(42), json!([]), json!({})]),
                (
                    "/messages",
                    vec![json!({}), json!("x"), json!(42), json!(null), json!([])],
                ),
                ("/messages/1", vec![json!("x"), json!(42), json!([])]),
                (
                    "/messages/1/role",
                    vec![json!(["user"]), json!(42), json!("robot"), json!(null)],
                ),
                (
                    "/messages/1/content",
                    vec![
                        json!(42),
                        json!({}),
                        json!(true),
                        json!([42]),
                        json!([{}]),
                        json!([{"type": "text"}]),
                        json!([{"type": "text", "text": 1}]),
                        json!([{"type": "bogus"}]),
                        json!([{"type": "input_audio", "input_audio": {}}]),
                        json!([{"type": "image_url"}]),
                        json!([{"type": "image_url", "image_url": 42}]),
                        json!([{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]),
                        json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]),
                        json!([{"type": "image_url", "image_url": {"url": "data:text/html;base64,AAAA"}}]),
                        json!([{"type": "image_url", "image_url": {"url": "data:image/png,AAAA"}}]),
                        json!([{"type": "file"}]),
                    ],
                ),
                (
                    "/messages/0/content",
                    vec![json!(42), json!([42]), json!([{"type": "image_url"}])],
                ),
                (
                    "/messages/2/tool_calls",
                    vec![json!("x"), json!(42), json!([{}]), json!([{"id": "c"}])],
                ),
                (
                    "/max_tokens",
                    vec![json!("10"), json!(-1), json!(0), json!(1.5)],
                ),
                ("/max_completion_tokens", vec![json!("10"), json!(0)]),
                ("/stream", vec![json!("true"), json!(1), json!({})]),
                (
                    "/stream_options",
                    vec![json!("x"), json!(42), json!({"include_usage": "yes"})],
                ),
                ("/temperature", vec![json!("hot"), json!([])]),
                ("/top_p", vec![json!("x"), json!({})]),
                ("/n", vec![json!("1"), json!(0), json!(2), json!(-1)]),
                ("/stop", vec![json!(42), json!([42]), json!({})]),
                ("/seed", vec![json!("x"), json!(1.5)]),
                ("/user", vec![json!(42), json!([])]),
                ("/tools", vec![json!("t"), json!(42), json!({})]),
                (
                    "/response_format",
                    vec![
                        json!("json"),
                        json!(42),
                        json!({"type": "bogus"}),
                        json!({"type": "json_schema"}),
                    ],
                ),
                ("/reasoning_effort", vec![json!(42), json!("extreme")]),
            ],
        }
    }
}
