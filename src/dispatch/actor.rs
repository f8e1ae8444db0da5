//! The dispatcher actor: it feeds the [`Pool`] its messages with the time
//! they arrived, and carries out the effects the pool returns — spawning
//! worker actors, sending them commands, failing jobs, waking the pool.
//! It decides nothing itself. It holds the jobs (their channels) the pool
//! has orders for, and resolves the pool's effects by ticket.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use actix::WeakAddr;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::batch::RunIfIdle;
use super::messages::*;
use super::order::HeldJobs;
use super::pool::{Command, Effect, Pool};
use crate::config::{AccountPlan, SharedSettings};
use crate::error::JobError;
use crate::job::Job;
use crate::worker::messages::{ReleasePark, RunJob};
use crate::worker::messages::{StopWorker, Unbind};
use crate::worker::process::SpawnSpec;
use crate::worker::report::WorkerReport;
use crate::worker::spawn::AgentRecipe;
use crate::worker::{Worker, WorkerId, WorkerKind};

/// How often the pool is told that time passed: queued jobs time out,
/// clients that left are noticed, bound conversations expire.
const TICK: Duration = Duration::from_millis(250);
/// How often the host's load is read for the `"auto"` blank-spare target
/// (its 1-minute average moves slowly).
const HOST_LOAD_EVERY: Duration = Duration::from_secs(2);
/// Grace a worker gets to exit on stdin EOF when stopped.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The actor around the [`Pool`].
pub struct Dispatcher {
    pool: Pool,
    /// The jobs the pool holds orders for, by ticket.
    held: HeldJobs,
    /// The settings in force, shared with the workers and the rest of the
    /// daemon.
    settings: SharedSettings,
    /// The version of the settings the pool was given.
    version: u64,
    spawn: SpawnSpec,
    /// The recipe for agent workers, when agent mode is on.
    agent_spawn: Option<AgentRecipe>,
    /// Unique to this daemon run; part of every worker's process tag.
    instance: String,
    workers: BTreeMap<WorkerId, Addr<Worker>>,
    /// Poked when a worker may be free for a background job (see `batch`).
    idle_signal: Option<Arc<Notify>>,
    /// This actor, for the workers it spawns to report to (weak: the
    /// dispatcher must not keep itself alive).
    me: Option<WeakAddr<Self>>,
}

impl Dispatcher {
    /// A pool for `settings` whose plain workers are spawned from `spawn`;
    /// its workers start when the actor does.
    pub fn new(settings: SharedSettings, spawn: SpawnSpec) -> Self {
        let current = settings.current();
        let pool = Pool::new(
            current.settings.clone(),
            WorkerKind::Plain,
            Instant::now(),
            SystemTime::now(),
        );
        Self {
            pool,
            held: HeldJobs::default(),
            settings,
            version: current.version,
            spawn,
            agent_spawn: None,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            workers: BTreeMap::new(),
            idle_signal: None,
            me: None,
        }
    }

    /// Enables agent workers, spawned from `recipe` (each in a workspace of
    /// its own below the recipe's root): the pool is made of them.
    pub fn with_agent(mut self, recipe: Option<AgentRecipe>) -> Self {
        if recipe.is_some() {
            self.pool.default_kind = WorkerKind::Agent;
        }
        self.agent_spawn = recipe;
        self
    }

    /// Pokes `signal` whenever a worker may be free for a background job.
    pub fn with_spare_signal(mut self, signal: Arc<Notify>) -> Self {
        self.idle_signal = Some(signal);
        self
    }

    /// Carries out the pool's effects, in order.
    fn apply(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        for effect in effects {
            match effect {
                Effect::Spawn { id, kind, plan } => self.spawn_worker(id, kind, &plan),
                Effect::Tell(id, command) => self.tell(id, command),
                Effect::Fail(ticket, error) => {
                    if let Some(job) = self.held.take(ticket) {
                        job.fail(error);
                    }
                }
                Effect::WakeIn(delay) => {
                    ctx.run_later(delay, |act, ctx| act.tick(ctx));
                }
                Effect::IdleCapacity => {
                    if let Some(signal) = &self.idle_signal {
                        signal.notify_one();
                    }
                }
                Effect::CreateDir(dir) => {
                    // Made private when missing: it will hold the account's
                    // login. One that exists is the operator's, left as is.
                    if dir.exists() {
                        continue;
                    }
                    if let Err(e) = crate::private_fs::ensure_dir(&dir) {
                        log::error!("cannot create {}: {e}", dir.display());
                    }
                }
            }
        }
    }

