//! The pool's state as `/health` reports it: a plain snapshot struct.

use serde::Serialize;

use tokio::time::Instant;

use super::pool::Pool;
use crate::affinity;
use crate::worker::report::WorkerState;
use crate::worker::WorkerKind;

/// Overall condition of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// At least one worker is ready or working.
    Ok,
    /// Workers are booting; jobs queue meanwhile.
    Starting,
    /// No worker can run (the CLI keeps failing), or every account's last
    /// job failed on its credentials; see `reason`.
    Degraded,
    /// Draining for shutdown; no new jobs.
    ShuttingDown,
}

/// The pool's state as `GET /health` shows it (and `/metrics` reads it):
/// a snapshot the dispatcher builds on request.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub version: &'static str,
    pub uptime_secs: u64,
    pub workers: WorkerCounts,
    pub queue: QueueStats,
    pub jobs: JobStats,
    /// Workers started to replace others (retired, crashed, failed to
    /// boot), whether at once or once the other had exited.
    pub restarts: u64,
    /// Of those, workers retired on purpose: job count or memory limit.
    pub recycles: u64,
    /// The accounts workers run under (one, `default`, unless configured).
    pub accounts: Vec<crate::accounts::AccountHealth>,
    /// Blank workers kept for new system prompts.
    pub spares: SpareHealth,
}

/// The blank spares: how many the pool keeps now, and how many it has.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpareHealth {
    /// Blank workers the pool keeps ready or booting now: the
    /// `pool.blank_spares` count, or what `"auto"` worked out from demand.
    pub target: usize,
    /// Whether `pool.blank_spares` is `"auto"`.
    pub auto: bool,
    /// Blank workers ready or on their way now.
    pub blank: usize,
    /// Whether refills wait for a new prompt: a prompt a refill retired
    /// came back and took a blank worker (no boot, retire, boot loop).
    pub held_back: bool,
}

/// Workers by state, and each worker.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerCounts {
    pub total: usize,
    pub ready: usize,
    pub busy: usize,
    /// Holding a turn blocked on a caller's tool results (counted as busy
    /// for capacity, reported apart).
    pub parked: usize,
    /// Idle, holding a conversation whose next turn they would continue.
    pub bound: usize,
    pub starting: usize,
    pub stopping: usize,
    /// Resident memory of all worker processes, MiB.
    pub rss_mb_total: u64,
    pub items: Vec<WorkerInfo>,
}

/// One worker: its id, process, state, jobs run and memory, and what it
/// holds (for an operator asking which worker is stuck on what).
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    pub id: u64,
    pub pid: u32,
    pub state: &'static str,
    pub jobs: u64,
    pub rss_mb: Option<u64>,
    /// The account whose credentials it runs with.
    pub account: String,
    /// `plain`, or `agent` (Claude Code's own tools in a sandbox).
    pub kind: &'static str,
    /// A short digest of the system prompt it is set up with; `null` when
    /// it is blank (takes any prompt) or starting.
    pub prompt: Option<String>,
    /// How long it has been in `state`, seconds: how long bound or parked.
    pub state_secs: u64,
    /// While parked: how many of the caller's tool calls its turn waits on.
    pub waiting_on_tools: Option<usize>,
}

/// Jobs waiting for a worker, and how many may wait (`pool.max_queue`).
#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    pub depth: usize,
    pub capacity: usize,
}

/// Jobs by outcome since the daemon started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobStats {
    pub completed: u64,
    pub failed: u64,
    /// Refused at admission (queue full, timed out in queue, shutting down).
    pub rejected: u64,
    /// Never run: their clients left while they waited in the queue.
    pub abandoned: u64,
    /// Given to a worker that finished booting after they arrived: a cold
    /// start was on their critical path (see `pool.blank_spares`).
    pub waited_for_boot: u64,
}

impl Health {
    /// Whether `/health` answers 200.
    pub fn is_serving(&self) -> bool {
        matches!(self.status, Status::Ok | Status::Starting)
    }
}

impl Pool {
    /// The pool at `now`, with each worker's resident memory as `rss`
    /// reads it from its pid.
    pub fn health(&mut self, now: Instant, rss: impl Fn(u32) -> Option<u64>) -> Health {
        self.at(now);
        let mut workers = WorkerCounts::default();
        for (id, slot) in &self.workers {
            workers.total += 1;
            match slot.state {
                WorkerState::Starting => workers.starting += 1,
                WorkerState::Ready { .. } => workers.ready += 1,
                WorkerState::Busy(_) => workers.busy += 1,
                WorkerState::Parked { .. } => {
                    workers.busy += 1;
                    workers.parked += 1;
                }
                WorkerState::Bound { .. } => workers.bound += 1,
                WorkerState::Clearing { .. } => workers.busy += 1,
                WorkerState::Stopping | WorkerState::Exited(_) => workers.stopping += 1,
            }
            // Read when asked: /proc is cheap, and a cached figure goes stale.
            let rss_mb = (slot.pid != 0)
                .then(|| rss(slot.pid))
                .flatten()
                .map(|b| b / (1024 * 1024));
            workers.rss_mb_total += rss_mb.unwrap_or_default();
            workers.items.push(WorkerInfo {
                id: *id,
                pid: slot.pid,
                state: slot.state.as_str(),
                jobs: slot.jobs,
                rss_mb,
                account: self
                    .account(slot.account)
                    .map(|a| a.plan.name.clone())
                    .unwrap_or_default(),
                kind: match slot.kind {
                    WorkerKind::Plain => "plain",
                    WorkerKind::Agent => "agent",
                },
                // Keyed per process: comparable within one daemon's life,
                // and the prompt itself never leaves it.
                prompt: slot
                    .state
                    .prompt()
                    .map(|p| format!("{:08x}", affinity::digest_str(p) >> 32)),
                state_secs: now.saturating_duration_since(slot.since).as_secs(),
                waiting_on_tools: match &slot.state {
                    WorkerState::Parked { tool_use_ids, .. } => Some(tool_use_ids.len()),
                    _ => None,
                },
            });
        }
        let (status, reason) = if self.draining {
            (
                Status::ShuttingDown,
                Some("the server is shutting down".to_string()),
            )
        } else if let Some(why) = self.login_failure() {
            // Jobs are still admitted (they get the error and what to do),
            // so that a fixed login is noticed by the next one.
            (Status::Degraded, Some(why))
        } else if workers.ready + workers.busy + workers.bound > 0 {
            (Status::Ok, None)
        } else if self.is_degraded() {
            (Status::Degraded, self.restarts.last_failure.clone())
        } else {
            (Status::Starting, None)
        };
        Health {
            status,
            reason,
            version: env!("CARGO_PKG_VERSION"),
            uptime_secs: self.uptime().as_secs(),
            workers,
            queue: QueueStats {
                depth: self.queue.len(),
                capacity: self.settings.pool.max_queue,
            },
            jobs: self.stats.clone(),
            restarts: self.restarts.restarts,
            recycles: self.restarts.recycles,
            accounts: self.accounts_health(),
            spares: SpareHealth {
                target: self.spare_target_for(self.default_kind),
                auto: self.settings.pool.blank_spares == crate::config::BlankSpares::Auto,
                blank: self.blanks(self.default_kind),
                held_back: self.spares.held_back,
            },
        }
    }
}
