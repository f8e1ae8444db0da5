//! When a bound conversation expires: a pure function of the clock, so that
//! its boundary is tested without waiting.

use std::time::Duration;

use tokio::time::Instant;

use crate::worker::WorkerId;

/// Of the bound workers, each given with since when it has held its
/// conversation idle, those idle longer than `idle` (`pool.affinity_idle_secs`)
/// at `now`: their conversation is let go.
pub(super) fn expired_bindings(
    bound_since: impl IntoIterator<Item = (WorkerId, Instant)>,
    idle: Duration,
    now: Instant,
) -> Vec<WorkerId> {
    bound_since
        .into_iter()
        .filter(|&(_, since)| now.saturating_duration_since(since) > idle)
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(300);

    #[test]
    fn a_binding_expires_only_once_idle_longer_than_the_limit() {
        let t0 = Instant::now();
        let bound = [(1, t0), (2, t0 + Duration::from_secs(60))];
        assert!(expired_bindings(bound, IDLE, t0 + IDLE).is_empty());
        let just_after = t0 + IDLE + Duration::from_millis(1);
        assert_eq!(expired_bindings(bound, IDLE, just_after), vec![1]);
        let later = t0 + Duration::from_secs(60) + IDLE + Duration::from_millis(1);
        assert_eq!(expired_bindings(bound, IDLE, later), vec![1, 2]);
    }

    #[test]
    fn a_binding_newer_than_now_is_kept() {
        // A report stamped after the tick read the clock: not idle at all.
        let t0 = Instant::now();
        let bound = [(7, t0 + Duration::from_secs(1))];
        assert!(expired_bindings(bound, Duration::ZERO, t0).is_empty());
    }
}
