//! The pool's decisions on made-up inputs and a made-up clock: no actor,
//! no process. `Harness` plays the workers: it boots them, finishes their
//! jobs and reports what a real worker would.

mod decisions;
mod invariants;
mod reconfigure;
mod spares;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::order::HeldJobs;
use super::pool::{Command, Effect, Pool};
use crate::accounts::signal::Signal;
use crate::config::Settings;
use crate::error::JobError;
use crate::job::{Job, JobEvent, JobSpec, Placement};
use crate::worker::report::{ExitReason, Holder, Outcome, WorkerReport, WorkerState};
use crate::worker::{WorkerId, WorkerKind};

/// A pool and the workers it asked for, on a clock the test moves.
struct Harness {
    pool: Pool,
    now: Instant,
    /// Workers spawned, by id, in order.
    spawned: Vec<WorkerId>,
    /// The account each spawned worker runs under.
    account_of: std::collections::BTreeMap<WorkerId, String>,
    /// The jobs the pool holds orders for, as the actor holds them.
    held: HeldJobs,
    /// Jobs each worker was told to run (the latest last).
    running: Vec<(WorkerId, Job)>,
    /// Where each job sent to a worker was placed, by job id.
    placements: Vec<(String, Placement)>,
    /// Jobs failed by an effect, with their error.
    failed: Vec<(String, JobError)>,
    /// Stops asked of workers.
    stopped: Vec<WorkerId>,
    /// Unbinds and park releases asked of workers.
    cleared: Vec<WorkerId>,
    /// Clients' receivers by job id, kept open so no job looks abandoned
    /// until its client leaves (see [`Harness::client_leaves`]).
    clients: Vec<(String, mpsc::UnboundedReceiver<JobEvent>)>,
    next_job: u64,
}

