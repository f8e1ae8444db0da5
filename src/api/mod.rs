//! The HTTP API dialects on the wire, and the conversions between them and
//! the job domain: each dialect is a [`Codec`]. Pure code: no I/O, no
//! actors.

pub mod anthropic;
pub mod batches;
pub mod count_tokens;
pub mod dialect;
pub mod error;
pub mod models;
pub mod openai;
pub mod responses;
pub mod stop_reason;
pub mod system;
pub mod tools;

pub use dialect::{Codec, Context, EventEncoder, Frame, Parsed};

use crate::affinity::ConversationKey;
use crate::job::JobSpec;
use crate::prompt::{self, Turn};

/// A dialect-neutral request, from which every job is built the same way.
pub struct Conversation<'a> {
    pub system: String,
    /// The model the CLI is asked for.
    pub model: String,
    pub turns: &'a [Turn],
    pub thinking_budget: u32,
    pub max_tokens: Option<u64>,
    pub tools: &'a [tools::ToolDef],
    pub tool_choice: tools::Choice,
    pub stop_sequences: Vec<String>,
}

impl Conversation<'_> {
    /// The job for this conversation: the history rendered for a fresh
    /// worker, the final message alone for a worker that already holds the
    /// rest, tool set and results, the affinity digests (pinned to the
    /// client's session, if any), and whether it runs as an agent job. The
    /// one place a [`JobSpec`] is made.
    pub fn into_spec(self, ctx: &Context) -> JobSpec {
        let tool_set = tools::tool_set(self.tools, &self.tool_choice);
        let instruction = tool_set
            .as_ref()
            .and_then(|_| tools::choice_instruction(&self.tool_choice));
        let mut prompt = prompt::render(self.turns);
        let mut continuation = prompt::render(&self.turns[self.turns.len().saturating_sub(1)..]);
        prompt.extend(instruction.clone());
        continuation.extend(instruction);
        let tools = tool_set.as_ref().map(|t| t.server.as_str());
        let conversation = ConversationKey::new(&self.system, &self.model, tools, self.turns)
            .map(|key| key.within(&ctx.scope));
        let conversation = match &ctx.session {
            Some(session) => {
                conversation.map(|key| key.pin(session, &self.system, &self.model, tools))
            }
            None => conversation,
        };
        let agent = ctx.agent_allowed && tool_set.is_none();
        JobSpec {
            tool_results: if tool_set.is_some() {
                tools::results_in_last_turn(self.turns, &ctx.node)
            } else {
                Vec::new()
            },
            tools: tool_set,
            system: self.system,
            model: self.model,
            prompt,
            continuation,
            conversation,
            thinking_budget: self.thinking_budget,
            max_tokens: self
                .max_tokens
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            stop_sequences: self.stop_sequences,
            agent,
            background: false,
            streamed: false,
            scope: ctx.scope.clone(),
        }
    }
}

/// The system-prompt instruction that stands in for a JSON output format
/// (OpenAI's `response_format`, Anthropic's structured outputs). Best
/// effort: the model is asked, not constrained, to answer in JSON; a pooled
/// CLI worker cannot take a schema per job (`--json-schema` is fixed per
/// process).
pub fn json_instruction(
    schema: Option<&serde_json::Value>,
    name: Option<&str>,
    description: Option<&str>,
) -> String {
    let mut out = String::from(
        "Respond with only a single valid JSON object: no text before or after it, \
         and no Markdown code fences.",
    );
    if let Some(schema) = schema {
        out.push_str(" The object must conform to this JSON Schema");
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            out.push_str(&format!(" (named `{name}`)"));
        }
        out.push_str(&format!(":\n{schema}"));
    }
    if let Some(description) = description {
        out.push_str(&format!("\nWhat the object is for: {description}"));
    }
    out
}

/// A request the daemon refuses, with the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

/// Parses a request body that must be exactly one JSON document of type
/// `T`; errors name the field at fault (`messages[0].role: …`), and text
/// after the document (`{…}}`, `{…} junk`) is refused.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, InvalidRequest> {
    // Tracking the path costs a string per object key of the body (a big
    // tool set has thousands), so it is paid only to explain a refusal:
    // the same body parsed again gives the same error, with its path.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." || path == "?" {
            InvalidRequest(format!("invalid request body: {inner}"))
        } else {
            InvalidRequest(format!("{path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| InvalidRequest(format!("invalid request body: {e}")))?;
    Ok(value)
}

/// Logs, once per daemon run and field, that a request field was accepted
/// but cannot be applied (the CLI has no per-turn control for it).
pub fn note_ignored(field: &'static str) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if seen.lock().map(|mut s| s.insert(field)).unwrap_or(false) {
        log::debug!(
            "request field `{field}` is accepted but not applied by the CLI workers (logged once)"
        );
    }
}

/// [`note_ignored`] for each field a request carries: `(name, present)`.
pub fn note_ignored_fields(fields: &[(&'static str, bool)]) {
    for &(field, present) in fields {
        if present {
            note_ignored(field);
        }
    }
}

/// Which API a route speaks; decides the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Anthropic,
    /// OpenAI Chat Completions (`/v1/chat/completions`) only; the
    /// Responses API is [`Dialect::Responses`], though both share OpenAI's
    /// error shape.
    ChatCompletions,
    /// The OpenAI Responses API.
    Responses,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(ctx: &Context, tools: &[tools::ToolDef]) -> JobSpec {
        let turns = [Turn {
            role: prompt::Role::User,
            blocks: vec![json!({"type": "text", "text": "hi"})],
        }];
        Conversation {
            system: String::new(),
            model: "m".into(),
            turns: &turns,
            thinking_budget: 0,
            max_tokens: None,
            tools,
            tool_choice: tools::Choice::Auto,
            stop_sequences: Vec::new(),
        }
        .into_spec(ctx)
    }

    #[test]
    fn agent_jobs_and_session_pins_come_from_the_context() {
        let plain = Context::new("sonnet");
        let agent = Context {
            agent_allowed: true,
            ..plain.clone()
        };
        let tool = tools::ToolDef {
            name: "f".into(),
            description: String::new(),
            input_schema: json!({"type": "object"}),
        };
        assert!(!spec(&plain, &[]).agent);
        assert!(spec(&agent, &[]).agent);
        assert!(
            !spec(&agent, &[tool]).agent,
            "caller tools never run as agent"
        );
        let key = |ctx: &Context| spec(ctx, &[]).conversation.unwrap();
        let pinned = |session: &str| Context {
            session: Some(session.into()),
            ..plain.clone()
        };
        assert_ne!(key(&pinned("s1")).lookup, key(&plain).lookup);
        assert_eq!(key(&pinned("s1")).lookup, key(&pinned("s1")).lookup);
        assert_ne!(key(&pinned("s1")).lookup, key(&pinned("s2")).lookup);
    }

    #[test]
    fn only_one_document_is_a_body() {
        let one = |b: &[u8]| parse_json::<serde_json::Value>(b);
        assert!(one(br#"{"messages":[]}"#).is_ok());
        assert!(one(b"{\"a\":1}\n \r\n").is_ok());
        for bad in [
            &b"{\"a\":1}}"[..],
            b"{\"a\":1} junk",
            b"{} {}",
            b"{\"a\":1},",
        ] {
            let e = one(bad).unwrap_err();
            assert!(e.0.contains("trailing"), "{}", e.0);
        }
    }
}
