//! The dispatcher actor: admission, the bounded queue, and the pool of
//! worker actors it owns.
//!
//! Pool contract: a job is checked out to a ready worker, the worker is
//! cleared (or retired) after the job and reports back, and a worker whose
//! process exits is replaced — at once when it was retired on purpose, after
//! a capped, doubling backoff when it failed. Jobs are never replayed.

pub mod accounts;
mod blank;
mod expiry;
pub mod fair;
pub mod health;
mod logins;
pub mod messages;
mod parking;
mod reconfigure;
mod reports;
mod room;
mod routing;
pub mod spare;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix::WeakAddr;

use crate::config::Settings;
use crate::error::JobError;
use crate::job::Job;
use crate::worker::messages::{ReleasePark, RunJob, StopWorker, Unbind};
use crate::worker::process::SpawnSpec;
use crate::worker::report::{Holder, WorkerState};
use crate::worker::spawn::AgentRecipe;
use crate::worker::{Worker, WorkerId, WorkerKind};
use accounts::{Account, AccountKey};
use health::JobStats;
use messages::*;

/// How often queued jobs are checked for timeouts and departed clients.
const QUEUE_TICK: Duration = Duration::from_millis(250);
/// What `Retry-After` says when the queue is full.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// Grace a worker gets to exit on stdin EOF when stopped.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why a stopping worker is not replaced when its process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaving {
    /// Its account needs fewer workers.
    Shrink,
    /// Its replacement was spawned when it was retired (see `room`).
    Replaced,
}

/// The dispatcher's view of one worker.
struct Slot {
    addr: Addr<Worker>,
    kind: WorkerKind,
    /// The account whose credentials the worker runs with.
    account: AccountKey,
    /// Set when the worker is retired to make room for another kind.
    replace_with: Option<WorkerKind>,
    /// Where the worker stands, as it last reported (or as the pool just
    /// asked of it: see [`WorkerState`]).
    state: WorkerState,
    /// Since when it has been in `state`: how long a worker has been free,
    /// bound or parked, for choosing the least recently used.
    since: Instant,
    pid: u32,
    jobs: u64,
    /// An agent worker's tenant: the scope of the first job it ran. What
    /// that job's tools left (workspace, config directory with the shell
    /// snapshot every Bash command sources, `/tmp`, home) stays with the
    /// worker, so it never runs a job of another scope (see `pick`): such a
    /// job gets a fresh worker, the pinned one being replaced when idle.
    tenant: Option<String>,
    /// When it finished booting.
    booted_at: Option<Instant>,
}

/// The pool: admits jobs, queues them, gives each to a worker, and keeps
/// `pool.size` workers alive from the reports they send.
pub struct Dispatcher {
    settings: Arc<Settings>,
    spawn: SpawnSpec,
    /// The recipe for agent workers, when agent mode is on.
    agent_spawn: Option<AgentRecipe>,
    workers: BTreeMap<WorkerId, Slot>,
    /// Jobs waiting for a worker, oldest first; never longer than
    /// `max_queue` plus the workers free or on their way (see `room`).
    queue: VecDeque<Job>,
    next_worker: WorkerId,
    /// The accounts workers run under (see `accounts`).
    accounts: Vec<Account>,
    next_account: AccountKey,
    /// New jobs handed out so far: orders accounts by last use.
    assignments: u64,
    /// Respawns waiting out a backoff delay, by account.
    pending_spawns: Vec<AccountKey>,
    /// Failed spawns or crashes since the last worker became ready; sets the
    /// respawn backoff.
    consecutive_failures: u32,
    /// When recent failures happened, for crash-loop detection.
    failures: VecDeque<Instant>,
    last_failure: Option<String>,
    draining: bool,
    /// Parked turns given up for other work, oldest first, whose
    /// continuation gets an error once (see `parking`).
    released_parks: VecDeque<parking::ReleasedPark>,
    stats: JobStats,
    restarts: u64,
    /// Of the restarts, those replacing a worker retired on purpose.
    recycles: u64,
    /// Workers stopping for good: not replaced when their process exits.
    leaving: BTreeMap<WorkerId, Leaving>,
    started_at: Instant,
    /// Unique to this daemon run; part of every worker's process tag.
    instance: String,
    /// Set when a job with a new system prompt took a blank worker: a blank
    /// spare of that kind is to be made (see `blank`).
    spare_due: Option<WorkerKind>,
    /// Poked when a worker may be free for a background job (see `spare`).
    spare_signal: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// This actor, for the workers it spawns to report to (weak: the
    /// dispatcher must not keep itself alive).
    me: Option<WeakAddr<Self>>,
}

