//! An account's standing — `ok`, `limited` until a known time, or drawing
//! on `overage` — and the order in which accounts get new work. Pure: the
//! caller passes the clock, so every rule is unit-tested here.
//!
//! Routing rules: a limited account takes no new work until its limit ends
//! (it comes back by itself). Among the others, accounts with plan headroom
//! come first, by lowest known utilization, then least recently used. An
//! account drawing on overage with `allow_overage = false` takes no new work
//! while another account has plan headroom.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::signal::Signal;

/// How long a 429 that names no time limits an account. Such a 429 comes
/// only from a CLI that did not retry (`claude.max_retries = 0`; with
/// retries the CLI announces the upstream's `retry-after`): short, because
/// failing over again costs one refused call, while idling an account that
/// recovered wastes it.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(10);
/// The shortest limit: a 429 is never ignored.
const SHORTEST_LIMIT: Duration = Duration::from_secs(1);
/// The longest limit believed (a weekly plan limit fits).
const LONGEST_LIMIT: Duration = Duration::from_secs(8 * 24 * 3600);

/// How an account stands, as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Refusing calls until `limited_until`.
    Limited,
    /// The plan's limit is spent; calls are billed as overage.
    Overage,
}

impl Status {
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Limited => "limited",
            Status::Overage => "overage",
        }
    }
}

/// What is known about one account's limits.
#[derive(Debug, Clone, Default)]
pub struct Standing {
    limited_until: Option<SystemTime>,
    /// The reset time of the latest report: the end of a 429 that names no
    /// time of its own, and of an overage period.
    reported_reset: Option<SystemTime>,
    utilization: Option<f64>,
    using_overage: bool,
    /// When the account last got a new job (an ordinal), for LRU.
    last_used: u64,
}

impl Standing {
    /// Takes in a signal from one of the account's workers. Returns the end
    /// of the limit when the signal limits the account.
    pub fn note(&mut self, signal: &Signal, now: SystemTime) -> Option<SystemTime> {
        let until = match signal {
            Signal::Limited { retry_after } => match retry_after {
                Some(after) => now + (*after).max(SHORTEST_LIMIT),
                None => self
                    .reported_reset
                    .filter(|at| *at > now)
                    .unwrap_or(now + DEFAULT_LIMIT),
            },
            Signal::Report(report) => {
                self.reported_reset = report
                    .resets_at
                    .map(|t| UNIX_EPOCH + Duration::from_secs(t));
                self.utilization = report.utilization;
                self.using_overage = report.using_overage;
                if !report.rejected {
                    return None;
                }
                self.reported_reset
                    .filter(|at| *at > now)
                    .unwrap_or(now + DEFAULT_LIMIT)
            }
        };
        let until = until.clamp(now + SHORTEST_LIMIT, now + LONGEST_LIMIT);
        let until = self
            .limit_end(now)
            .map_or(until, |current| current.max(until));
        self.limited_until = Some(until);
        Some(until)
    }

    /// When the current limit ends; `None` when not limited.
    pub fn limit_end(&self, now: SystemTime) -> Option<SystemTime> {
        self.limited_until.filter(|until| *until > now)
    }

    pub fn status(&self, now: SystemTime) -> Status {
        if self.limit_end(now).is_some() {
            Status::Limited
        } else if self.using_overage && self.reported_reset.is_none_or(|at| at > now) {
            Status::Overage
        } else {
            Status::Ok
        }
    }

    /// Share of the plan's limit used, when the CLI reported it.
    pub fn utilization(&self) -> Option<f64> {
        self.utilization
    }

    /// Records that the account got a new job; `ordinal` grows per job.
    pub fn used(&mut self, ordinal: u64) {
        self.last_used = ordinal;
    }
}

/// An account as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub standing: &'a Standing,
    pub allow_overage: bool,
}

impl Candidate<'_> {
    fn has_headroom(&self, now: SystemTime) -> bool {
        self.standing.status(now) == Status::Ok
    }
}

/// The accounts that may take new work, best first, as indexes into
/// `candidates` (see the module docs for the rules).
pub fn ranked(candidates: &[Candidate<'_>], now: SystemTime) -> Vec<usize> {
    let headroom = candidates.iter().any(|c| c.has_headroom(now));
    let mut usable: Vec<usize> = (0..candidates.len())
        .filter(|&i| match candidates[i].standing.status(now) {
            Status::Ok => true,
            Status::Limited => false,
            Status::Overage => candidates[i].allow_overage || !headroom,
        })
        .collect();
    usable.sort_by(|&a, &b| {
        let key = |c: &Candidate| {
            (
                !c.has_headroom(now),
                c.standing.utilization.unwrap_or(0.0),
                c.standing.last_used,
            )
        };
        let (a, b) = (key(&candidates[a]), key(&candidates[b]));
        a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2))
    });
    usable
}

