//! Conversation affinity: recognising that a request continues the
//! conversation a worker already holds.
//!
//! Clients of both APIs re-send the whole conversation every turn. After a
//! job, its worker's CLI conversation equals the request's messages plus the
//! reply it produced. A digest of exactly that — system prompt, model, tool
//! set and every message, normalised so that a client echoing the reply as
//! a string or as blocks gives the same digest — keys the worker. A later
//! request whose messages minus the final user message have that digest is
//! the same conversation, one turn on.
//!
//! Exact matching only: any byte of difference in what is digested gives
//! another key. The hasher is SipHash keyed at random per daemon run, so a
//! client cannot construct a collision with someone else's conversation.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::prompt::{Role, Turn};

/// This run's random hashing keys.
fn keys() -> &'static RandomState {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new)
}

/// A keyed digest of `text`.
pub fn digest_str(text: &str) -> u64 {
    keys().hash_one(text)
}

/// A keyed digest of a list of JSON values (tool servers are named by it).
pub fn digest_json(values: &[Value]) -> u64 {
    let mut hasher = keys().build_hasher();
    hash_items(&mut hasher, values);
    hasher.finish()
}

/// Feeds `value` to `hasher` by walking the tree rather than serializing
/// it: a client's tool set or history is tens of KB on every request. Each
/// node is tagged and each string and container delimited, so different
/// values feed different streams; object keys come in sorted order, so two
/// spellings of one value hash the same.
fn hash_json(hasher: &mut impl Hasher, value: &Value) {
    match value {
        Value::Null => hasher.write_u8(0),
        Value::Bool(b) => hasher.write_u8(1 + u8::from(*b)),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => {
                hasher.write_u8(3);
                hasher.write_u64(u);
            }
            (None, Some(i), _) => {
                hasher.write_u8(4);
                hasher.write_i64(i);
            }
            (None, None, f) => {
                hasher.write_u8(5);
                hasher.write_u64(f.map_or(0, f64::to_bits));
            }
        },
        Value::String(s) => {
            hasher.write_u8(6);
            s.hash(hasher);
        }
        Value::Array(items) => hash_items(hasher, items),
        Value::Object(map) => {
            hasher.write_u8(8);
            hasher.write_usize(map.len());
            for (key, item) in map {
                key.hash(hasher);
                hash_json(hasher, item);
            }
        }
    }
}

/// [`hash_json`] of an array of `items`.
fn hash_items(hasher: &mut impl Hasher, items: &[Value]) {
    hasher.write_u8(7);
    hasher.write_usize(items.len());
    for item in items {
        hash_json(hasher, item);
    }
}

/// The conversation digests of one request.
#[derive(Debug, Clone)]
pub struct ConversationKey {
    /// Digest of everything but the final user message: the key a worker
    /// bound to this conversation's previous turn holds.
    pub lookup: u64,
    /// Hasher state after every message of the request; the worker adds its
    /// reply to get the key it is bound under afterwards.
    after_request: <RandomState as BuildHasher>::Hasher,
    /// A client-pinned session's key, the same before and after every turn.
    pinned: Option<u64>,
    /// The caller's scope mixed into every key (see [`Self::within`]).
    scope: Option<u64>,
}

impl ConversationKey {
    /// Digests a conversation. `None` when it cannot be continued in a live
    /// worker: it must end with a user message. One that ends with tool
    /// results is keyed too (tool calls and results are digested as sent),
    /// so that the worker which continues the parked turn stays bound to the
    /// conversation afterwards; such a request itself never goes to a bound
    /// worker (a CLI turn takes tool results only through a parked call).
    pub fn new(system: &str, model: &str, tools: Option<&str>, turns: &[Turn]) -> Option<Self> {
        let (last, earlier) = turns.split_last()?;
        if last.role != Role::User {
            return None;
        }
        let mut hasher = keys().build_hasher();
        (system, model, tools.unwrap_or("")).hash(&mut hasher);
        for turn in earlier {
            feed(&mut hasher, turn.role, &turn.blocks);
        }
        let lookup = hasher.finish();
        feed(&mut hasher, last.role, &last.blocks);
        Some(Self {
            lookup,
            after_request: hasher,
            pinned: None,
            scope: None,
        })
    }

    /// Confines the conversation to one caller (`scope`: a digest of its API
    /// key, the same for every request of a daemon without keys): only that
    /// caller's requests continue it, whatever they send.
    pub fn within(self, scope: &str) -> Self {
        let scope = digest_str(scope);
        Self {
            lookup: keys().hash_one((scope, self.lookup)),
            scope: Some(scope),
            ..self
        }
    }

