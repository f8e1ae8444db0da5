//! The blank-spare policy: how many blank workers to keep, and when a
//! refill must hold back. A plain value fed what jobs found and the host's
//! load, each with its time; `blank` carries out what it decides.
//!
//! `pool.blank_spares = N` keeps N. `"auto"` follows demand over the last
//! [`WINDOW`]:
//! - new system prompts (a job whose prompt no live worker holds) arriving
//!   at rate `r` need `ceil(r × boot)` spares, `boot` being how long a
//!   worker took to boot lately: that many boots run while the next new
//!   prompts arrive. One or two new prompts in the window need one;
//! - each job that waited for a boot raises that by one (demand outran the
//!   spares);
//! - each prompt the refill retired that came back lowers it by one, and
//!   when no new prompt came, only repeated ones, it is zero: every worker
//!   keeps a prompt warm. With no jobs at all it stays where it was (one at
//!   start);
//! - at most one spare per idle core of the host (at least one), as read
//!   from its load average: on a busy host a boot competes with everything
//!   else, and more boots at once only slow each other down.
//!
//! Whatever the target, a loop guard: a prompt the refill retired that
//! comes back and takes a blank worker (a *regret*: the spare cost it a
//! boot's worth of warmth) stops refills from retiring idle workers until a
//! genuinely new prompt arrives. So a pool never boots a worker, retires
//! another for the spare, and boots that one back, round after round.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BlankSpares;
use crate::worker::WorkerKind;

/// How far back demand counts for `"auto"`.
pub(super) const WINDOW: Duration = Duration::from_secs(30);
/// How long a retired prompt is remembered, to notice it coming back.
const RETIRED_MEMORY: Duration = Duration::from_secs(600);
/// At most this many retired prompts are remembered.
const RETIRED_CAP: usize = 64;
/// New prompts the arrival rate is measured over (the latest).
const RATE_SAMPLES: usize = 8;
/// Boot time assumed until one is measured.
const FIRST_BOOT_GUESS: Duration = Duration::from_secs(1);

/// What a job found when it was given a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Its prompt was held by no live worker: it took a blank one.
    NewPrompt,
    /// Its prompt was held (by the worker it got, or another).
    Repeat,
    /// A prompt the refill had retired came back and took a blank worker.
    Regret,
    /// It was given a worker that finished booting after it arrived.
    WaitedForBoot,
}

/// What an idle worker held when the refill retired it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Held {
    pub kind: WorkerKind,
    /// `affinity::digest_str` of the system prompt.
    pub prompt: u64,
    /// An agent worker's tenant (see `Slot::tenant`).
    pub tenant: Option<String>,
}

/// The host's CPU as last read: cores and the 1-minute load average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostCpu {
    pub cores: f64,
    pub load: f64,
}

impl HostCpu {
    /// How many spares the idle cores allow: one a core, at least one.
    fn spares_allowed(&self) -> usize {
        ((self.cores - self.load).max(0.0).floor() as usize).max(1)
    }
}

/// The policy's memory.
#[derive(Debug)]
pub(super) struct Spares {
    /// What jobs found within the last [`WINDOW`], oldest first.
    seen: VecDeque<(Instant, Seen)>,
    /// Prompts the refill retired, oldest first.
    retired: VecDeque<(Instant, Held)>,
    /// Set by a regret, cleared by a new prompt: refills wait meanwhile.
    pub held_back: bool,
    /// How long a worker took to boot lately (a moving average).
    boot: Duration,
    host: Option<HostCpu>,
    /// The target as last worked out (see [`Spares::update`]).
    current: usize,
}

impl Default for Spares {
    fn default() -> Self {
        Self {
            seen: VecDeque::new(),
            retired: VecDeque::new(),
            held_back: false,
            boot: FIRST_BOOT_GUESS,
            host: None,
            current: 1,
        }
    }
}

