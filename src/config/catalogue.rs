//! The models the daemon knows about: their ids, display names and release
//! dates. `claude.models` defaults to their ids; `GET /v1/models`
//! (`api::models`) reads the facts from here. It lives in config so
//! that the settings' default does not depend on the API layer.

/// The models listed, newest first, then the CLI's aliases (which the CLI
/// maps itself: `opus` → claude-opus-4-8, `sonnet` → claude-sonnet-5,
/// `haiku` → claude-haiku-4-5 on CLI 2.1.197).
///
/// What the daemon knows about these ids; the ids listed come from
/// `claude.models`, whose default is this list. Any model id the CLI accepts
/// can be requested whether listed or not (`api::models::resolve_model`);
/// the list only tells clients what to pick.
#[rustfmt::skip] // a table: one model a line
pub const CATALOGUE: &[KnownModel] = &[
    // The release dates of the two newest models are approximate.
    known("claude-opus-4-8", "Claude Opus 4.8", (2026, 5, 28)),
    known("claude-sonnet-5", "Claude Sonnet 5", (2026, 5, 28)),
    known("claude-haiku-4-5", "Claude Haiku 4.5", (2025, 10, 15)),
    known("claude-sonnet-4-5", "Claude Sonnet 4.5", (2025, 9, 29)),
    known("claude-opus-4-1", "Claude Opus 4.1", (2025, 8, 5)),
    known("opus", "Opus (Claude Code alias, currently Claude Opus 4.8)", (2026, 5, 28)),
    known("sonnet", "Sonnet (Claude Code alias, currently Claude Sonnet 5)", (2026, 5, 28)),
    known("haiku", "Haiku (Claude Code alias, currently Claude Haiku 4.5)", (2025, 10, 15)),
];

/// Built-in facts about a model id.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub id: &'static str,
    pub display_name: &'static str,
    pub released: (i32, u32, u32),
}

/// A row of [`CATALOGUE`].
const fn known(
    id: &'static str,
    display_name: &'static str,
    released: (i32, u32, u32),
) -> KnownModel {
    KnownModel {
        id,
        display_name,
        released,
    }
}

/// The ids listed by default (`claude.models`).
pub fn default_ids() -> Vec<String> {
    CATALOGUE.iter().map(|m| m.id.to_string()).collect()
}
