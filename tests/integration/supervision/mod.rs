//! Faults and supervision: crashes, hangs, garbage, slow and failing boots,
//! client disconnects, recycling, orphans, with the fake CLI, which
//! misbehaves on demand. The real CLI's share is in
//! `../real_cli/supervision.rs`.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

mod clear;
mod faults;
mod lifecycle;

fn stream_body(text: &str) -> Value {
    let mut body = message_body(text);
    body["stream"] = json!(true);
    body
}

/// Lines the daemon wrote to fake CLIs' stdin (shared log file).
fn stdin_log(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("invalid line written to the CLI ({e}): {l}"))
        })
        .collect()
}
