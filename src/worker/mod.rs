//! A worker actor: owns one long-lived `claude` process and runs one job at a
//! time in it.
//!
//! The actor only connects things: it spawns the process, turns what
//! happens (a stdout line, a job, a stop, the exit, a timer tick) into an
//! [`Input`] for the worker's [`Session`] — the conversation's state
//! machine, a plain value with unit tests — and carries out the
//! [`Effect`]s it returns: writing lines to the CLI, sending a job's events
//! to its client, reporting to the pool, stopping the process.
//!
//! Files: `session` is the state machine (its module docs draw the phases);
//! `protocol` the CLI's line protocol, typed both ways; `process` and
//! `lines` the child process and its output; `translate`, `thinking`,
//! `stop` and `agent_view` turn a turn's output into the client's events;
//! `mcp` and `permission` answer the CLI's tool traffic; `account_signal`
//! reads rate-limit signals off the CLI's lines; `spawn` and
//! `sandbox` say how a worker's CLI is started; `report` and `messages`
//! are what the worker and its pool tell each other.

pub mod account_signal;
pub mod agent_view;
pub mod lines;
pub mod mcp_server;
pub mod messages;
pub mod permission;
pub mod process;
pub mod protocol;
pub mod report;
pub mod sandbox;
pub mod session;
pub mod spawn;
pub mod stop;
pub mod thinking;
pub mod translate;

use actix::prelude::*;

use crate::config::SharedSettings;
use messages::{ReleasePark, RunJob, StopWorker, Unbind};
use process::{CliOutput, CliProcess, SpawnSpec};
use protocol::CliLine;
use report::WorkerReport;
use session::{Effect, Input, Session, TICK};

/// Identifies a worker within the pool.
pub type WorkerId = u64;

/// What a worker's CLI was started with; a job runs only on its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// No built-in tools: plain chat and caller-defined tools.
    Plain,
    /// Claude Code's own tools, in a workspace of its own (agent mode).
    Agent,
}

impl WorkerKind {
    /// The kind of worker a job runs on: agent jobs on agent workers.
    pub fn for_job(agent: bool) -> Self {
        if agent {
            WorkerKind::Agent
        } else {
            WorkerKind::Plain
        }
    }
}

/// One worker: a `claude` process and the [`Session`] of its conversation,
/// reported to the pool through `pool`.
pub struct Worker {
    session: Session,
    /// How the process is started.
    spec: SpawnSpec,
    /// The running process; `None` before the spawn and after the exit.
    process: Option<CliProcess>,
    /// Where reports go; the worker does not know the pool's type.
    pool: Recipient<WorkerReport>,
    /// The daemon's settings, shared: a reload's limits and timeouts reach
    /// the session at its next input. The process keeps the command line
    /// and environment it was started with.
    settings: SharedSettings,
    /// The version of the settings the session reads.
    version: u64,
}

impl Worker {
    /// Worker `id` of `kind`, not yet started: the actor spawns its
    /// process from `spec` when started, and sends every report to `pool`.
    pub fn new(
        id: WorkerId,
        kind: WorkerKind,
        settings: SharedSettings,
        pool: Recipient<WorkerReport>,
        spec: SpawnSpec,
    ) -> Self {
        let name = if spec.log_name.is_empty() {
            format!("worker-{id}")
        } else {
            spec.log_name.clone()
        };
        let workspace = spec.workspace.clone();
        let current = settings.current();
        Self {
            session: Session::new(id, kind, name, current.settings.clone(), workspace, now()),
            spec,
            process: None,
            pool,
            settings,
            version: current.version,
        }
    }

    /// Hands `input` to the session, reading the settings in force, and
    /// carries out what it says, in order.
    fn input(&mut self, input: Input, ctx: &mut Context<Self>) {
        if self.settings.version() != self.version {
            let current = self.settings.current();
            self.version = current.version;
            self.session.reconfigure(current.settings.clone());
        }
        for effect in self.session.handle(now(), input) {
            match effect {
                Effect::Write(line) => {
                    if let Some(process) = &self.process {
                        process.send(line.to_line());
                    }
                }
                Effect::Emit(client, event) => {
                    // A client that has gone away is noticed by the timers.
                    let _ = client.send(event);
                }
                Effect::Report(report) => self.pool.do_send(report),
                Effect::Terminate(grace) => {
                    if let Some(process) = &mut self.process {
                        process.terminate(grace);
                    }
                }
                Effect::KillLeftovers { job } => {
                    // Tools may have left processes behind (Bash children
                    // run in sessions of their own); none outlives its job.
                    let killed = self.process.as_ref().map_or(0, CliProcess::kill_leftovers);
                    if killed > 0 {
                        log::info!("[{job}] killed {killed} process(es) left by the job's tools");
                    }
                }
                Effect::Stop => {
                    self.process = None;
                    ctx.stop();
                }
            }
        }
    }
}

