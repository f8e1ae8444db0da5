//! Per-key limits, checked when a request is admitted: jobs running or
//! queued (`max_concurrent`), requests in a sliding window
//! (`requests_per_minute`), and token budgets over sliding 5-hour, day, week
//! and month windows, read from the usage ledger through [`TokenUsage`] (so
//! a restart does not reset them). A request over a limit is refused with
//! the time until the window frees enough; one admitted runs to its end even
//! if it crosses a budget on the way.
//!
//! Limits are per node: each daemon counts only what it served.
// std::time::Instant here: per-key rate windows, not converted yet (a pure function of a `now` already; its callers read the clock).
#![allow(clippy::disallowed_types)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::TokenWindow;

use super::Caller;

/// The tokens each key used, as the usage ledger knows them: input +
/// output + cache creation + cache reads weighted by
/// `ledger.cache_read_weight`.
pub trait TokenUsage: Send + Sync {
    /// Weighted tokens key `key` used since `since_ms` (unix milliseconds),
    /// that instant included.
    fn tokens_since(&self, key: &str, since_ms: i64) -> u64;
}

/// What a refused request is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// `max_concurrent` jobs of the key are running or queued.
    Concurrency { limit: u64 },
    /// `requests_per_minute` requests were admitted within the window.
    Requests {
        limit: u64,
        window: Duration,
        retry_after: Duration,
    },
    /// A token budget is used up for now.
    Tokens {
        window: TokenWindow,
        limit: u64,
        used: u64,
        retry_after: Duration,
    },
}

impl Refusal {
    /// How long until a retry can pass.
    pub fn retry_after(&self) -> Duration {
        match self {
            // A job ends at its own pace; a second is a polite guess.
            Refusal::Concurrency { .. } => Duration::from_secs(1),
            Refusal::Requests { retry_after, .. } | Refusal::Tokens { retry_after, .. } => {
                *retry_after
            }
        }
    }

    /// The message for the client, naming the key and the limit.
    pub fn message(&self, key: &str) -> String {
        let secs = self.retry_after().as_secs_f64().ceil().max(1.0) as u64;
        match self {
            Refusal::Concurrency { limit } => format!(
                "key `{key}` is over its limit max_concurrent = {limit}: that many of its requests are running or queued; retry when one finishes"
            ),
            Refusal::Requests { limit, window, .. } => format!(
                "key `{key}` is over its limit requests_per_minute = {limit} (per {}s); retry in {secs}s",
                window.as_secs()
            ),
            Refusal::Tokens {
                window,
                limit,
                used,
                ..
            } => format!(
                "key `{key}` is over its limit {} = {limit} ({used} tokens used in the window); retry in {secs}s",
                window.limit_name()
            ),
        }
    }
}

/// One limit's state for the rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub limit: u64,
    pub remaining: u64,
    /// Until the limit is whole again (for tokens: at the latest).
    pub reset_in: Duration,
}

/// What the rate-limit headers of an answer say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LimitStatus {
    /// `requests_per_minute`, if the key has it.
    pub requests: Option<Bucket>,
    /// The token budget with the least left, if the key has any.
    pub tokens: Option<Bucket>,
}

/// An admitted request: its place among the key's concurrent jobs (given
/// back when dropped) and what the headers say.
#[derive(Debug)]
pub struct Admitted {
    pub permit: Option<Permit>,
    pub status: LimitStatus,
}

/// A key's place among its running or queued jobs, given back on drop.
#[derive(Debug)]
pub struct Permit(Arc<AtomicU64>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A key's state between requests.
#[derive(Debug, Default)]
struct KeyState {
    /// Its jobs running or queued: permits out.
    in_flight: Arc<AtomicU64>,
    /// When its requests in the current window were admitted, oldest first.
    recent: VecDeque<Instant>,
    /// Budgets known used up: the limit then and until when (unix ms), so a
    /// key hammering a spent budget costs no ledger reads.
    spent: HashMap<TokenWindow, (u64, i64)>,
}

/// The limits' state of every key (see the module doc).
#[derive(Default)]
pub struct Limiter {
    keys: Mutex<HashMap<String, KeyState>>,
    usage: RwLock<Option<Arc<dyn TokenUsage>>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiter")
    }
}

impl Limiter {
    /// Reads token usage from `usage` (the ledger) from now on. Without it,
    /// token budgets are not enforced.
    pub fn set_usage(&self, usage: Arc<dyn TokenUsage>) {
        *self.usage.write().unwrap_or_else(|e| e.into_inner()) = Some(usage);
    }