impl Spares {
    /// A job found `what`, counted `at` (a new prompt at its arrival: the
    /// rate of new prompts is how fast they arrive, not how fast workers
    /// were found for them).
    pub fn saw(&mut self, at: Instant, what: Seen) {
        match what {
            Seen::NewPrompt => self.held_back = false,
            Seen::Regret => self.held_back = true,
            Seen::Repeat | Seen::WaitedForBoot => {}
        }
        // A job that waited arrived before others were seen: kept in order.
        let place = self.seen.partition_point(|(t, _)| *t <= at);
        self.seen.insert(place, (at, what));
        self.forget(at);
    }

    /// The refill retired an idle worker that held `held`.
    pub fn retired(&mut self, now: Instant, held: Held) {
        self.retired.push_back((now, held));
        if self.retired.len() > RETIRED_CAP {
            self.retired.pop_front();
        }
    }

    /// Whether a job holding `held` comes back after the refill retired
    /// it; it is forgotten then (one regret each).
    pub fn came_back(&mut self, now: Instant, held: &Held) -> bool {
        self.forget(now);
        let Some(at) = self.retired.iter().position(|(_, h)| h == held) else {
            return false;
        };
        self.retired.remove(at);
        true
    }

    /// A worker took `took` to boot.
    pub fn booted(&mut self, took: Duration) {
        // Recent boots weigh most: the host's load changes.
        self.boot = (self.boot * 2 + took) / 3;
    }

    /// The host's CPU was read.
    pub fn host(&mut self, cpu: HostCpu) {
        self.host = Some(cpu);
    }

    /// Works the target out for `setting` at `now` on a pool of `size`
    /// (for `"auto"`, from demand) and returns it.
    pub fn update(&mut self, setting: BlankSpares, size: usize, now: Instant) -> usize {
        let most = size.saturating_sub(1);
        self.current = match setting {
            BlankSpares::Fixed(n) => n.min(most),
            BlankSpares::Auto => {
                self.forget(now);
                let host = self.host.map_or(usize::MAX, |h| h.spares_allowed());
                self.demand().min(most).min(host)
            }
        };
        self.current
    }

    /// The target as last worked out.
    pub fn current(&self) -> usize {
        self.current
    }

    /// How many spares the recent jobs call for (see the module docs).
    fn demand(&self) -> usize {
        let count = |what: Seen| self.seen.iter().filter(|(_, s)| *s == what).count();
        let news: Vec<Instant> = self
            .seen
            .iter()
            .filter(|(_, s)| *s == Seen::NewPrompt)
            .map(|(at, _)| *at)
            .collect();
        let by_rate = match news.len() {
            0 if count(Seen::Repeat) + count(Seen::Regret) > 0 => 0,
            // No jobs at all: as it was.
            0 => self.current,
            1 | 2 => 1,
            n => {
                let latest = &news[n.saturating_sub(RATE_SAMPLES)..];
                let span = latest[latest.len() - 1].saturating_duration_since(latest[0]);
                let per_sec = (latest.len() - 1) as f64 / span.as_secs_f64().max(0.001);
                ((per_sec * self.boot.as_secs_f64()).ceil() as usize).max(1)
            }
        };
        (by_rate + count(Seen::WaitedForBoot)).saturating_sub(count(Seen::Regret))
    }

