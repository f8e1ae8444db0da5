//! `[pool]`: how many CLI workers, the queue in front of them, and when a
//! worker is retired, restarted or kept for a conversation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The pool of CLI workers and the queue in front of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSettings {
    /// Number of `claude` processes kept alive.
    pub size: usize,
    /// Jobs allowed to wait for a worker; one more is refused with 529.
    pub max_queue: usize,
    /// A job waiting longer than this is refused with 529.
    pub queue_timeout_secs: u64,
    /// Retire a worker after this many jobs (0 = never).
    pub max_jobs_per_worker: u64,
    /// Retire a worker whose resident memory exceeds this (0 = never).
    pub max_worker_rss_mb: u64,
    /// A worker that has not answered its readiness probe by then is killed.
    pub boot_timeout_secs: u64,
    /// During a job, this long without any output from the CLI counts as a hang.
    pub turn_idle_timeout_secs: u64,
    /// First delay before respawning a crashed worker; doubles per failure.
    pub restart_backoff_ms: u64,
    /// Cap of the doubling respawn delay.
    pub restart_backoff_max_ms: u64,
    /// This many worker failures (crash, failed boot) within
    /// `crash_loop_window_secs`, with no worker able to serve, mark the pool
    /// degraded: /health answers 503 and new jobs are refused at once.
    pub crash_loop_failures: u32,
    pub crash_loop_window_secs: u64,
    /// Keep a worker bound to the conversation it just answered, so the next
    /// turn of that conversation is sent only its new message.
    pub affinity: bool,
    /// A bound worker unused this long is cleared for other conversations.
    pub affinity_idle_secs: u64,
    /// Blank workers kept ready for jobs with a new system prompt (at most
    /// `size - 1`): a count, or `"auto"` to follow demand (see
    /// `dispatch::spares`). Whenever fewer are blank, the least recently
    /// used idle worker set up with a prompt is replaced by a blank one in
    /// the background, so the next new prompt does not wait for a boot.
    pub blank_spares: BlankSpares,
    /// A blank spare taken by a repeated prompt (not a new one) is restored
    /// only from a worker idle this long: longer than the gaps between the
    /// jobs of a steady workload, so that it is not one of theirs.
    pub spare_refill_idle_secs: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            size: 2,
            max_queue: 32,
            queue_timeout_secs: 60,
            max_jobs_per_worker: 200,
            max_worker_rss_mb: 1024,
            boot_timeout_secs: 30,
            turn_idle_timeout_secs: 300,
            restart_backoff_ms: 500,
            restart_backoff_max_ms: 30_000,
            crash_loop_failures: 3,
            crash_loop_window_secs: 60,
            affinity: true,
            affinity_idle_secs: 300,
            blank_spares: BlankSpares::Fixed(1),
            spare_refill_idle_secs: 10,
        }
    }
}

impl PoolSettings {
    /// `queue_timeout_secs` as a [`Duration`].
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_secs(self.queue_timeout_secs)
    }
    /// `boot_timeout_secs` as a [`Duration`].
    pub fn boot_timeout(&self) -> Duration {
        Duration::from_secs(self.boot_timeout_secs)
    }
    /// `turn_idle_timeout_secs` as a [`Duration`].
    pub fn turn_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.turn_idle_timeout_secs)
    }
    /// `crash_loop_window_secs` as a [`Duration`].
    pub fn crash_loop_window(&self) -> Duration {
        Duration::from_secs(self.crash_loop_window_secs)
    }
    /// `affinity_idle_secs` as a [`Duration`].
    pub fn affinity_idle(&self) -> Duration {
        Duration::from_secs(self.affinity_idle_secs)
    }
    /// `spare_refill_idle_secs` as a [`Duration`].
    pub fn spare_refill_idle(&self) -> Duration {
        Duration::from_secs(self.spare_refill_idle_secs)
    }
}

/// `pool.blank_spares`: a fixed number of blank workers, or `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SparesValue", into = "SparesValue")]
pub enum BlankSpares {
    /// Keep this many (bounded by `size - 1`).
    Fixed(usize),
    /// Follow demand: more while new system prompts arrive faster than a
    /// worker boots or jobs wait for boots, fewer while prompts repeat;
    /// bounded by `size - 1` and the host's idle CPU.
    Auto,
}

/// How `blank_spares` is written: a count or the word `auto`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SparesValue {
    Count(usize),
    Word(String),
}

impl TryFrom<SparesValue> for BlankSpares {
    type Error = String;

    fn try_from(value: SparesValue) -> Result<Self, String> {
        match value {
            SparesValue::Count(n) => Ok(Self::Fixed(n)),
            SparesValue::Word(w) if w == "auto" => Ok(Self::Auto),
            SparesValue::Word(w) => Err(format!(
                "pool.blank_spares: expected a count or \"auto\", got {w:?}"
            )),
        }
    }
}

impl From<BlankSpares> for SparesValue {
    fn from(spares: BlankSpares) -> Self {
        match spares {
            BlankSpares::Fixed(n) => Self::Count(n),
            BlankSpares::Auto => Self::Word("auto".into()),
        }
    }
}
