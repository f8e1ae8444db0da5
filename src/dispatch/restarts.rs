//! Restarts: a worker that failed (crashed, or never booted) is respawned
//! after a capped, doubling backoff, and many recent failures with no worker
//! able to serve are a crash loop (the pool is degraded: `/health` answers
//! 503 and new jobs are refused at once).
//!
//! Pure: every call says what time it is, so the backoff and the crash-loop
//! window are tested without waiting.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::accounts::AccountKey;
use crate::config::PoolSettings;
use crate::worker::WorkerKind;

/// A respawn waiting out its backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Respawn {
    pub account: AccountKey,
    pub kind: WorkerKind,
    pub due: Instant,
}

/// The pool's failures and replacements.
#[derive(Debug, Default)]
pub(super) struct Restarts {
    /// Respawns waiting out a backoff delay.
    pub pending: Vec<Respawn>,
    /// Failed spawns or crashes since the last worker became ready; sets
    /// the backoff.
    consecutive_failures: u32,
    /// When recent failures happened, within the crash-loop window.
    failures: VecDeque<Instant>,
    /// Why the last worker failed, for `/health` and refusals.
    pub last_failure: Option<String>,
    /// Workers started to replace others (retired, crashed, failed to boot).
    pub restarts: u64,
    /// Of those, workers retired on purpose (job count, memory).
    pub recycles: u64,
}

impl Restarts {
    /// A worker finished booting: the failure streak ends.
    pub fn booted(&mut self) {
        self.consecutive_failures = 0;
    }

    /// A worker of `account` failed at `now` (`why`): its respawn, of
    /// `kind`, is due after the backoff, which is returned.
    pub fn failed(
        &mut self,
        pool: &PoolSettings,
        account: AccountKey,
        kind: WorkerKind,
        why: String,
        now: Instant,
    ) -> Duration {
        self.restarts += 1;
        self.consecutive_failures += 1;
        self.failures.push_back(now);
        let window = pool.crash_loop_window();
        while self
            .failures
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) > window)
        {
            self.failures.pop_front();
        }
        self.last_failure = Some(why);
        let delay = backoff_delay(
            pool.restart_backoff_ms,
            pool.restart_backoff_max_ms,
            self.consecutive_failures,
        );
        self.pending.push(Respawn {
            account,
            kind,
            due: now + delay,
        });
        delay
    }

    /// Whether failures at `now` amount to a crash loop (the caller checks
    /// that no worker can serve): `crash_loop_failures` within the window,
    /// and no worker has booted since the last one.
    pub fn crash_looping(&self, pool: &PoolSettings, now: Instant) -> bool {
        let window = pool.crash_loop_window();
        let recent = self
            .failures
            .iter()
            .filter(|at| now.saturating_duration_since(**at) <= window)
            .count();
        recent >= pool.crash_loop_failures as usize && self.consecutive_failures > 0
    }

    /// Respawns of `account` waiting out their backoff.
    pub fn pending_for(&self, account: AccountKey) -> usize {
        self.pending.iter().filter(|r| r.account == account).count()
    }

    /// The respawns due at `now`, taken out of the waiting list.
    pub fn take_due(&mut self, now: Instant) -> Vec<Respawn> {
        let (due, waiting) = self.pending.iter().partition(|r| r.due <= now);
        self.pending = waiting;
        due
    }
}

/// The delay before respawning after the `failures`-th consecutive failure:
/// `base`, doubling per failure, capped at `max` (milliseconds).
pub(super) fn backoff_delay(base: u64, max: u64, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_millis(base.saturating_mul(1 << exponent).min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respawn_backoff_doubles_and_is_capped() {
        let ms = |n| backoff_delay(500, 30_000, n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [500, 1000, 2000, 4000]);
        assert_eq!(ms(7), 30_000);
        assert_eq!(ms(u32::MAX), 30_000, "no overflow however long the streak");
        assert_eq!(backoff_delay(0, 100, 5), Duration::ZERO);
    }

    #[test]
    fn failures_are_a_crash_loop_only_within_the_window_and_until_a_boot() {
        let pool = PoolSettings {
            crash_loop_failures: 3,
            crash_loop_window_secs: 60,
            ..PoolSettings::default()
        };
        let t0 = Instant::now();
        let mut restarts = Restarts::default();
        let fail = |r: &mut Restarts, at| r.failed(&pool, 1, WorkerKind::Plain, "x".into(), at);
        fail(&mut restarts, t0);
        fail(&mut restarts, t0 + Duration::from_secs(30));
        assert!(!restarts.crash_looping(&pool, t0 + Duration::from_secs(30)));
        fail(&mut restarts, t0 + Duration::from_secs(59));
        assert!(restarts.crash_looping(&pool, t0 + Duration::from_secs(59)));
        // The first failure leaves the window: two recent ones are not a loop.
        assert!(!restarts.crash_looping(&pool, t0 + Duration::from_secs(61)));
        fail(&mut restarts, t0 + Duration::from_secs(62));
        assert!(restarts.crash_looping(&pool, t0 + Duration::from_secs(62)));
        restarts.booted();
        assert!(!restarts.crash_looping(&pool, t0 + Duration::from_secs(62)));
    }

    #[test]
    fn a_respawn_is_due_after_its_backoff() {
        let pool = PoolSettings {
            restart_backoff_ms: 500,
            ..PoolSettings::default()
        };
        let t0 = Instant::now();
        let mut restarts = Restarts::default();
        let delay = restarts.failed(&pool, 7, WorkerKind::Plain, "x".into(), t0);
        assert_eq!(delay, Duration::from_millis(500));
        assert_eq!(restarts.pending_for(7), 1);
        assert!(restarts
            .take_due(t0 + Duration::from_millis(499))
            .is_empty());
        let due = restarts.take_due(t0 + delay);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].account, 7);
        assert_eq!(restarts.pending_for(7), 0);
    }
}