    /// Turns a content key into an explicit session pin (the client's
    /// `x-claude-pool-session` header): every turn of the session goes to
    /// the worker holding it, whatever history the request carries. The
    /// system prompt, model and tools still have to match, and the caller's
    /// scope: a session id is per API key.
    pub fn pin(self, session: &str, system: &str, model: &str, tools: Option<&str>) -> Self {
        let key = keys().hash_one((
            "pinned session",
            self.scope,
            session,
            system,
            model,
            tools.unwrap_or(""),
        ));
        Self {
            lookup: key,
            pinned: Some(key),
            ..self
        }
    }

    /// The key of the conversation once `reply` (the assistant's content
    /// blocks, as returned to the client) has been added.
    pub fn after_reply(&self, reply: &[impl serde::Serialize]) -> u64 {
        if let Some(key) = self.pinned {
            return key;
        }
        // In the wire shape: the client sends the reply back as it got it.
        let reply: Vec<Value> = reply
            .iter()
            .map(|block| serde_json::to_value(block).unwrap_or(Value::Null))
            .collect();
        let mut hasher = self.after_request.clone();
        feed(&mut hasher, Role::Assistant, &reply);
        match self.scope {
            Some(scope) => keys().hash_one((scope, hasher.finish())),
            None => hasher.finish(),
        }
    }
}

fn feed(hasher: &mut impl Hasher, role: Role, blocks: &[Value]) {
    let role = match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    role.hash(hasher);
    hash_items(hasher, &normalize(blocks));
}

/// Blocks as they matter to the conversation: thinking dropped (clients
/// differ in echoing it), adjacent text merged, presentation-only fields
/// (`cache_control`, `citations`) removed.
fn normalize(blocks: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for block in blocks {
        match block["type"].as_str().unwrap_or_default() {
            "thinking" | "redacted_thinking" => {}
            "text" => {
                let text = block["text"].as_str().unwrap_or_default();
                if let Some(prev) = out.last_mut().filter(|p| p["type"] == "text") {
                    let merged = format!("{}{text}", prev["text"].as_str().unwrap_or_default());
                    prev["text"] = Value::String(merged);
                } else {
                    out.push(json!({"type": "text", "text": text}));
                }
            }
            "tool_use" => out.push(json!({
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": block["input"]
            })),
            "tool_result" => out.push(json!({
                "type": "tool_result",
                "tool_use_id": block["tool_use_id"],
                "content": normalize_result_content(&block["content"]),
                "is_error": block["is_error"].as_bool().unwrap_or(false),
            })),
            _ => {
                let mut block = block.clone();
                if let Some(obj) = block.as_object_mut() {
                    obj.remove("cache_control");
                    obj.remove("citations");
                }
                out.push(block);
            }
        }
    }
    out
}

