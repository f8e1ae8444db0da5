//! Per-key usage over recent time, in memory, for limits: how many requests
//! and tokens a key used since an instant, answered without the store.
//!
//! Usage is counted at the instant its response ended. The last hour is
//! kept to the millisecond; older usage to the minute (a window reaching
//! further back counts whole minutes that start at or after its start), for
//! [`HORIZON`]; older usage is forgotten. Kept current as rows are recorded,
//! and filled from the store at start (to the minute), so a restart does
//! not reset a window.

use std::collections::{BTreeMap, HashMap};
use std::ops::AddAssign;

use serde::Serialize;

use crate::job::Usage;

/// How far back usage is kept: the longest window a limit may use (a
/// month of 31 days) and a day to spare.
pub const HORIZON_MS: i64 = 32 * DAY_MS;
/// Usage younger than this is kept to the millisecond.
pub const EXACT_MS: i64 = HOUR_MS;
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Requests and tokens of a key over some time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

impl Tally {
    /// One request that used `usage`.
    pub fn one(usage: &Usage) -> Self {
        Self {
            requests: 1,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
        }
    }

    /// Tokens as limits count them: input + output + cache creation +
    /// cache reads × `cache_read_weight`, rounded up.
    pub fn weighted_tokens(&self, cache_read_weight: f64) -> u64 {
        let reads = (self.cache_read_input_tokens as f64 * cache_read_weight).ceil() as u64;
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(reads)
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_read_input_tokens += o.cache_read_input_tokens;
        self.cache_creation_input_tokens += o.cache_creation_input_tokens;
    }
}

/// One key's usage over the horizon.
#[derive(Debug, Default)]
struct KeyUsage {
    /// The last [`EXACT_MS`], by the millisecond its response ended.
    exact: BTreeMap<i64, Tally>,
    /// Older usage, by the start of its minute (or hour, for what was
    /// loaded from rollups).
    minutes: BTreeMap<i64, Tally>,
}

impl KeyUsage {
    /// Moves what aged past [`EXACT_MS`] into minutes and forgets what
    /// aged past [`HORIZON_MS`].
    fn age(&mut self, now_ms: i64) {
        let exact_from = now_ms - EXACT_MS;
        while let Some(entry) = self.exact.first_entry() {
            if *entry.key() >= exact_from {
                break;
            }
            let (at, tally) = entry.remove_entry();
            *self.minutes.entry(floor(at, MINUTE_MS)).or_default() += tally;
        }
        let horizon = floor(now_ms - HORIZON_MS, MINUTE_MS);
        while let Some(entry) = self.minutes.first_entry() {
            if *entry.key() >= horizon {
                break;
            }
            entry.remove();
        }
    }

    fn since(&self, since_ms: i64) -> Tally {
        let mut total = Tally::default();
        for tally in self.exact.range(since_ms..).map(|(_, t)| t) {
            total += *tally;
        }
        let first_minute = ceil(since_ms, MINUTE_MS);
        for tally in self.minutes.range(first_minute..).map(|(_, t)| t) {
            total += *tally;
        }
        total
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.minutes.is_empty()
    }
}

/// Every key's usage over the horizon.
#[derive(Debug, Default)]
pub struct Windows {
    keys: HashMap<String, KeyUsage>,
}

impl Windows {
    /// Counts `tally` for `key` at `done_ms` (when its response ended).
    pub fn add(&mut self, key: &str, done_ms: i64, tally: Tally, now_ms: i64) {
        if done_ms < now_ms - HORIZON_MS {
            return;
        }
        let usage = match self.keys.get_mut(key) {
            Some(usage) => usage,
            None => self.keys.entry(key.to_string()).or_default(),
        };
        if done_ms >= now_ms - EXACT_MS {
            *usage.exact.entry(done_ms).or_default() += tally;
        } else {
            *usage.minutes.entry(floor(done_ms, MINUTE_MS)).or_default() += tally;
        }
        usage.age(now_ms);
    }

