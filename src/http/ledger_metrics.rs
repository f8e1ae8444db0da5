//! The usage ledger on `/metrics`: its writer's figures, and (unless
//! `ledger.per_key_metrics` is off) requests and tokens per key, labelled by
//! key name, never by secret.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::metrics::registered;
use crate::ledger::Ledger;

/// The ledger's metrics of one daemon.
pub struct LedgerMetrics {
    written: IntCounter,
    dropped: IntCounter,
    failed: IntCounter,
    pending: IntGauge,
    key_requests: IntCounterVec,
    key_tokens: IntCounterVec,
}

impl LedgerMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn new(registry: &Registry) -> Self {
        let single = |name: &str, help: &str| registered(registry, IntCounter::new(name, help));
        let by = |name: &str, help: &str, labels: &[&str]| {
            registered(registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        Self {
            written: single(
                "claude_pool_ledger_rows_written_total",
                "Usage ledger rows committed to the store.",
            ),
            dropped: single(
                "claude_pool_ledger_rows_dropped_total",
                "Usage ledger rows dropped because ledger.queue_capacity rows were waiting for the writer.",
            ),
            failed: single(
                "claude_pool_ledger_rows_failed_total",
                "Usage ledger rows whose write to the store failed (see the log).",
            ),
            pending: registered(
                registry,
                IntGauge::new(
                    "claude_pool_ledger_rows_pending",
                    "Usage ledger rows waiting for the writer.",
                ),
            ),
            key_requests: by(
                "claude_pool_key_requests_total",
                "Requests by key name (ledger.per_key_metrics).",
                &["key"],
            ),
            key_tokens: by(
                "claude_pool_key_tokens_total",
                "Tokens by key name and direction: input, output, cache_read, cache_creation (ledger.per_key_metrics).",
                &["key", "direction"],
            ),
        }
    }

    /// Copies the ledger's figures (the caller serialises refreshes).
    pub fn refresh(&self, ledger: &Ledger) {
        let advance = |counter: &IntCounter, now: u64| {
            counter.inc_by(now.saturating_sub(counter.get()));
        };
        let stats = ledger.stats();
        advance(&self.written, stats.written);
        advance(&self.dropped, stats.dropped);
        advance(&self.failed, stats.failed);
        self.pending.set(stats.pending as i64);
        if !ledger.settings().per_key_metrics {
            return;
        }
        for (key, t) in ledger.totals() {
            advance(&self.key_requests.with_label_values(&[&key]), t.requests);
            for (direction, n) in [
                ("input", t.input_tokens),
                ("output", t.output_tokens),
                ("cache_read", t.cache_read_input_tokens),
                ("cache_creation", t.cache_creation_input_tokens),
            ] {
                advance(&self.key_tokens.with_label_values(&[&key, direction]), n);
            }
        }
    }
}
