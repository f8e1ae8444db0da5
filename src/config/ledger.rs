//! `[ledger]`: the usage ledger and audit log — one row per request, kept
//! in the store, with hourly rollups (see [`crate::ledger`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the ledger records and for how long it keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSettings {
    /// Write rows and rollups to the store. Off: nothing is written, but
    /// per-key counters and the windows limits read are still kept in
    /// memory (lost at a restart).
    pub enabled: bool,
    /// Rows waiting for the writer at most; a row recorded while this many
    /// wait is dropped and counted (`claude_pool_ledger_rows_dropped_total`).
    /// Also the most rows a SIGKILL can lose.
    pub queue_capacity: usize,
    /// Rows are deleted this many days after their request (0 = kept).
    pub retention_days: u64,
    /// Hourly rollups are deleted this many days after their hour
    /// (0 = kept).
    pub rollup_retention_days: u64,
    /// Record the request body and the answer's text in each row. Off by
    /// default: the ledger is about who used what, not what they said.
    pub record_content: bool,
    /// Per-key request and token counters on `/metrics` (one series per
    /// key); turn off for pools with very many keys.
    pub per_key_metrics: bool,
    /// Weight of a cache-read input token in a key's weighted tokens
    /// (input + output + cache creation + cache read × this), as Anthropic
    /// prices cache reads at a tenth.
    pub cache_read_weight: f64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_capacity: 10_000,
            retention_days: 90,
            rollup_retention_days: 800,
            record_content: false,
            per_key_metrics: true,
            cache_read_weight: 0.1,
        }
    }
}

impl LedgerSettings {
    /// How long rows are kept; `None` = forever.
    pub fn retention(&self) -> Option<Duration> {
        days(self.retention_days)
    }

    /// How long rollups are kept; `None` = forever.
    pub fn rollup_retention(&self) -> Option<Duration> {
        days(self.rollup_retention_days)
    }
}

fn days(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n * 24 * 60 * 60))
}