    /// Time passed: the pool is told, after the clients that left.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.notice_departures(now, ctx);
        let effects = self.pool.tick(now);
        self.apply(effects, ctx);
    }

    /// Tells the pool which queued jobs' clients stopped listening (their
    /// channels closed), before any input that might hand those jobs a
    /// worker: the pool never reads a job's channel itself.
    fn notice_departures(&mut self, now: Instant, ctx: &mut Context<Self>) {
        let gone = self.held.take_departed();
        if !gone.is_empty() {
            let effects = self.pool.clients_left(now, &gone);
            self.apply(effects, ctx);
        }
    }

    fn tell(&mut self, id: WorkerId, command: Command) {
        let Some(addr) = self.workers.get(&id) else {
            if let Command::Run(ticket, _) = command {
                if let Some(job) = self.held.take(ticket) {
                    job.fail(JobError::WorkerCrashed("the worker is gone".into()));
                }
            }
            return;
        };
        match command {
            Command::Run(ticket, placement) => {
                let Some(job) = self.held.take(ticket) else {
                    return;
                };
                // For the job's usage row: where it ran, after what wait.
                job.placed.set(placement);
                addr.do_send(RunJob(job));
            }
            Command::Unbind => addr.do_send(Unbind),
            Command::ReleasePark => addr.do_send(ReleasePark),
            Command::Stop => addr.do_send(StopWorker { grace: STOP_GRACE }),
        }
    }

    fn spawn_worker(&mut self, id: WorkerId, kind: WorkerKind, plan: &AccountPlan) {
        let Some(me) = self.me.as_ref().and_then(WeakAddr::upgrade) else {
            return;
        };
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
        let mut spec = base;
        spec.env.extend(plan.env.iter().cloned());
        spec.env_remove.extend(plan.env_remove.iter().cloned());
        spec.log_name = if plan.implicit {
            format!("worker-{id}")
        } else {
            format!("worker-{id}@{}", plan.name)
        };
        spec.tag = format!("{}-{id}", self.instance);
        let addr = Worker::new(id, kind, self.settings.clone(), me.recipient(), spec).start();
        self.workers.insert(id, addr);
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Jobs can be many in a burst; let admission messages queue up.
        ctx.set_mailbox_capacity(4096);
        self.me = Some(ctx.address().downgrade());
        let effects = self.pool.start(Instant::now());
        self.apply(effects, ctx);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
        ctx.run_interval(HOST_LOAD_EVERY, |act, ctx| {
            if let Some(cpu) = super::host_load::read() {
                let effects = act.pool.host_cpu(Instant::now(), cpu);
                act.apply(effects, ctx);
            }
        });
    }
}

impl Handler<Submit> for Dispatcher {
    type Result = Result<(), JobError>;

    fn handle(&mut self, Submit(job): Submit, ctx: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        self.notice_departures(now, ctx);
        let order = self.held.hold(job);
        let ticket = order.ticket;
        let (admitted, effects) = self.pool.submit(now, order);
        if admitted.is_err() {
            // Refused: the caller answers the client with the error.
            self.held.take(ticket);
        }
        self.apply(effects, ctx);
        admitted
    }
}

impl Handler<RunIfIdle> for Dispatcher {
    type Result = Result<(), Job>;

    fn handle(&mut self, RunIfIdle(job): RunIfIdle, ctx: &mut Context<Self>) -> Self::Result {
        let order = self.held.hold(job);
        let (taken, effects) = self.pool.run_if_idle(Instant::now(), order);
        // Not taken: handed back to whoever feeds the batch.
        let taken = taken.map_err(|ticket| self.held.take(ticket).expect("held"));
        self.apply(effects, ctx);
        taken
    }
}

impl Handler<WorkerReport> for Dispatcher {
    type Result = ();

    fn handle(&mut self, mut report: WorkerReport, ctx: &mut Context<Self>) {
        let id = report.id;
        let exited = matches!(report.state, crate::worker::report::WorkerState::Exited(_));
        let now = Instant::now();
        self.notice_departures(now, ctx);
        let failover = report.failover.take().map(|job| self.held.hold(job));
        let effects = self.pool.report(now, report, failover);
        if exited {
            self.workers.remove(&id);
        }
        self.apply(effects, ctx);
    }
}

impl Handler<ClientLeft> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: ClientLeft, ctx: &mut Context<Self>) {
        self.notice_departures(Instant::now(), ctx);
    }
}

impl Handler<GetHealth> for Dispatcher {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _ctx: &mut Context<Self>) -> Self::Result {
        // Read when asked: /proc is cheap, and a cached figure goes stale.
        let rss = |pid| crate::worker::process::rss_bytes(pid);
        MessageResult(self.pool.health(Instant::now(), rss))
    }
}

impl Handler<Drain> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        let effects = self.pool.drain(Instant::now());
        self.apply(effects, ctx);
    }
}

impl Handler<StopAll> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: StopAll, ctx: &mut Context<Self>) {
        let effects = self.pool.stop_all(Instant::now());
        self.apply(effects, ctx);
    }
}

impl Handler<Reconfigure> for Dispatcher {
    type Result = ();

    fn handle(&mut self, _: Reconfigure, ctx: &mut Context<Self>) {
        let current = self.settings.current();
        if current.version == self.version {
            return;
        }
        self.version = current.version;
        let effects = self
            .pool
            .reconfigure(Instant::now(), current.settings.clone());
        self.apply(effects, ctx);
    }
}
