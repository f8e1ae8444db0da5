//! The integration tests, one binary: the daemon driven over real HTTP on a
//! port-0 listener (in-process, or as the executable), against the fake
//! Anthropic upstream and the fake or the real Claude CLI. One binary links
//! the library once and shares its setup (`tests/common`, also used by the
//! benches); each module is one former test file.
//!
//! Two tiers, by module path:
//! - the top-level modules need no Claude CLI, or use the fake one
//!   (`tests/bin/fake_claude/`): `cargo test --test integration -- --skip real_cli::`;
//! - `real_cli::…` drives the pinned real CLI (installed by
//!   `scripts/install-claude-cli.sh`), and some of them the official SDKs,
//!   Codex CLI, bubblewrap or HAProxy that `scripts/test.sh` installs.
//!
//! A new test goes into the module of its feature, or a new module here;
//! a test that starts the real CLI goes under `real_cli`.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod batches_e2e;
mod blank_spares;
mod compatibility_doc;
mod conversations;
mod daemon_binary;
mod dashboard_events;
mod docs_links;
mod fake_cli_protocol;
mod fuzz_http;
mod keys_cli;
mod keys_e2e;
mod metrics;
mod openai_dialect;
mod reload;
mod shipped_config;
mod shutdown_load;
mod store_faults;
mod supervision;
mod systemd;

/// Tests that start the real Claude CLI (pinned, against the fake upstream).
mod real_cli {
    mod accounts_e2e;
    mod admission;
    mod affinity_e2e;
    mod agent_e2e;
    mod agent_sandbox_e2e;
    mod at_mentions_e2e;
    mod batches_e2e;
    mod claude_code_client;
    mod cluster;
    mod content_e2e;
    mod credentials;
    mod daemon_binary;
    mod dashboard_browser;
    mod fair_share_e2e;
    mod fast_clients;
    mod keys_e2e;
    mod ledger_e2e;
    mod ledger_turns;
    mod messages_e2e;
    mod openai_dialect;
    mod private_files;
    mod prompt_too_long;
    mod responses_background;
    mod responses_e2e;
    mod scopes;
    mod sdk_compat;
    mod store_faults;
    mod stream_cut_e2e;
    mod supervision;
    mod tools_e2e;
}