impl Dispatcher {
    /// A pool for `settings` whose plain workers are spawned from `spawn`;
    /// its workers start when the actor does.
    pub fn new(settings: Arc<Settings>, spawn: SpawnSpec) -> Self {
        Self {
            settings,
            spawn,
            agent_spawn: None,
            workers: BTreeMap::new(),
            queue: VecDeque::new(),
            next_worker: 1,
            accounts: Vec::new(),
            next_account: 0,
            assignments: 0,
            pending_spawns: Vec::new(),
            consecutive_failures: 0,
            failures: VecDeque::new(),
            last_failure: None,
            draining: false,
            released_parks: VecDeque::new(),
            stats: JobStats::default(),
            restarts: 0,
            recycles: 0,
            leaving: BTreeMap::new(),
            started_at: Instant::now(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            spare_signal: None,
            spare_due: None,
            me: None,
        }
    }

    /// Enables agent workers, spawned from `recipe` (each in a workspace of
    /// its own below the recipe's root).
    pub fn with_agent(mut self, recipe: Option<AgentRecipe>) -> Self {
        self.agent_spawn = recipe;
        self
    }

    /// The kind of worker the pool is made of when nothing else is asked for.
    fn default_kind(&self) -> WorkerKind {
        match self.agent_spawn {
            Some(_) => WorkerKind::Agent,
            None => WorkerKind::Plain,
        }
    }

    fn spawn_worker(&mut self, kind: WorkerKind, account: AccountKey) {
        let id = self.next_worker;
        let (Some(owner), Some(me)) = (
            self.account(account),
            self.me.as_ref().and_then(WeakAddr::upgrade),
        ) else {
            return;
        };
        let log_name = owner.worker_name(id);
        let base = match (&self.agent_spawn, kind) {
            (Some(agent), WorkerKind::Agent) => {
                agent
                    .for_worker(&format!("worker-{id}"))
                    .unwrap_or_else(|e| {
                        // Never the unconfined recipe: a command that cannot run,
                        // so the worker fails to boot (logged, retried with backoff).
                        SpawnSpec {
                            command: format!("(cannot create worker-{id}'s directories: {e})"),
                            ..SpawnSpec::default()
                        }
                    })
            }
            _ => self.spawn.clone(),
        };
        let mut spec = owner.spawn_spec(&base);
        self.next_worker += 1;
        spec.log_name = log_name;
        spec.tag = format!("{}-{id}", self.instance);
        let addr = Worker::new(id, kind, self.settings.clone(), me.recipient(), spec).start();
        self.workers.insert(
            id,
            Slot {
                addr,
                kind,
                account,
                replace_with: None,
                state: WorkerState::Starting,
                since: Instant::now(),
                pid: 0,
                jobs: 0,
                tenant: None,
                booted_at: None,
            },
        );
    }

    fn backoff(&self) -> Duration {
        let pool = &self.settings.pool;
        backoff_delay(
            pool.restart_backoff_ms,
            pool.restart_backoff_max_ms,
            self.consecutive_failures,
        )
    }

    /// The time now, as the pool's decisions see it.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// How many workers are in a state `matches` accepts.
    fn count(&self, matches: impl Fn(&WorkerState) -> bool) -> usize {
        self.workers.values().filter(|s| matches(&s.state)).count()
    }

    /// Crash loop: many recent failures and no worker able to serve.
    fn is_degraded(&self) -> bool {
        let pool = &self.settings.pool;
        let window = pool.crash_loop_window();
        let recent = self
            .failures
            .iter()
            .filter(|at| at.elapsed() <= window)
            .count();
        recent >= pool.crash_loop_failures as usize
            && self.consecutive_failures > 0
            && self
                .workers
                .values()
                .all(|s| matches!(s.state, WorkerState::Starting | WorkerState::Stopping))
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Jobs can be many in a burst; let admission messages queue up.
        ctx.set_mailbox_capacity(4096);
        self.me = Some(ctx.address().downgrade());
        self.apply_account_plans();
        self.staff_accounts();
        ctx.run_interval(QUEUE_TICK, |act, _ctx| {
            act.expire_queued();
            if !act.queue.is_empty() {
                // An account whose limit just ended may take waiting jobs.
                act.dispatch();
            }
            let bound_since = act
                .workers
                .iter()
                .filter(|(_, s)| matches!(s.state, WorkerState::Bound { .. }))
                .map(|(id, s)| (*id, s.since));
            let idle = act.settings.pool.affinity_idle();
            let expired = expiry::expired_bindings(bound_since, idle, Instant::now());
            for id in expired {
                log::debug!("worker-{id}: bound conversation expired");
                act.unbind(id);
            }
        });
    }
}

impl Handler<Submit> for Dispatcher {
    type Result = Result<(), JobError>;

