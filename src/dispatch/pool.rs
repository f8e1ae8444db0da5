//! The pool as a plain value: its workers as they reported, the queue, the
//! accounts and the restarts; the inputs it takes, each with the time it
//! happened, and the effects it returns (see the module docs of `dispatch`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::accounts::AccountKey;
use super::health::JobStats;
use super::order::Order;
use super::parking::ReleasedPark;
use super::queue::{Queue, Ticket};
use super::restarts::Restarts;
use super::slots::Slots;
use super::spares::Spares;
use crate::accounts::Roster;
use crate::config::{AccountPlan, Settings};
use crate::error::JobError;
use crate::job::Placement;
use crate::worker::report::WorkerState;
use crate::worker::{WorkerId, WorkerKind};

/// What `Retry-After` says when the queue is full.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(2);

/// What the actor must do for the pool, in order.
#[derive(Debug)]
pub enum Effect {
    /// Start worker `id` of `kind` under the account `plan`.
    Spawn {
        id: WorkerId,
        kind: WorkerKind,
        plan: AccountPlan,
    },
    /// Tell worker `id` to do something.
    Tell(WorkerId, Command),
    /// End the job of this ticket, which will not run, with this error.
    Fail(Ticket, JobError),
    /// Call [`Pool::tick`] after this long (a respawn's backoff ends).
    WakeIn(Duration),
    /// A worker may be free for a background job: whoever feeds them is
    /// told.
    IdleCapacity,
    /// Create this account's configuration directory (private) before its
    /// workers start, unless it exists.
    CreateDir(std::path::PathBuf),
}

/// What the pool asks of a worker.
#[derive(Debug)]
pub enum Command {
    /// Run the job of this ticket (new, a bound conversation's next turn,
    /// or the tool results a parked turn waits for). Where it runs is noted
    /// on the job for its usage row as it is sent: the pool never holds a
    /// job, only its [`Order`].
    Run(Ticket, Placement),
    /// Let go of the bound conversation.
    Unbind,
    /// Give up the parked turn.
    ReleasePark,
    /// Stop the process.
    Stop,
}

/// The pool: admits jobs, queues them, gives each to a worker, and keeps
/// `pool.size` workers alive from the reports they send.
pub struct Pool {
    pub(super) settings: Arc<Settings>,
    /// The kind of worker the pool is made of when nothing else is asked for.
    pub(super) default_kind: WorkerKind,
    /// The workers, as they reported (see `slots`).
    pub(super) workers: Slots,
    /// Jobs waiting for a worker, oldest first; never longer than
    /// `max_queue` plus the workers free or on their way (see `room`).
    pub(super) queue: Queue,
    /// The accounts workers run under (see `crate::accounts`).
    pub(super) accounts: Roster,
    pub(super) restarts: Restarts,
    pub(super) draining: bool,
    /// Parked turns given up for other work, oldest first, whose
    /// continuation gets an error once (see `parking`).
    pub(super) released_parks: VecDeque<ReleasedPark>,
    pub(super) stats: JobStats,
    started_at: Instant,
    /// The wall clock at `started_at`: account limits end at wall-clock
    /// times, read as `started_at`'s plus the time since (one clock).
    wall_at_start: SystemTime,
    /// When the input being handled happened.
    now: Instant,
    /// Set when a job with a new system prompt took a blank worker: a blank
    /// spare of that kind is to be made (see `blank`).
    pub(super) spare_due: Option<WorkerKind>,
    /// The blank-spare policy's memory: demand, retired prompts, the
    /// host's CPU (see `spares`).
    pub(super) spares: Spares,
    /// Effects of the input being handled.
    effects: Vec<Effect>,
}

impl Pool {
    /// A pool for `settings` made of `default_kind` workers, created at
    /// `now` (when the wall clock read `wall`). It has no workers until
    /// [`Pool::start`].
    pub fn new(
        settings: Arc<Settings>,
        default_kind: WorkerKind,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let mut pool = Self {
            settings,
            default_kind,
            workers: Slots::default(),
            queue: Queue::default(),
            accounts: Roster::default(),
            restarts: Restarts::default(),
            draining: false,
            released_parks: VecDeque::new(),
            stats: JobStats::default(),
            started_at: now,
            wall_at_start: wall,
            now,
            spare_due: None,
            spares: Spares::default(),
            effects: Vec::new(),
        };
        pool.update_spare_target();
        pool
    }