/// How long until the soonest limit ends, when every account is limited.
pub fn soonest_reset(candidates: &[Candidate<'_>], now: SystemTime) -> Option<Duration> {
    candidates
        .iter()
        .filter_map(|c| c.standing.limit_end(now))
        .min()
        .and_then(|at| at.duration_since(now).ok())
}

/// `at` as unix seconds.
pub fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::super::signal::Report;
    use super::*;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn limited(after: Option<u64>) -> Signal {
        Signal::Limited {
            retry_after: after.map(Duration::from_secs),
        }
    }

    fn report(rejected: bool, resets: Option<u64>, util: Option<f64>, overage: bool) -> Signal {
        Signal::Report(Report {
            rejected,
            resets_at: resets.map(|s| 1_800_000_000 + s),
            utilization: util,
            using_overage: overage,
        })
    }

    #[test]
    fn a_limit_lasts_its_time_and_ends_by_itself() {
        let mut s = Standing::default();
        assert_eq!(s.status(t(0)), Status::Ok);
        assert_eq!(s.note(&limited(Some(60)), t(0)), Some(t(60)));
        assert_eq!(s.status(t(59)), Status::Limited);
        assert_eq!(s.status(t(60)), Status::Ok);
        // No time given: the default, or a reset time reported before.
        assert_eq!(s.note(&limited(None), t(100)), Some(t(110)));
        let mut s = Standing::default();
        s.note(&report(false, Some(3600), Some(0.95), false), t(0));
        assert_eq!(s.note(&limited(None), t(10)), Some(t(3600)));
        // A shorter limit never shortens a longer one.
        assert_eq!(s.note(&limited(Some(1)), t(20)), Some(t(3600)));
        // Nor is one ever shorter than a second or absurdly long.
        let mut s = Standing::default();
        assert_eq!(s.note(&limited(Some(0)), t(0)), Some(t(1)));
        assert!(s.note(&limited(Some(10_000_000)), t(0)).unwrap() < t(10_000_000));
    }

    #[test]
    fn reports_set_utilization_overage_and_rejection() {
        let mut s = Standing::default();
        assert_eq!(
            s.note(&report(false, Some(500), Some(0.8), false), t(0)),
            None
        );
        assert_eq!(s.utilization(), Some(0.8));
        assert_eq!(s.note(&report(false, Some(500), None, true), t(1)), None);
        assert_eq!(s.status(t(2)), Status::Overage);
        assert_eq!(
            s.status(t(500)),
            Status::Ok,
            "overage ends with the plan's reset"
        );
        assert_eq!(
            s.note(&report(true, Some(900), None, false), t(600)),
            Some(t(900))
        );
        assert_eq!(s.status(t(899)), Status::Limited);
    }

    fn candidates(standings: &[(Standing, bool)]) -> Vec<Candidate<'_>> {
        standings
            .iter()
            .map(|(standing, allow_overage)| Candidate {
                standing,
                allow_overage: *allow_overage,
            })
            .collect()
    }

    #[test]
    fn new_work_goes_to_the_best_standing_then_least_recently_used() {
        let mut a = Standing::default();
        let mut b = Standing::default();
        let c = Standing::default();
        a.used(3);
        b.used(1);
        let accounts = vec![(a.clone(), false), (b.clone(), false), (c, false)];
        assert_eq!(ranked(&candidates(&accounts), t(0)), [2, 1, 0]);
        // Lower known utilization beats recency.
        a.note(&report(false, None, Some(0.2), false), t(0));
        b.note(&report(false, None, Some(0.9), false), t(0));
        let accounts = vec![(a.clone(), false), (b.clone(), false)];
        assert_eq!(ranked(&candidates(&accounts), t(0)), [0, 1]);
        // A limited account is skipped until its limit ends.
        a.note(&limited(Some(30)), t(0));
        let accounts = vec![(a, false), (b, false)];
        assert_eq!(ranked(&candidates(&accounts), t(10)), [1]);
        assert_eq!(ranked(&candidates(&accounts), t(30)), [0, 1]);
    }

    #[test]
    fn overage_is_a_last_resort_unless_allowed() {
        let mut spending = Standing::default();
        spending.note(&report(false, None, None, true), t(0));
        let fine = Standing::default();
        let accounts = vec![(spending.clone(), false), (fine.clone(), false)];
        assert_eq!(ranked(&candidates(&accounts), t(0)), [1]);
        let accounts = vec![(spending.clone(), true), (fine.clone(), false)];
        assert_eq!(ranked(&candidates(&accounts), t(0)), [1, 0]);
        // Without headroom anywhere else, the overage account still serves.
        let mut out = fine;
        out.note(&limited(Some(60)), t(0));
        let accounts = vec![(spending, false), (out, false)];
        assert_eq!(ranked(&candidates(&accounts), t(0)), [0]);
    }

    #[test]
    fn the_soonest_reset_is_the_retry_after() {
        let mut a = Standing::default();
        let mut b = Standing::default();
        a.note(&limited(Some(90)), t(0));
        b.note(&limited(Some(30)), t(0));
        let accounts = vec![(a, false), (b, false)];
        let c = candidates(&accounts);
        assert!(ranked(&c, t(10)).is_empty());
        assert_eq!(soonest_reset(&c, t(10)), Some(Duration::from_secs(20)));
    }
}
