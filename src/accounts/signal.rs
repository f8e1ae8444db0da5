//! What a worker's CLI says about its account's rate limits, as the pool
//! uses it. Which CLI lines carry a signal is the worker's to read (see
//! [`crate::worker::account_signal`]).

use std::time::Duration;

/// A fact about the account a worker runs under.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// A call was refused with 429: the account is limited, for
    /// `retry_after` when the CLI said how long.
    Limited { retry_after: Option<Duration> },
    /// The plan's standing, from a `rate_limit_event`.
    Report(Report),
}

/// A `rate_limit_event`, reduced to what routing uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// The plan refuses calls (and no overage carries them).
    pub rejected: bool,
    /// When the reported limit resets, unix seconds.
    pub resets_at: Option<u64>,
    /// Share of the limit used (0..1), when reported.
    pub utilization: Option<f64>,
    /// Calls are billed as overage ("extra usage").
    pub using_overage: bool,
}

impl Signal {
    /// Whether this signal says the account refuses calls now.
    pub fn is_limit(&self) -> bool {
        match self {
            Signal::Limited { .. } => true,
            Signal::Report(report) => report.rejected,
        }
    }
}