    /// Sets the time of the input being handled (never backwards).
    pub(super) fn at(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// What the input just handled asks the actor to do.
    pub(super) fn effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub(super) fn push(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    pub(super) fn tell(&mut self, id: WorkerId, command: Command) {
        self.effects.push(Effect::Tell(id, command));
    }

    /// Ends `job` with `error`; it never runs.
    pub(super) fn fail(&mut self, job: Order, error: JobError) {
        self.effects.push(Effect::Fail(job.ticket, error));
    }

    /// The time of the input being handled.
    pub(super) fn now(&self) -> Instant {
        self.now
    }

    /// The wall-clock time of the input being handled.
    pub(super) fn wall(&self) -> SystemTime {
        self.wall_at_start + self.now.saturating_duration_since(self.started_at)
    }

    /// How long `job` has waited since it was admitted.
    pub(super) fn waited(&self, job: &Order) -> Duration {
        super::queue::waited(job, self.now)
    }

    /// How long the pool has run.
    pub(super) fn uptime(&self) -> Duration {
        self.now.saturating_duration_since(self.started_at)
    }

    /// Starts the accounts' workers.
    pub fn start(&mut self, now: Instant) -> Vec<Effect> {
        self.at(now);
        self.apply_account_plans();
        self.staff_accounts();
        self.effects()
    }

    /// Adds a worker of `kind` on `account`; the actor spawns it.
    pub(super) fn spawn_worker(&mut self, kind: WorkerKind, account: AccountKey) {
        let Some(plan) = self.account(account).map(|a| a.plan.clone()) else {
            return;
        };
        let id = self.workers.add(kind, account, self.now);
        self.effects.push(Effect::Spawn { id, kind, plan });
    }

    /// Crash loop: many recent failures and no worker able to serve.
    pub(super) fn is_degraded(&self) -> bool {
        self.restarts.crash_looping(&self.settings.pool, self.now)
            && self
                .workers
                .values()
                .all(|s| matches!(s.state, WorkerState::Starting | WorkerState::Stopping))
    }

    /// A job arrived at `now`: it runs now, waits in the queue, or (`Err`)
    /// is refused at once (its holder answers it).
    pub fn submit(&mut self, now: Instant, job: Order) -> (Result<(), JobError>, Vec<Effect>) {
        self.at(now);
        let admitted = self.admit(job);
        (admitted, self.effects())
    }

    fn admit(&mut self, job: Order) -> Result<(), JobError> {
        // While draining, only the results of a turn parked here get in:
        // they finish work in flight, which would otherwise be replayed
        // from its history on another node.
        if self.draining && self.parked_for(&job).is_none() {
            self.stats.rejected += 1;
            return Err(JobError::ShuttingDown);
        }
        if self.is_degraded() {
            self.stats.rejected += 1;
            let why = self
                .restarts
                .last_failure
                .clone()
                .unwrap_or_else(|| "workers keep failing".into());
            return Err(JobError::Unavailable(why));
        }
        if let Some(error) = self.all_limited() {
            self.stats.rejected += 1;
            return Err(error);
        }
        if self.continues_released_park(&job) {
            self.stats.rejected += 1;
            return Err(JobError::ParkReleased);
        }
        let ticket = self.queue.push_back(job);
        self.dispatch();
        // Jobs waiting for a worker that is only being cleared or replaced
        // are not over the limit: that worker is capacity.
        let still_queued = self.queue.contains(ticket);
        if still_queued
            && self
                .queue
                .is_over(self.settings.pool.max_queue, self.room())
        {
            self.queue.remove(ticket);
            self.stats.rejected += 1;
            return Err(JobError::QueueFull {
                queued: self.queue.len(),
                retry_after: RETRY_AFTER,
            });
        }
        Ok(())
    }

    /// The clients of these queued jobs stopped waiting (the actor saw
    /// their channels close): the jobs leave the queue and never run.
    pub fn clients_left(&mut self, now: Instant, tickets: &[Ticket]) -> Vec<Effect> {
        self.at(now);
        for &ticket in tickets {
            if let Some(job) = self.queue.remove(ticket) {
                log::info!("[{}] client left while queued", job.id);
                self.stats.abandoned += 1;
            }
        }
        self.effects()
    }

    /// Time passed: queued jobs time out, respawns whose backoff ended
    /// start, bound conversations idle too long are let go, and waiting
    /// jobs are offered workers again (an account's limit may have ended).
    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        self.at(now);
        self.expire_queued();
        let respawned = self.respawn_due();
        if respawned || !self.queue.is_empty() {
            self.dispatch();
        }
        let bound_since = self
            .workers
            .iter()
            .filter(|(_, s)| matches!(s.state, WorkerState::Bound { .. }))
            .map(|(id, s)| (*id, s.since));
        let idle = self.settings.pool.affinity_idle();
        for id in super::expiry::expired_bindings(bound_since, idle, self.now) {
            log::debug!("worker-{id}: bound conversation expired");
            self.unbind(id);
        }
        // A worker left idle long enough may now make a spare (see `blank`).
        self.update_spare_target();
        self.keep_spares();
        self.effects()
    }

    /// Stop admitting; queued jobs are refused. In-flight jobs run on.
    pub fn drain(&mut self, now: Instant) -> Vec<Effect> {
        self.at(now);
        if !self.draining {
            self.draining = true;
            log::info!("draining: {} queued jobs refused", self.queue.len());
            for job in self.queue.take_all() {
                self.fail(job, JobError::ShuttingDown);
                self.stats.rejected += 1;
            }
        }
        self.effects()
    }

    /// Stop every worker (after draining).
    pub fn stop_all(&mut self, now: Instant) -> Vec<Effect> {
        self.at(now);
        self.draining = true;
        let ids: Vec<WorkerId> = self.workers.keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
        self.effects()
    }

    /// Tells worker `id` to stop; it is `Stopping` until it exits.
    pub(super) fn stop(&mut self, id: WorkerId) {
        if self.workers.get(&id).is_some() {
            self.workers.set_state(id, WorkerState::Stopping, self.now);
            self.effects.push(Effect::Tell(id, Command::Stop));
        }
    }
}