fn normalize_result_content(content: &Value) -> Value {
    match content {
        Value::String(text) => Value::Array(normalize(&[json!({"type": "text", "text": text})])),
        Value::Array(blocks) => Value::Array(normalize(blocks)),
        _ => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: Role, text: &str) -> Turn {
        Turn {
            role,
            blocks: vec![json!({"type": "text", "text": text})],
        }
    }

    #[test]
    fn the_next_turn_finds_the_previous_turns_key() {
        let first = vec![turn(Role::User, "hi")];
        let key = ConversationKey::new("S", "m", None, &first).unwrap();
        let reply = vec![
            json!({"type": "text", "text": "Hel"}),
            json!({"type": "text", "text": "lo"}),
        ];
        let bound = key.after_reply(&reply);
        // The client echoes the reply as a plain string.
        let second = vec![
            turn(Role::User, "hi"),
            turn(Role::Assistant, "Hello"),
            turn(Role::User, "again"),
        ];
        assert_eq!(
            ConversationKey::new("S", "m", None, &second)
                .unwrap()
                .lookup,
            bound
        );
    }

    #[test]
    fn json_digests_follow_content_not_spelling() {
        let parsed = |text: &str| -> Vec<Value> { serde_json::from_str(text).unwrap() };
        assert_eq!(
            digest_json(&parsed(
                r#"[{"name": "f", "schema": {"type": "object", "n": 1}}]"#
            )),
            digest_json(&parsed(
                r#"[{"schema":{"n":1,"type":"object"},"name":"f"}]"#
            )),
            "key order and whitespace do not count"
        );
        let differ = [
            (r#"[1]"#, r#"["1"]"#),
            (r#"[1]"#, r#"[1.0]"#),
            (r#"[null]"#, r#"[false]"#),
            (r#"[[]]"#, r#"[{}]"#),
            (r#"[{"a": "bc"}]"#, r#"[{"ab": "c"}]"#),
            (r#"[["a", "b"]]"#, r#"[["ab"]]"#),
            (r#"[[["a"], "b"]]"#, r#"[["a", ["b"]]]"#),
            (r#"[{"a": 1}, {}]"#, r#"[{"a": 1, "": {}}]"#),
        ];
        for (a, b) in differ {
            assert_ne!(
                digest_json(&parsed(a)),
                digest_json(&parsed(b)),
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn any_difference_changes_the_key() {
        let base = vec![
            turn(Role::User, "hi"),
            turn(Role::Assistant, "Hello"),
            turn(Role::User, "x"),
        ];
        let key = |system: &str, model: &str, tools: Option<&str>, turns: &[Turn]| {
            ConversationKey::new(system, model, tools, turns)
                .unwrap()
                .lookup
        };
        let reference = key("S", "m", None, &base);
        assert_ne!(reference, key("S2", "m", None, &base));
        assert_ne!(reference, key("S", "m2", None, &base));
        assert_ne!(reference, key("S", "m", Some("t"), &base));
        let mut edited = base.clone();
        edited[1] = turn(Role::Assistant, "Hello!");
        assert_ne!(reference, key("S", "m", None, &edited));
        let mut swapped = base.clone();
        swapped[0].role = Role::Assistant;
        assert_ne!(reference, key("S", "m", None, &swapped));
    }

    #[test]
    fn keys_are_confined_to_their_scope() {
        let first = vec![turn(Role::User, "hi")];
        let second = vec![
            turn(Role::User, "hi"),
            turn(Role::Assistant, "Hello"),
            turn(Role::User, "again"),
        ];
        let reply = [json!({"type": "text", "text": "Hello"})];
        let key = |scope: &str, turns: &[Turn]| {
            ConversationKey::new("S", "m", None, turns)
                .unwrap()
                .within(scope)
        };
        let bound = key("a", &first).after_reply(&reply);
        assert_eq!(key("a", &second).lookup, bound, "same scope continues");
        assert_ne!(key("b", &second).lookup, bound, "another scope does not");
        let pinned = |scope: &str| key(scope, &first).pin("s1", "S", "m", None).lookup;
        assert_eq!(pinned("a"), pinned("a"));
        assert_ne!(pinned("a"), pinned("b"), "session ids are per scope");
    }

    #[test]
    fn a_pinned_session_keeps_its_key_across_turns() {
        let one = vec![turn(Role::User, "hi")];
        let two = vec![turn(Role::User, "something else entirely")];
        let a = ConversationKey::new("S", "m", None, &one)
            .unwrap()
            .pin("sess-1", "S", "m", None);
        let b = ConversationKey::new("S", "m", None, &two)
            .unwrap()
            .pin("sess-1", "S", "m", None);
        assert_eq!(a.after_reply(&[] as &[Value]), b.lookup);
        let other = ConversationKey::new("S", "m", None, &two)
            .unwrap()
            .pin("sess-2", "S", "m", None);
        assert_ne!(a.lookup, other.lookup);
        let other_model = ConversationKey::new("S", "m2", None, &two)
            .unwrap()
            .pin("sess-1", "S", "m2", None);
        assert_ne!(a.lookup, other_model.lookup);
    }

    #[test]
    fn a_conversation_stays_keyed_across_a_tool_round() {
        let call =
            json!({"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}});
        let with_results = vec![
            turn(Role::User, "list files"),
            Turn {
                role: Role::Assistant,
                blocks: vec![
                    json!({"type": "text", "text": "Calling tools."}),
                    call.clone(),
                ],
            },
            Turn {
                role: Role::User,
                blocks: vec![
                    json!({"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}),
                ],
            },
        ];
        let key = ConversationKey::new("", "m", Some("s"), &with_results).unwrap();
        let bound = key.after_reply(&[json!({"type": "text", "text": "One file: a.txt"})]);
        let mut next = with_results.clone();
        next[2].blocks[0]["content"] = json!([{"type": "text", "text": "a.txt"}]);
        next.push(turn(Role::Assistant, "One file: a.txt"));
        next.push(turn(Role::User, "thanks"));
        let lookup = ConversationKey::new("", "m", Some("s"), &next)
            .unwrap()
            .lookup;
        assert_eq!(
            lookup, bound,
            "a result echoed as blocks or as a string is the same"
        );
        next[2].blocks[0]["content"] = json!("b.txt");
        let other = ConversationKey::new("", "m", Some("s"), &next)
            .unwrap()
            .lookup;
        assert_ne!(other, bound, "another tool result is another conversation");
    }
}
