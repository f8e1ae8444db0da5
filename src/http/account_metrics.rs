//! Per-account metrics, from the `accounts` of the dispatcher's health
//! snapshot: status, workers and utilization as gauges; jobs, 429s and
//! failovers as counters. Labelled by account name, never by credentials.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::metrics::registered;
use crate::accounts::AccountHealth;

/// The per-account metrics of one daemon.
pub struct AccountMetrics {
    status: IntGaugeVec,
    workers: IntGaugeVec,
    utilization: GaugeVec,
    limited_for: IntGaugeVec,
    jobs: IntCounterVec,
    rate_limited: IntCounterVec,
    failovers: IntCounterVec,
}

impl AccountMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn new(registry: &Registry) -> Self {
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            registered(registry, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let counters = |name: &str, help: &str| {
            registered(
                registry,
                IntCounterVec::new(Opts::new(name, help), &["account"]),
            )
        };
        let utilization = registered(
            registry,
            GaugeVec::new(
                Opts::new(
                    "claude_pool_account_utilization",
                    "Share of the account's plan limit used (0..1), when its CLI reported it.",
                ),
                &["account"],
            ),
        );
        Self {
            status: gauges(
                "claude_pool_account_status",
                "1 for the account's current status (ok, limited, overage, login_failed), 0 for the others.",
                &["account", "status"],
            ),
            workers: gauges(
                "claude_pool_account_workers",
                "Live workers of the account.",
                &["account"],
            ),
            utilization,
            limited_for: gauges(
                "claude_pool_account_limited_seconds",
                "Seconds until the account's rate limit ends; 0 when not limited.",
                &["account"],
            ),
            jobs: counters(
                "claude_pool_account_jobs_total",
                "Jobs given to the account's workers.",
            ),
            rate_limited: counters(
                "claude_pool_account_rate_limited_total",
                "429s the account's workers met.",
            ),
            failovers: counters(
                "claude_pool_account_failovers_total",
                "Jobs moved from the account to another one after a 429.",
            ),
        }
    }

    /// Copies the accounts' figures into the metrics.
    pub fn refresh(&self, accounts: &[AccountHealth]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for account in accounts {
            let name = account.name.as_str();
            for status in AccountHealth::STATUSES {
                self.status
                    .with_label_values(&[name, status])
                    .set(i64::from(status == account.status));
            }
            self.workers
                .with_label_values(&[name])
                .set(account.workers as i64);
            if let Some(u) = account.utilization {
                self.utilization.with_label_values(&[name]).set(u);
            }
            let limited = account.limited_until.map_or(0, |t| t.saturating_sub(now));
            self.limited_for
                .with_label_values(&[name])
                .set(limited.min(i64::MAX as u64) as i64);
            for (counter, total) in [
                (&self.jobs, account.jobs),
                (&self.rate_limited, account.rate_limited),
                (&self.failovers, account.failovers),
            ] {
                let counter = counter.with_label_values(&[name]);
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
    }
}
