//! System context a request carries besides its instructions: client
//! metadata in the system prompt, which must not decide which worker serves
//! the request, and system messages inside `messages` (Claude Code sends its
//! agent and skill lists that way, under the beta
//! `mid-conversation-system-2026-04-07`).
//!
//! A system message is delivered where it stands in the conversation, as a
//! `<system-reminder>` text block of the user message next to it. That is how
//! the Claude Code CLI itself delivers mid-conversation system context when
//! the API does not take `role: "system"` messages (its own fallback), and the
//! form in which it already sends its date and context notes: the model reads
//! it as context from the system, not as the user's words. The CLI's stdin
//! takes no system messages (verified on 2.1.197: a `system` line only
//! carries compaction boundaries), so a worker could not do better.

use serde_json::{json, Value};

use crate::prompt::{Role, Turn};

/// Claude Code's first system block: `x-anthropic-billing-header:
/// cc_version=2.1.197.<3 hex>; cc_entrypoint=…;`, the hex derived from the
/// conversation's first message. Attribution for Anthropic's billing, not
/// an instruction to the model; left in, every conversation would look like
/// a new system prompt and need a fresh worker.
const BILLING_HEADER: &str = "x-anthropic-billing-header:";

/// Whether a system block is client metadata that the model need not see.
pub fn is_client_metadata(text: &str) -> bool {
    text.trim_start().starts_with(BILLING_HEADER)
}

/// The system prompt from its blocks' texts: client metadata dropped, the
/// rest joined by blank lines.
pub fn join_system<'a>(blocks: impl IntoIterator<Item = &'a str>) -> String {
    blocks
        .into_iter()
        .filter(|text| !is_client_metadata(text))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// One message of a request, as the dialect parsed it.
pub enum Message {
    /// A user or assistant message.
    Turn(Turn),
    /// A system message inside `messages`: its text.
    System(String),
}

/// The conversation's turns with each system message delivered as a
/// `<system-reminder>` block: appended to the user message before it, or,
/// after an assistant message or at the start, opening the next user
/// message (a user message of its own if none follows).
pub fn fold_system_messages(messages: impl IntoIterator<Item = Message>) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
    // The last turn holds only system reminders so far.
    let mut reminders_only = false;
    for message in messages {
        match message {
            Message::System(text) => {
                let block = reminder(&text);
                match turns.last_mut() {
                    Some(turn) if turn.role == Role::User => turn.blocks.push(block),
                    _ => {
                        turns.push(Turn {
                            role: Role::User,
                            blocks: vec![block],
                        });
                        reminders_only = true;
                    }
                }
            }
            Message::Turn(turn) => {
                match turns.last_mut() {
                    Some(last) if reminders_only && turn.role == Role::User => {
                        last.blocks.extend(turn.blocks)
                    }
                    _ => turns.push(turn),
                }
                reminders_only = false;
            }
        }
    }
    turns
}

fn reminder(text: &str) -> Value {
    json!({"type": "text", "text": format!("<system-reminder>\n{text}\n</system-reminder>\n")})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Message {
        Message::Turn(Turn {
            role: Role::User,
            blocks: vec![json!({"type": "text", "text": text})],
        })
    }
    fn assistant(text: &str) -> Message {
        Message::Turn(Turn {
            role: Role::Assistant,
            blocks: vec![json!({"type": "text", "text": text})],
        })
    }
    fn texts(turn: &Turn) -> Vec<&str> {
        turn.blocks
            .iter()
            .map(|b| b["text"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_billing_header_is_not_part_of_the_prompt() {
        let prompt = join_system([
            "x-anthropic-billing-header: cc_version=2.1.197.d7d; cc_entrypoint=sdk-cli;",
            "You are a Claude agent.",
            "Be terse.",
        ]);
        assert_eq!(prompt, "You are a Claude agent.\n\nBe terse.");
        assert_eq!(join_system(["A"]), "A");
    }

    #[test]
    fn a_system_message_joins_the_user_message_before_it() {
        let turns = fold_system_messages([user("hi"), Message::System("agents: x".into())]);
        assert_eq!(turns.len(), 1);
        assert_eq!(
            texts(&turns[0]),
            ["hi", "<system-reminder>\nagents: x\n</system-reminder>\n"]
        );
    }

    #[test]
    fn after_an_assistant_message_it_opens_the_next_user_message() {
        let turns = fold_system_messages([
            user("hi"),
            assistant("hello"),
            Message::System("note".into()),
            user("again"),
        ]);
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[2].role, Role::User);
        assert_eq!(
            texts(&turns[2]),
            ["<system-reminder>\nnote\n</system-reminder>\n", "again"]
        );
        // At the very start, and with nothing after it.
        let turns = fold_system_messages([
            Message::System("first".into()),
            user("hi"),
            assistant("hello"),
            Message::System("last".into()),
        ]);
        assert_eq!(turns.len(), 3);
        assert_eq!(texts(&turns[0]).len(), 2);
        assert_eq!(turns[2].role, Role::User);
        assert_eq!(
            texts(&turns[2]),
            ["<system-reminder>\nlast\n</system-reminder>\n"]
        );
    }
}
