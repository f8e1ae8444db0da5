//! What a worker's CLI says about its account's rate limits (see
//! [`crate::accounts::signal`]), read from its stdout lines (docs/cli-protocol.md
//! §5):
//!
//! - `system/api_retry` with `error_status: 429`: the upstream refused a
//!   call and the CLI waits `retry_delay_ms` (the upstream's `retry-after`)
//!   before trying again — minutes, in silence, unless the daemon acts.
//! - a `result` with `api_error_status: 429`: the CLI gave up (no retries
//!   left, or a subscription limit, which it does not retry).
//! - `rate_limit_event`: the plan's standing (subscription logins only; the
//!   CLI writes none for API keys): `rejected` with a reset time, the share
//!   used near a limit, and whether calls now draw on overage.

use std::time::Duration;

use super::protocol::{CliMessage, RateLimitInfo, SystemMessage};
use crate::accounts::signal::{Report, Signal};

/// The signal one CLI line carries, if any.
pub fn signal(message: &CliMessage) -> Option<Signal> {
    match message {
        CliMessage::System(SystemMessage::ApiRetry(retry)) if retry.error_status == Some(429) => {
            Some(Signal::Limited {
                retry_after: retry
                    .retry_delay_ms
                    .filter(|ms| ms.is_finite() && *ms >= 0.0)
                    .map(|ms| Duration::from_millis(ms as u64)),
            })
        }
        CliMessage::Result(result) if result.api_error_status == Some(429) => {
            Some(Signal::Limited { retry_after: None })
        }
        CliMessage::RateLimitEvent { rate_limit_info } => {
            Some(Signal::Report(report(rate_limit_info)))
        }
        _ => None,
    }
}

fn report(info: &RateLimitInfo) -> Report {
    Report {
        // `rejected` while overage carries the calls is not a refusal:
        // the CLI reports it as status rejected plus isUsingOverage.
        rejected: info.status.as_deref() == Some("rejected") && !info.is_using_overage,
        resets_at: info
            .resets_at
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| t as u64),
        utilization: info.utilization.filter(|u| u.is_finite()),
        using_overage: info.is_using_overage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::protocol::parse_line;

    fn signal(line: &str) -> Option<Signal> {
        super::signal(&parse_line(line.as_bytes()).unwrap().unwrap())
    }

    #[test]
    fn a_429_retry_limits_for_the_announced_delay() {
        // As CLI 2.1.197 writes it for `429` + `retry-after: 60` (API key).
        let line = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":60000,"error_status":429,"error":"rate_limit","session_id":"s","uuid":"u"}"#;
        assert_eq!(
            signal(line),
            Some(Signal::Limited {
                retry_after: Some(Duration::from_secs(60))
            })
        );
        let overloaded = line.replace("429", "529");
        assert_eq!(signal(&overloaded), None);
    }

    #[test]
    fn a_failed_result_with_429_limits() {
        let line = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"You've hit your session limit · resets 2:43pm (UTC)"}"#;
        assert_eq!(signal(line), Some(Signal::Limited { retry_after: None }));
        let other = line.replace("429", "500");
        assert_eq!(signal(&other), None);
    }

    #[test]
    fn rate_limit_events_report_the_plan() {
        // Recorded from CLI 2.1.197 with a subscription (OAuth) token.
        let rejected = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1796136217,"rateLimitType":"five_hour","overageStatus":"rejected","isUsingOverage":false},"uuid":"u","session_id":"s"}"#;
        let Some(Signal::Report(report)) = signal(rejected) else {
            panic!("no report");
        };
        assert!(report.rejected && !report.using_overage);
        assert_eq!(report.resets_at, Some(1796136217));
        assert!(Signal::Report(report).is_limit());

        let overage = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1796136217,"rateLimitType":"five_hour","overageStatus":"allowed","isUsingOverage":true,"overageInUse":true}}"#;
        let Some(Signal::Report(report)) = signal(overage) else {
            panic!("no report");
        };
        assert!(!report.rejected && report.using_overage);

        let warning = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1796136180,"rateLimitType":"five_hour","utilization":0.91,"isUsingOverage":false}}"#;
        let Some(Signal::Report(report)) = signal(warning) else {
            panic!("no report");
        };
        assert_eq!(report.utilization, Some(0.91));
        assert!(!report.rejected && !report.using_overage);
    }
}