/// The time inputs happen at: tokio's clock, so that a test can pause it.
fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match process::spawn(&self.spec) {
            Ok((process, CliOutput { lines, exit })) => {
                let ids = process.ids();
                self.process = Some(process);
                ctx.add_stream(lines);
                ctx.spawn(
                    actix::fut::wrap_future(exit).map(|status, act: &mut Worker, ctx| {
                        let status = status.unwrap_or_else(|_| "unknown".into());
                        act.input(Input::Exited(status), ctx)
                    }),
                );
                self.input(Input::Spawned(ids), ctx);
                ctx.run_interval(TICK, |act, ctx| act.input(Input::Tick, ctx));
            }
            Err(e) => {
                let why = format!("cannot run `{}`: {e}", self.spec.command);
                self.input(Input::SpawnFailed(why), ctx);
            }
        }
    }
}

impl StreamHandler<CliLine> for Worker {
    fn handle(&mut self, line: CliLine, ctx: &mut Context<Self>) {
        self.input(Input::Line(line), ctx);
    }

    /// Stdout closing is not the end: the exit status, reported separately,
    /// is what stops the actor.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<RunJob> for Worker {
    type Result = ();

    fn handle(&mut self, RunJob(job): RunJob, ctx: &mut Context<Self>) {
        self.input(Input::Job(job), ctx);
    }
}

impl Handler<Unbind> for Worker {
    type Result = ();

    fn handle(&mut self, _: Unbind, ctx: &mut Context<Self>) {
        self.input(Input::Unbind, ctx);
    }
}

impl Handler<ReleasePark> for Worker {
    type Result = ();

    fn handle(&mut self, _: ReleasePark, ctx: &mut Context<Self>) {
        self.input(Input::ReleasePark, ctx);
    }
}

impl Handler<StopWorker> for Worker {
    type Result = ();

    fn handle(&mut self, msg: StopWorker, ctx: &mut Context<Self>) {
        self.input(Input::Stop { grace: msg.grace }, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use report::{ExitReason, WorkerState};
    use tokio::sync::mpsc;

    /// A pool that passes its workers' reports on.
    struct Pool(mpsc::UnboundedSender<WorkerReport>);

    impl Actor for Pool {
        type Context = Context<Self>;
    }

    impl Handler<WorkerReport> for Pool {
        type Result = ();

        fn handle(&mut self, report: WorkerReport, _ctx: &mut Context<Self>) {
            let _ = self.0.send(report);
        }
    }

    /// The actor's timers run on the runtime's clock: with it paused, the
    /// 30 s boot timeout of a CLI that never answers its probe passes at
    /// once, through the real actor, ticks and process.
    #[actix_rt::test]
    // The real clock, to show the paused one is what the timeout ran on.
    #[allow(clippy::disallowed_types)]
    async fn a_cli_that_never_boots_is_given_up_on_the_runtimes_clock() {
        tokio::time::pause();
        let (tx, mut reports) = mpsc::unbounded_channel();
        let pool = Pool(tx).start().recipient();
        let settings = SharedSettings::new(Settings::default());
        let boot = settings.get().pool.boot_timeout();
        let spec = SpawnSpec {
            command: "sleep".into(),
            args: vec!["600".into()],
            cwd: std::env::temp_dir(),
            ..SpawnSpec::default()
        };
        let started = tokio::time::Instant::now();
        let real = std::time::Instant::now();
        Worker::new(1, WorkerKind::Plain, settings, pool, spec).start();
        let mut states = Vec::new();
        let reason = loop {
            let report = reports.recv().await.expect("a report");
            match report.state {
                WorkerState::Exited(reason) => break reason,
                state => states.push(state),
            }
        };
        assert_eq!(states, [WorkerState::Stopping]);
        let ExitReason::BootFailed(why) = reason else {
            panic!("{reason:?}")
        };
        assert!(why.contains("not ready after 30s"), "{why}");
        assert!(started.elapsed() > boot, "{:?}", started.elapsed());
        assert!(real.elapsed() < boot / 2, "{:?}", real.elapsed());
    }
}
