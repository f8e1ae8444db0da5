//! The store's metrics, from its health report: whether writes fail, how
//! many failed since start, and what waits in memory to be written.

use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use super::metrics::registered;
use crate::store::health::StoreReport;

/// The store metrics of one daemon.
pub struct StoreMetrics {
    failing: IntGauge,
    write_errors: IntCounter,
    unwritten: IntGaugeVec,
    unwritten_bytes: IntGauge,
}

impl StoreMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn new(registry: &Registry) -> Self {
        Self {
            failing: registered(
                registry,
                IntGauge::new(
                    "claude_pool_store_failing",
                    "1 while the store's writes fail (e.g. a full disk): batch work pauses, stored responses wait in memory.",
                ),
            ),
            write_errors: registered(
                registry,
                IntCounter::new(
                    "claude_pool_store_write_errors_total",
                    "Writes to the store that failed.",
                ),
            ),
            unwritten: registered(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "claude_pool_store_unwritten",
                        "Held in memory until the store takes writes: batch_results, responses.",
                    ),
                    &["kind"],
                ),
            ),
            unwritten_bytes: registered(
                registry,
                IntGauge::new(
                    "claude_pool_store_unwritten_responses_bytes",
                    "Bytes of stored responses held in memory until the store takes writes (bounded by responses.max_unwritten_mb).",
                ),
            ),
        }
    }

    /// Copies the store's report into the metrics.
    pub fn refresh(&self, report: &StoreReport) {
        self.failing.set(i64::from(report.status != "ok"));
        self.write_errors
            .inc_by(report.write_errors.saturating_sub(self.write_errors.get()));
        let u = &report.unwritten;
        for (kind, n) in [
            ("batch_results", u.batch_results),
            ("responses", u.responses),
        ] {
            self.unwritten.with_label_values(&[kind]).set(n as i64);
        }
        self.unwritten_bytes
            .set(i64::try_from(u.responses_bytes).unwrap_or(i64::MAX));
    }
}