    /// Drops what is too old to count.
    fn forget(&mut self, now: Instant) {
        while self
            .seen
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > WINDOW)
        {
            self.seen.pop_front();
        }
        while self
            .retired
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > RETIRED_MEMORY)
        {
            self.retired.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(spares: &mut Spares, size: usize, now: Instant) -> usize {
        spares.update(BlankSpares::Auto, size, now)
    }

    #[test]
    fn a_fixed_count_is_kept_below_the_pool_size() {
        let mut spares = Spares::default();
        let now = Instant::now();
        assert_eq!(spares.update(BlankSpares::Fixed(1), 3, now), 1);
        assert_eq!(spares.update(BlankSpares::Fixed(5), 3, now), 2);
        assert_eq!(spares.update(BlankSpares::Fixed(1), 1, now), 0);
    }

    #[test]
    fn auto_keeps_one_until_jobs_say_otherwise() {
        let mut spares = Spares::default();
        let start = Instant::now();
        assert_eq!(auto(&mut spares, 3, start), 1);
        // A quiet pool keeps what it had.
        assert_eq!(auto(&mut spares, 3, start + Duration::from_secs(300)), 1);
    }

    #[test]
    fn auto_rises_with_new_prompts_faster_than_a_boot_and_falls_when_prompts_repeat() {
        let mut spares = Spares::default();
        spares.booted(Duration::from_millis(1200));
        let start = Instant::now();
        // A new prompt every 0.5 s; a boot takes about a second.
        for i in 0..6 {
            spares.saw(start + Duration::from_millis(500 * i), Seen::NewPrompt);
        }
        let now = start + Duration::from_millis(2500);
        assert_eq!(auto(&mut spares, 4, now), 3, "2/s x ~1.07 s");
        assert_eq!(auto(&mut spares, 3, now), 2, "at most size - 1");
        // Then only repeated prompts: once the new ones are out of the
        // window, every worker keeps a prompt warm.
        let later = now + WINDOW + Duration::from_secs(1);
        spares.saw(later, Seen::Repeat);
        assert_eq!(auto(&mut spares, 4, later), 0);
    }

    #[test]
    fn auto_rises_for_each_job_that_waited_for_a_boot_and_falls_for_each_regret() {
        let mut spares = Spares::default();
        let now = Instant::now();
        spares.saw(now, Seen::NewPrompt);
        spares.saw(now, Seen::WaitedForBoot);
        assert_eq!(auto(&mut spares, 4, now), 2);
        spares.saw(now, Seen::Regret);
        assert_eq!(auto(&mut spares, 4, now), 1);
    }

    #[test]
    fn new_prompts_seen_out_of_order_count_at_their_arrival() {
        let mut spares = Spares::default();
        let start = Instant::now();
        // Arrived 10 ms apart, told in another order.
        for ms in [20, 0, 30, 10] {
            spares.saw(start + Duration::from_millis(ms), Seen::NewPrompt);
        }
        let times: Vec<Instant> = spares.seen.iter().map(|(at, _)| *at).collect();
        assert!(times.is_sorted(), "{times:?}");
        assert_eq!(
            auto(&mut spares, 8, start + Duration::from_secs(2)),
            7,
            "100/s"
        );
    }

    #[test]
    fn auto_keeps_no_more_spares_than_idle_cores_allow() {
        let mut spares = Spares::default();
        spares.booted(Duration::from_secs(3));
        let start = Instant::now();
        for i in 0..6 {
            spares.saw(start + Duration::from_millis(500 * i), Seen::NewPrompt);
        }
        let now = start + Duration::from_millis(2500);
        spares.host(HostCpu {
            cores: 4.0,
            load: 1.5,
        });
        assert_eq!(auto(&mut spares, 8, now), 2, "2.5 idle cores");
        spares.host(HostCpu {
            cores: 2.0,
            load: 15.0,
        });
        assert_eq!(auto(&mut spares, 8, now), 1, "a saturated host keeps one");
    }

    #[test]
    fn a_retired_prompt_that_comes_back_is_a_regret_once_and_holds_refills_back() {
        let mut spares = Spares::default();
        let now = Instant::now();
        let held = Held {
            kind: WorkerKind::Plain,
            prompt: 7,
            tenant: None,
        };
        spares.retired(now, held.clone());
        assert!(spares.came_back(now, &held));
        assert!(!spares.came_back(now, &held), "counted once");
        spares.saw(now, Seen::Regret);
        assert!(spares.held_back);
        spares.saw(now, Seen::NewPrompt);
        assert!(!spares.held_back, "a new prompt wants spares again");
        // Long after, a retired prompt is forgotten.
        spares.retired(now, held.clone());
        assert!(!spares.came_back(now + RETIRED_MEMORY * 2, &held));
    }
}