    fn usage(&self) -> Option<Arc<dyn TokenUsage>> {
        self.usage.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Jobs of key `name` running or queued now.
    pub fn in_flight(&self, name: &str) -> u64 {
        self.lock()
            .get(name)
            .map_or(0, |s| s.in_flight.load(Ordering::Acquire))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyState>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a request of `caller` now, or says which limit refuses it.
    /// `job`: it becomes a job that counts against `max_concurrent` until
    /// the returned permit is dropped. `window` is `requests_per_minute`'s.
    pub fn admit(
        &self,
        caller: &Caller,
        job: bool,
        window: Duration,
    ) -> Result<Admitted, (Refusal, LimitStatus)> {
        self.admit_at(caller, job, window, Instant::now(), super::now_ms())
    }

    /// [`Limiter::admit`] at a given time (tests).
    pub fn admit_at(
        &self,
        caller: &Caller,
        job: bool,
        window: Duration,
        now: Instant,
        now_ms: i64,
    ) -> Result<Admitted, (Refusal, LimitStatus)> {
        let limits = caller.limits;
        let mut status = LimitStatus::default();
        // Budgets first, outside the lock: the ledger may take a moment.
        if let Err(refusal) = self.check_tokens(caller, now_ms, &mut status) {
            self.requests_status(caller, window, now, &mut status);
            return Err((refusal, status));
        }
        let mut keys = self.lock();
        let state = keys.entry(caller.name.clone()).or_default();
        if let Some(limit) = limits.requests_per_minute {
            while state
                .recent
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= window)
            {
                state.recent.pop_front();
            }
            let count = state.recent.len() as u64;
            let reset_in = |t: Option<&Instant>| {
                t.map_or(Duration::ZERO, |t| {
                    (*t + window).saturating_duration_since(now)
                })
            };
            if count >= limit {
                status.requests = Some(Bucket {
                    limit,
                    remaining: 0,
                    reset_in: reset_in(state.recent.back()),
                });
                let retry_after = reset_in(state.recent.front());
                return Err((
                    Refusal::Requests {
                        limit,
                        window,
                        retry_after,
                    },
                    status,
                ));
            }
        }
        let in_flight = state.in_flight.load(Ordering::Acquire);
        if let Some(limit) = limits.max_concurrent.filter(|_| job) {
            if in_flight >= limit {
                drop(keys);
                self.requests_status(caller, window, now, &mut status);
                return Err((Refusal::Concurrency { limit }, status));
            }
        }
        if let Some(limit) = limits.requests_per_minute {
            state.recent.push_back(now);
            status.requests = Some(Bucket {
                limit,
                remaining: limit.saturating_sub(state.recent.len() as u64),
                reset_in: window,
            });
        }
        let permit = job.then(|| {
            state.in_flight.fetch_add(1, Ordering::AcqRel);
            Permit(state.in_flight.clone())
        });
        Ok(Admitted { permit, status })
    }

    /// The requests bucket without admitting anything (for refusals).
    fn requests_status(
        &self,
        caller: &Caller,
        window: Duration,
        now: Instant,
        status: &mut LimitStatus,
    ) {
        let Some(limit) = caller.limits.requests_per_minute else {
            return;
        };
        let keys = self.lock();
        let recent: Vec<Instant> = keys
            .get(&caller.name)
            .map(|s| {
                s.recent
                    .iter()
                    .copied()
                    .filter(|t| now.saturating_duration_since(*t) < window)
                    .collect()
            })
            .unwrap_or_default();
        status.requests = Some(Bucket {
            limit,
            remaining: limit.saturating_sub(recent.len() as u64),
            reset_in: recent.last().map_or(Duration::ZERO, |t| {
                (*t + window).saturating_duration_since(now)
            }),
        });
    }

    /// Checks each token budget of `caller`, noting the tightest in
    /// `status`.
    fn check_tokens(
        &self,
        caller: &Caller,
        now_ms: i64,
        status: &mut LimitStatus,
    ) -> Result<(), Refusal> {
        let budgets = caller.limits.token_budgets();
        if budgets.is_empty() {
            return Ok(());
        }
        let Some(usage) = self.usage() else {
            return Ok(());
        };
        for (window, limit) in budgets {
            let length = window.length();
            let length_ms = length.as_millis() as i64;
            let spent = self
                .lock()
                .get(&caller.name)
                .and_then(|s| s.spent.get(&window).copied());
            if let Some((at_limit, until)) = spent {
                if at_limit == limit && now_ms < until {
                    status.tokens = Some(Bucket {
                        limit,
                        remaining: 0,
                        reset_in: length,
                    });
                    return Err(Refusal::Tokens {
                        window,
                        limit,
                        used: limit,
                        retry_after: Duration::from_millis((until - now_ms) as u64),
                    });
                }
            }
            let used = usage.tokens_since(&caller.name, now_ms - length_ms);
            let remaining = limit.saturating_sub(used);
            if status.tokens.is_none_or(|b| remaining < b.remaining) {
                status.tokens = Some(Bucket {
                    limit,
                    remaining,
                    reset_in: length,
                });
            }
            if used >= limit {
                let wait = frees_in(usage.as_ref(), &caller.name, limit, now_ms, length_ms);
                self.lock()
                    .entry(caller.name.clone())
                    .or_default()
                    .spent
                    .insert(window, (limit, now_ms + wait));
                return Err(Refusal::Tokens {
                    window,
                    limit,
                    used,
                    retry_after: Duration::from_millis(wait as u64),
                });
            }
        }
        Ok(())
    }
}

/// Milliseconds until the usage of `key` in a window of `length_ms` drops
/// below `limit`, if it uses nothing more: the usage in the window ending
/// `t` from now is what it used since `now + t - length`, which only falls
/// as `t` grows, so a binary search over whole seconds finds it.
fn frees_in(usage: &dyn TokenUsage, key: &str, limit: u64, now_ms: i64, length_ms: i64) -> i64 {
    let (mut lo, mut hi) = (0i64, length_ms / 1000 + 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if usage.tokens_since(key, now_ms + mid * 1000 - length_ms) < limit {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    (lo * 1000).max(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;

    /// Usage as a list of (unix ms, tokens).
    struct Rows(Vec<(i64, u64)>);

    impl TokenUsage for Rows {
        fn tokens_since(&self, _key: &str, since_ms: i64) -> u64 {
            self.0
                .iter()
                .filter(|(t, _)| *t >= since_ms)
                .map(|r| r.1)
                .sum()
        }
    }

    fn caller(limits: Limits) -> Caller {
        Caller {
            name: "k".into(),
            limits,
            ..Caller::anonymous(Limits::default())
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn requests_per_window_slide_and_say_when_to_retry() {
        let limiter = Limiter::default();
        let c = caller(Limits {
            requests_per_minute: Some(2),
            ..Limits::default()
        });
        let t0 = Instant::now();
        let first = limiter.admit_at(&c, false, MIN, t0, 0).unwrap();
        assert_eq!(first.status.requests.unwrap().remaining, 1);
        let at = t0 + Duration::from_secs(10);
        assert_eq!(
            limiter
                .admit_at(&c, false, MIN, at, 0)
                .unwrap()
                .status
                .requests
                .unwrap()
                .remaining,
            0
        );
        let (refusal, status) = limiter
            .admit_at(&c, false, MIN, t0 + Duration::from_secs(20), 0)
            .unwrap_err();
        assert_eq!(refusal.retry_after(), Duration::from_secs(40));
        assert_eq!(status.requests.unwrap().remaining, 0);
        assert!(refusal.message("k").contains("requests_per_minute = 2"));
        // The first admission leaves the window; the refusal took no slot.
        limiter
            .admit_at(&c, false, MIN, t0 + Duration::from_secs(60), 0)
            .unwrap();
    }

    #[test]
    fn concurrency_counts_permits_until_dropped() {
        let limiter = Limiter::default();
        let c = caller(Limits {
            max_concurrent: Some(1),
            ..Limits::default()
        });
        let now = Instant::now();
        let held = limiter.admit_at(&c, true, MIN, now, 0).unwrap();
        assert_eq!(limiter.in_flight("k"), 1);
        // Not a job (e.g. a batch created): does not count.
        limiter.admit_at(&c, false, MIN, now, 0).unwrap();
        let (refusal, _) = limiter.admit_at(&c, true, MIN, now, 0).unwrap_err();
        assert_eq!(refusal, Refusal::Concurrency { limit: 1 });
        drop(held);
        assert_eq!(limiter.in_flight("k"), 0);
        limiter.admit_at(&c, true, MIN, now, 0).unwrap();
    }

    #[test]
    fn token_budgets_refuse_until_the_window_frees_enough() {
        let hour = 3_600_000;
        let now = 10 * hour;
        // 600 tokens 4.5 h ago, 500 2 h ago: 1100 in the last 5 h.
        let usage = Rows(vec![(now - 9 * hour / 2, 600), (now - 2 * hour, 500)]);
        let limiter = Limiter::default();
        let c = caller(Limits {
            tokens_5h: Some(1000),
            ..Limits::default()
        });
        // No ledger: not enforced.
        limiter
            .admit_at(&c, false, MIN, Instant::now(), now)
            .unwrap();
        limiter.set_usage(Arc::new(usage));
        let (refusal, status) = limiter
            .admit_at(&c, false, MIN, Instant::now(), now)
            .unwrap_err();
        // The 600 leave the window just after 30 minutes (a row at `since`
        // still counts).
        assert_eq!(refusal.retry_after(), Duration::from_secs(1801));
        assert!(
            refusal.message("k").contains("tokens_5h = 1000"),
            "{refusal:?}"
        );
        assert_eq!(status.tokens.unwrap().remaining, 0);
        // Remembered: refused again without asking the ledger.
        let (again, _) = limiter
            .admit_at(&c, false, MIN, Instant::now(), now + 1000)
            .unwrap_err();
        assert_eq!(again.retry_after(), Duration::from_secs(1800));
        let later = limiter
            .admit_at(&c, false, MIN, Instant::now(), now + hour / 2 + 1000)
            .unwrap();
        assert_eq!(later.status.tokens.unwrap().remaining, 500);
        // A raised limit is not held back by the remembered refusal.
        let raised = caller(Limits {
            tokens_5h: Some(2000),
            ..Limits::default()
        });
        limiter
            .admit_at(&raised, false, MIN, Instant::now(), now + 2000)
            .unwrap();
    }
}