impl Harness {
    /// A pool from `toml` settings, every worker booted.
    fn new(toml: &str) -> Self {
        let settings = Arc::new(Settings::from_toml(toml).expect("settings"));
        let now = Instant::now();
        let pool = Pool::new(settings, WorkerKind::Plain, now, SystemTime::now());
        let mut h = Self {
            pool,
            now,
            held: HeldJobs::default(),
            spawned: Vec::new(),
            account_of: Default::default(),
            running: Vec::new(),
            placements: Vec::new(),
            failed: Vec::new(),
            stopped: Vec::new(),
            cleared: Vec::new(),
            clients: Vec::new(),
            next_job: 0,
        };
        let effects = h.pool.start(h.now);
        h.apply(effects);
        h.boot_all();
        h
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Spawn { id, plan, .. } => {
                    self.spawned.push(id);
                    self.account_of.insert(id, plan.name);
                }
                Effect::Tell(id, Command::Run(ticket, placement)) => {
                    let job = self.held.take(ticket).expect("a held job runs");
                    self.placements.push((job.id.clone(), placement));
                    self.running.push((id, job));
                }
                Effect::Tell(id, Command::Stop) => self.stopped.push(id),
                Effect::Tell(id, Command::Unbind | Command::ReleasePark) => self.cleared.push(id),
                Effect::Fail(ticket, error) => {
                    let job = self.held.take(ticket).expect("a held job fails");
                    self.failed.push((job.id.clone(), error));
                }
                Effect::WakeIn(_) | Effect::IdleCapacity | Effect::CreateDir(_) => {}
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The settings are reloaded from `toml`.
    fn reconfigure(&mut self, toml: &str) {
        let settings = Arc::new(Settings::from_toml(toml).expect("settings"));
        let effects = self.pool.reconfigure(self.now, settings);
        self.apply(effects);
    }

    fn tick(&mut self) {
        let effects = self.pool.tick(self.now);
        self.apply(effects);
    }

    fn report(&mut self, id: WorkerId, state: WorkerState, job: Option<Outcome>) {
        let report = WorkerReport {
            id,
            state,
            booted: None,
            job,
            limit: None,
            failover: None,
        };
        self.send(report);
    }

    /// Worker `report.id` reports; a job it hands back is held again, as
    /// the actor does.
    fn send(&mut self, mut report: WorkerReport) {
        let failover = report.failover.take().map(|job| self.held.hold(job));
        let effects = self.pool.report(self.now, report, failover);
        self.apply(effects);
    }

    /// Worker `id` met a rate limit before any output: it hands `job` back
    /// and reports ready with `prompt`, its account limited for
    /// `retry_after`.
    fn hand_back_limited(
        &mut self,
        id: WorkerId,
        prompt: Option<&str>,
        retry_after: Duration,
        job: Job,
    ) {
        self.send(WorkerReport {
            id,
            state: WorkerState::Ready {
                prompt: prompt.map(str::to_string),
            },
            booted: None,
            job: None,
            limit: Some(Signal::Limited {
                retry_after: Some(retry_after),
            }),
            failover: Some(job),
        });
    }

    /// Workers the pool spawned that have not reported yet report ready.
    fn boot_all(&mut self) {
        let starting: Vec<WorkerId> = self
            .pool
            .workers
            .iter()
            .filter(|(_, s)| s.state == WorkerState::Starting)
            .map(|(id, _)| *id)
            .collect();
        for id in starting {
            self.boot(id);
        }
    }

    fn boot(&mut self, id: WorkerId) {
        self.send(WorkerReport {
            id,
            state: WorkerState::Ready { prompt: None },
            booted: Some(1000 + id as u32),
            job: None,
            limit: None,
            failover: None,
        });
    }

    /// Workers the pool asked to stop have exited.
    fn exit_stopped(&mut self) {
        for id in std::mem::take(&mut self.stopped) {
            self.report(id, WorkerState::Exited(ExitReason::Stopped), None);
        }
    }

    /// A job with `system` from `scope`.
    fn job(&mut self, system: &str, scope: &str) -> Job {
        self.next_job += 1;
        let spec = spec(system, scope);
        let (mut job, rx) = Job::new(format!("job-{}", self.next_job), spec);
        // Admitted on the test's clock.
        job.admitted_at = self.now.into_std();
        self.clients.push((job.id.clone(), rx));
        job
    }

    /// The client of job `id` stops listening, and the pool is told of
    /// the queued jobs whose clients left, as the actor tells it.
    fn client_leaves(&mut self, id: &str) {
        self.clients.retain(|(job, _)| job != id);
        let gone = self.held.take_departed();
        let effects = self.pool.clients_left(self.now, &gone);
        self.apply(effects);
    }

    fn submit(&mut self, job: Job) -> Result<(), JobError> {
        let order = self.held.hold(job);
        let ticket = order.ticket;
        let (admitted, effects) = self.pool.submit(self.now, order);
        if admitted.is_err() {
            self.held.take(ticket);
        }
        self.apply(effects);
        admitted
    }

    /// A background job: whether a free worker took it.
    fn run_if_idle(&mut self, job: Job) -> bool {
        let order = self.held.hold(job);
        let ticket = order.ticket;
        let (taken, effects) = self.pool.run_if_idle(self.now, order);
        if taken.is_err() {
            self.held.take(ticket);
        }
        self.apply(effects);
        taken.is_ok()
    }

    /// Where job `id` was sent, if it was.
    fn worker_of(&self, job: &str) -> Option<WorkerId> {
        self.running
            .iter()
            .rev()
            .find(|(_, j)| j.id == job)
            .map(|(w, _)| *w)
    }

    /// Worker `id` finished its job and was cleared: ready with its prompt.
    fn finish(&mut self, id: WorkerId) {
        let prompt = self.pool.workers[&id].state.prompt().map(str::to_string);
        self.report(id, WorkerState::Ready { prompt }, Some(Outcome::Succeeded));
    }

    /// Worker `id` finished its job and holds its conversation as `key`.
    fn finish_bound(&mut self, id: WorkerId, key: u64) {
        let holder = self.pool.workers[&id].state.holder().cloned();
        let state = WorkerState::Bound {
            holder: holder.unwrap_or_default(),
            conversation: key,
        };
        self.report(id, state, Some(Outcome::Succeeded));
    }

    fn state(&self, id: WorkerId) -> &WorkerState {
        &self.pool.workers[&id].state
    }

    fn queued(&self) -> usize {
        self.pool.queue.len()
    }
}

/// The state a worker holding `system` for `scope` reports while busy.
fn busy(system: &str, scope: &str) -> WorkerState {
    WorkerState::Busy(Holder {
        prompt: system.into(),
        scope: scope.into(),
        background: false,
    })
}

/// The spec of a plain, streamed job with `system` from `scope`.
pub(super) fn spec(system: &str, scope: &str) -> JobSpec {
    JobSpec::plain(system, scope, "hi")
}