    fn handle(&mut self, Submit(job): Submit, _ctx: &mut Context<Self>) -> Self::Result {
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
        let ours = job.events.clone();
        self.queue.push_back(job);
        self.dispatch();
        // Jobs waiting for a worker that is only being cleared or replaced
        // are not over the limit: that worker is capacity. Dispatching only
        // removes jobs, so ours is last unless a worker took it.
        let still_queued = self
            .queue
            .back()
            .is_some_and(|last| last.events.same_channel(&ours));
        if still_queued && self.queue.len() > self.settings.pool.max_queue + self.room() {
            self.queue.pop_back();
            self.stats.rejected += 1;
            return Err(JobError::QueueFull {
                queued: self.queue.len(),
                retry_after: RETRY_AFTER,
            });
        }
        Ok(())
    }
}

impl Handler<ClientLeft> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: ClientLeft, _ctx: &mut Context<Self>) {
        self.drop_departed();
    }
}

impl Handler<GetHealth> for Dispatcher {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.health())
    }
}

impl Handler<Drain> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: Drain, _ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        log::info!("draining: {} queued jobs refused", self.queue.len());
        for job in self.queue.drain(..) {
            job.fail(JobError::ShuttingDown);
            self.stats.rejected += 1;
        }
    }
}

impl Handler<StopAll> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: StopAll, _ctx: &mut Context<Self>) {
        self.draining = true;
        for slot in self.workers.values_mut() {
            slot.state = WorkerState::Stopping;
            slot.addr.do_send(StopWorker { grace: STOP_GRACE });
        }
    }
}

/// The delay before respawning after the `failures`-th consecutive failure:
/// `base`, doubling per failure, capped at `max` (milliseconds).
fn backoff_delay(base: u64, max: u64, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_millis(base.saturating_mul(1 << exponent).min(max))
}

#[cfg(test)]
mod tests {
    use super::backoff_delay;
    use std::time::Duration;

    #[test]
    fn respawn_backoff_doubles_and_is_capped() {
        let ms = |n| backoff_delay(500, 30_000, n).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(4)], [500, 1000, 2000, 4000]);
        assert_eq!(ms(7), 30_000);
        assert_eq!(ms(u32::MAX), 30_000, "no overflow however long the streak");
        assert_eq!(backoff_delay(0, 100, 5), Duration::ZERO);
    }
}
