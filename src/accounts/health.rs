//! One account as `/health` (and `/metrics`) shows it.

use serde::Serialize;

use super::standing::Status;

/// One account in `/health`. Never its credentials.
#[derive(Debug, Clone, Serialize)]
pub struct AccountHealth {
    pub name: String,
    /// `ok`, `limited`, `overage`, or `login_failed` (see `reason`).
    pub status: &'static str,
    /// Why it is `login_failed`: the CLI's error and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its live workers.
    pub workers: usize,
    /// New jobs its workers were given since start.
    pub jobs: u64,
    /// When its limit ends, unix seconds; `null` when not limited.
    pub limited_until: Option<u64>,
    /// Share of the plan's limit used, when the CLI reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// 429s its workers met since start.
    pub rate_limited: u64,
    /// Jobs moved to another account after a 429.
    pub failovers: u64,
}

impl AccountHealth {
    /// The `status` of an account whose login failed.
    pub(super) const LOGIN_FAILED: &'static str = "login_failed";

    /// Every `status` an account can have (`/metrics` sets one of them).
    pub const STATUSES: [&'static str; 4] = [
        Status::Ok.as_str(),
        Status::Limited.as_str(),
        Status::Overage.as_str(),
        Self::LOGIN_FAILED,
    ];
}