    /// Counts usage loaded from the store: `tally` in the bucket starting at
    /// `bucket_ms` (a minute or an hour).
    pub fn load(&mut self, key: &str, bucket_ms: i64, tally: Tally) {
        let usage = self.keys.entry(key.to_string()).or_default();
        *usage.minutes.entry(bucket_ms).or_default() += tally;
    }

    /// What `key` used from `since_ms` to now (see the module docs for the
    /// resolution).
    pub fn since(&mut self, key: &str, since_ms: i64, now_ms: i64) -> Tally {
        let Some(usage) = self.keys.get_mut(key) else {
            return Tally::default();
        };
        usage.age(now_ms);
        let total = usage.since(since_ms);
        if usage.is_empty() {
            self.keys.remove(key);
        }
        total
    }
}

fn floor(ms: i64, unit: i64) -> i64 {
    ms.div_euclid(unit) * unit
}

fn ceil(ms: i64, unit: i64) -> i64 {
    floor(ms + unit - 1, unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(requests: u64, input: u64) -> Tally {
        Tally {
            requests,
            input_tokens: input,
            ..Tally::default()
        }
    }

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn the_last_hour_is_exact_to_the_millisecond() {
        let mut w = Windows::default();
        w.add("a", T0, tally(1, 10), T0);
        w.add("a", T0 + 1, tally(1, 20), T0 + 1);
        w.add("b", T0 + 1, tally(1, 99), T0 + 1);
        let now = T0 + 1000;
        assert_eq!(w.since("a", T0, now), tally(2, 30));
        assert_eq!(w.since("a", T0 + 1, now), tally(1, 20));
        assert_eq!(w.since("a", T0 + 2, now), Tally::default());
        assert_eq!(w.since("nobody", T0, now), Tally::default());
    }

    #[test]
    fn older_usage_counts_by_whole_minutes_and_ends_at_the_horizon() {
        let mut w = Windows::default();
        let at = T0 + 30_000; // half past a minute
        w.add("a", at, tally(1, 5), at);
        let later = at + 2 * HOUR_MS;
        // Now kept by its minute: a window starting in that minute misses
        // it, one starting at or before the minute's start sees it.
        assert_eq!(w.since("a", at, later), Tally::default());
        assert_eq!(w.since("a", floor(at, MINUTE_MS), later), tally(1, 5));
        assert_eq!(w.since("a", T0 - DAY_MS, later), tally(1, 5));
        let gone = at + HORIZON_MS + MINUTE_MS;
        assert_eq!(w.since("a", 0, gone), Tally::default());
        assert!(w.keys.is_empty(), "a key with nothing left is forgotten");
    }

    #[test]
    fn usage_added_late_or_loaded_lands_in_its_minute() {
        let mut w = Windows::default();
        let now = T0 + 10 * DAY_MS;
        w.add("a", T0 + 5, tally(1, 1), now);
        w.load("a", T0 + 3 * HOUR_MS, tally(4, 40));
        w.add("a", now - HORIZON_MS - 1, tally(1, 1000), now);
        assert_eq!(w.since("a", T0, now), tally(5, 41));
        assert_eq!(w.since("a", T0 + MINUTE_MS, now), tally(4, 40));
    }

    #[test]
    fn weighted_tokens_count_cache_reads_at_their_weight() {
        let t = Tally {
            requests: 1,
            input_tokens: 10,
            output_tokens: 20,
            cache_read_input_tokens: 1000,
            cache_creation_input_tokens: 5,
        };
        assert_eq!(t.weighted_tokens(0.1), 135);
        assert_eq!(t.weighted_tokens(0.0), 35);
        assert_eq!(t.weighted_tokens(1.0), 1035);
        let odd = Tally {
            cache_read_input_tokens: 3,
            ..Tally::default()
        };
        assert_eq!(odd.weighted_tokens(0.1), 1, "rounded up");
    }
}
