//! A worker actor: owns one long-lived `claude` process and runs one job at a
//! time in it.
//!
//! Life of a worker:
//! ```text
//!          spawn
//!            |
//!         Booting --probe answered--> Idle <-----------------------------+
//!                                      | RunJob                          |
//!                                      v                                 |
//!            Bound --RunJob (same  Preparing  (initialize, set_model,    |
//!              ^     conversation)    |        thinking, tool server)    |
//!              |          |           v                                  |
//!              |          +------> Running --tools/call--> Parked        |
//!              |                      |    <--RunJob (results)--+        |
//!              |   result, normal     |                                  |
//!              +----------------------+ result, failed or interrupted    |
//!                                     +--> Clearing (/clear, boundary) --+
//!                      or retired at any point (job count, RSS, crash)
//! ```
//! Readiness is probed with an `apply_flag_settings` that restores the
//! CLI's default output limit (a no-op whose first call in a process costs
//! 25–60 ms, paid here during boot rather than in a first job's setup),
//! never `initialize`, so a ready worker is blank and takes the first job's
//! system prompt through a late `initialize`. After a job the conversation is either cleared with
//! `/clear` (checked: the session id must change) and a compaction boundary
//! (so the model reads nothing of `/clear` either), or kept *bound* for
//! exactly that conversation's next turn (see `affinity`), so no job ever
//! runs in a conversation holding another conversation's messages.
//!
//! Files: `turn` runs a job, `calls` answers what the CLI asks mid-turn
//! (MCP traffic, parking on tool calls), `permission` its tool permission
//! checks, `timers` holds the periodic checks; the CLI process, its line
//! protocol and the event translation live in `process`, `protocol` and
//! `translate`; `spawn` and `sandbox` say how a worker's CLI is started.

pub mod agent_view;
pub mod lines;
pub mod mcp;
pub mod messages;
pub mod permission;
pub mod process;
pub mod protocol;
pub mod report;
pub mod sandbox;
pub mod spawn;
pub mod stop;
pub mod thinking;
pub mod translate;

mod calls;
mod limits;
mod timers;
mod turn;

use calls::Parked;
use timers::TICK;
use turn::Setup;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::api::assemble::Assembler;
use crate::config::Settings;
use crate::error::JobError;
use crate::job::{Job, JobEvent, ToolResult, ToolSet, Usage};
use agent_view::AgentView;
use mcp::{McpRequest, ToolCall};
use messages::{RunJob, StopWorker, Unbind};
use process::{CliOutput, CliProcess, SpawnSpec};
use protocol::{CliLine, CliMessage, CliRequest, ControlResponse, Outgoing, Reply, Request};
use report::{ExitReason, Outcome, WorkerReport, WorkerState};
use stop::{StopWatch, Watched};
use translate::TurnTranslator;

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
    pub fn for_job(agent: bool) -> Self {
        if agent {
            WorkerKind::Agent
        } else {
            WorkerKind::Plain
        }
    }
}

/// Grace for a retired worker to exit on stdin EOF.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// The job a worker is running.
struct Run {
    job: Job,
    translator: TurnTranslator,
    started: Instant,
    last_output: Instant,
    /// When an interrupt was sent, if it was.
    interrupted_at: Option<Instant>,
    /// The client already has its terminal event (e.g. a timeout error).
    answered: bool,
    /// The answer ended at a stop sequence: the job succeeded, though the
    /// rest of the turn is interrupted.
    stopped_at_sequence: bool,
    /// The job continues a conversation this worker holds: only the final
    /// message is written.
    continuing: bool,
    /// Collects the reply, whose content keys the conversation afterwards;
    /// only for a job whose worker may stay bound to it.
    reply: Option<Assembler>,
    /// The reply's content once the turn finished normally.
    reply_content: Option<Vec<serde_json::Value>>,
    /// For agent jobs: the one-text-block view the client gets.
    agent_view: Option<AgentView>,
    /// Watches the text for the job's stop sequences, if it has any.
    stop_watch: Option<StopWatch>,
    /// Drops thinking the job did not ask for.
    hide_thinking: Option<thinking::HideThinking>,
}

enum Phase {
    Booting {
        probe: String,
    },
    Idle,
    Preparing {
        run: Run,
        awaiting: String,
        rest: VecDeque<Setup>,
    },
    Running(Run),
    /// The model called the caller's tools: the client has the tool_use
    /// blocks, and the CLI's turn is blocked until the caller's next request
    /// brings the results.
    Parked(Parked),
    /// A parked turn is being interrupted; then the conversation is cleared.
    Abandoning {
        since: Instant,
    },
    /// `/clear` sent; `session` is the conversation's id before it.
    Clearing {
        since: Instant,
        session: Option<String>,
    },
    /// Idle, holding the conversation of the last job (affinity), keyed so.
    Bound(u64),
    /// The process is being stopped; the reason is reported on exit.
    Stopping(ExitReason),
}

/// One worker: a `claude` process, the job it runs, and the state of the
/// CLI conversation, reported to the pool through `pool`.
pub struct Worker {
    id: WorkerId,
    kind: WorkerKind,
    settings: Arc<Settings>,
    pool: Recipient<WorkerReport>,
    spec: SpawnSpec,
    process: Option<CliProcess>,
    phase: Phase,
    /// The system prompt fixed by `initialize`; `None` while blank.
    system_prompt: Option<String>,
    /// The CLI conversation's session id, from the last `result`.
    session_id: Option<String>,
    /// The model the CLI currently uses.
    model: String,
    /// The thinking budget last set; `None` while the CLI's default applies.
    thinking_budget: Option<u32>,
    /// The output token limit last set; `None` while the CLI's default applies.
    max_tokens: Option<u32>,
    /// The tool server registered with the CLI, if any.
    tools: Option<ToolSet>,
    /// Results of the caller's latest request, for the calls the CLI makes
    /// one at a time after a resume (parallel tool calls).
    tool_results: HashMap<String, ToolResult>,
    jobs_done: u64,
    spawned_at: Instant,
    next_request: u64,
}

impl Worker {
    pub fn new(
        id: WorkerId,
        kind: WorkerKind,
        settings: Arc<Settings>,
        pool: Recipient<WorkerReport>,
        spec: SpawnSpec,
    ) -> Self {
        let model = settings.claude.default_model.clone();
        Self {
            id,
            kind,
            settings,
            pool,
            spec,
            process: None,
            phase: Phase::Idle,
            system_prompt: None,
            session_id: None,
            model,
            thinking_budget: None,
            max_tokens: None,
            tools: None,
            tool_results: HashMap::new(),
            jobs_done: 0,
            spawned_at: Instant::now(),
            next_request: 0,
        }
    }

    /// `worker-N`, or `worker-N@account` with configured accounts.
    fn name(&self) -> String {
        if self.spec.log_name.is_empty() {
            format!("worker-{}", self.id)
        } else {
            self.spec.log_name.clone()
        }
    }

    fn request_id(&mut self, what: &str) -> String {
        self.next_request += 1;
        format!("cp-{what}-{}", self.next_request)
    }

    fn send(&self, line: Outgoing) {
        if let Some(process) = &self.process {
            process.send(line.to_line());
        }
    }

    /// Tells the pool where the worker stands now, and how a job ended if
    /// one just did. Sent before the job's final event (see `report`).
    fn report(&self, state: WorkerState, job: Option<Outcome>) {
        self.pool.do_send(WorkerReport {
            id: self.id,
            state,
            job,
            limit: None,
            failover: None,
        });
    }

    /// The state the current phase amounts to, as the pool sees it.
    fn state(&self) -> WorkerState {
        match &self.phase {
            Phase::Booting { .. } | Phase::Preparing { .. } | Phase::Running(_) => {
                WorkerState::Busy
            }
            Phase::Idle => WorkerState::Idle,
            Phase::Parked(parked) => WorkerState::Parked(parked.tool_use_ids.clone()),
            Phase::Abandoning { .. } | Phase::Clearing { .. } => WorkerState::Clearing,
            Phase::Bound(key) => WorkerState::Bound(*key),
            Phase::Stopping(_) => WorkerState::Stopping,
        }
    }

    /// Sends a control request; returns its id, which its reply carries.
    fn send_control(&mut self, what: &str, request: Request) -> String {
        let request_id = self.request_id(what);
        self.send(Outgoing::Request {
            request_id: request_id.clone(),
            request,
        });
        request_id
    }

    /// Stops the process; the actor stops once it has exited.
    fn retire(&mut self, reason: ExitReason, grace: Duration) {
        if let Some(run) = self.take_run() {
            if !run.answered {
                let error = match &reason {
                    ExitReason::Stopped => JobError::ShuttingDown,
                    ExitReason::Crashed(why) | ExitReason::BootFailed(why) => {
                        JobError::WorkerCrashed(why.clone())
                    }
                    ExitReason::Retired => JobError::WorkerCrashed("worker retired".into()),
                };
                run.job.fail(error);
            }
        }
        if !matches!(self.phase, Phase::Stopping(_)) {
            self.phase = Phase::Stopping(reason);
            self.report(WorkerState::Stopping, None);
        }
        if let Some(process) = &mut self.process {
            process.terminate(grace);
        }
    }

    fn take_run(&mut self) -> Option<Run> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Preparing { run, .. } | Phase::Running(run) => Some(run),
            other => {
                self.phase = other;
                None
            }
        }
    }

    fn on_control_response(&mut self, response: ControlResponse) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Booting { probe } if probe == response.request_id => {
                if response.is_success() {
                    log::info!(
                        "{} ready (pid {}, {:?} after spawn)",
                        self.name(),
                        self.pid(),
                        self.spawned_at.elapsed()
                    );
                    self.report(WorkerState::Ready { pid: self.pid() }, None);
                } else {
                    let why = format!("readiness probe failed: {:?}", response.error);
                    self.phase = Phase::Booting { probe };
                    self.retire(ExitReason::BootFailed(why), Duration::ZERO);
                }
            }
            Phase::Preparing {
                run,
                awaiting,
                rest,
            } if awaiting == response.request_id => {
                if response.is_success() {
                    self.continue_setup(run, rest);
                } else {
                    let why = response.error.unwrap_or_default();
                    log::warn!("[{}] {} setup failed: {why}", run.job.id, self.name());
                    self.jobs_done += 1;
                    // Setup state is unknown now: a fresh process is safer.
                    self.phase = Phase::Stopping(ExitReason::Retired);
                    self.report(WorkerState::Stopping, Some(Outcome::Failed));
                    run.job
                        .fail(JobError::TurnFailed(format!("worker setup failed: {why}")));
                    self.retire(ExitReason::Retired, RETIRE_GRACE);
                }
            }
            other => self.phase = other,
        }
    }

    fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .map(CliProcess::pid)
            .unwrap_or_default()
    }

    fn on_exit(&mut self, status: String, ctx: &mut Context<Self>) {
        if let Some(run) = self.take_run() {
            if !run.answered {
                run.job.fail(JobError::WorkerCrashed(format!(
                    "the CLI exited mid-job ({status})"
                )));
            }
        }
        let reason = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Stopping(reason) => reason,
            Phase::Booting { .. } => {
                ExitReason::BootFailed(format!("exited before ready ({status})"))
            }
            _ => ExitReason::Crashed(format!("exited ({status})")),
        };
        match &reason {
            ExitReason::Crashed(why) | ExitReason::BootFailed(why) => {
                log::warn!("{} (pid {}) {why}", self.name(), self.pid())
            }
            _ => log::info!("{} (pid {}) stopped: {status}", self.name(), self.pid()),
        }
        self.process = None;
        self.phase = Phase::Stopping(reason.clone());
        self.report(WorkerState::Exited(reason), None);
        ctx.stop();
    }
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match process::spawn(&self.spec) {
            Ok((process, CliOutput { lines, exit })) => {
                log::info!("{} spawned (pid {})", self.name(), process.pid());
                self.process = Some(process);
                ctx.add_stream(lines);
                ctx.spawn(
                    actix::fut::wrap_future(exit).map(|status, act: &mut Worker, ctx| {
                        act.on_exit(status.unwrap_or_else(|_| "unknown".into()), ctx)
                    }),
                );
                let probe = self.send_control("probe", Request::max_output_tokens(None));
                self.phase = Phase::Booting { probe };
                ctx.run_interval(TICK, |act, _| act.tick());
            }
            Err(e) => {
                let why = format!("cannot run `{}`: {e}", self.spec.command);
                log::error!("{} {why}", self.name());
                self.report(WorkerState::Exited(ExitReason::BootFailed(why)), None);
                ctx.stop();
            }
        }
    }
}

impl StreamHandler<CliLine> for Worker {
    fn handle(&mut self, line: CliLine, _ctx: &mut Context<Self>) {
        let message = match line {
            CliLine::Message(message) => message,
            CliLine::NotJson(line) => {
                return log::warn!("{} non-JSON stdout line skipped: {line}", self.name());
            }
            CliLine::Unreadable { error, line } => {
                return log::warn!(
                    "{} unreadable stdout line skipped ({error}): {line:.200}",
                    self.name()
                );
            }
            CliLine::TooLong { cap } => {
                return log::warn!(
                    "{} wrote a stdout line over {} MiB; the process is killed",
                    self.name(),
                    cap / (1024 * 1024)
                );
            }
        };
        if let CliMessage::Result(result) = &message {
            if result.session_id.is_some() {
                self.session_id = result.session_id.clone();
            }
        }
        if let Some(signal) = crate::accounts::signal::Signal::from_message(&message) {
            let turn_over = matches!(message, CliMessage::Result(_));
            if self.on_account_signal(signal, turn_over) {
                return;
            }
        }
        match message {
            CliMessage::ControlResponse { response } => self.on_control_response(response),
            CliMessage::ControlRequest {
                request_id,
                request,
            } => self.on_control_request(request_id, request),
            CliMessage::System(system) if system.subtype == "api_retry" => {
                log::info!(
                    "{} upstream retry {}/{} after status {:?} ({})",
                    self.name(),
                    system.attempt.unwrap_or_default(),
                    system.max_retries.unwrap_or_default(),
                    system.error_status,
                    system.error.unwrap_or_default()
                );
                if let Phase::Running(run) = &mut self.phase {
                    run.last_output = Instant::now();
                }
            }
            CliMessage::Result(_) if matches!(self.phase, Phase::Abandoning { .. }) => self.clear(),
            CliMessage::Result(_) if matches!(self.phase, Phase::Clearing { .. }) => {
                if let Phase::Clearing { session, .. } =
                    std::mem::replace(&mut self.phase, Phase::Idle)
                {
                    self.on_cleared(session);
                }
            }
            other => self.on_turn_message(other),
        }
    }

    /// Stdout closing is not the end: the exit status, reported separately,
    /// is what stops the actor.
    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<RunJob> for Worker {
    type Result = ();

    fn handle(&mut self, RunJob(job): RunJob, _ctx: &mut Context<Self>) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => self.start_job(job, false),
            Phase::Bound(_) if job.spec.conversation.is_some() => self.start_job(job, true),
            Phase::Parked(parked) if !job.spec.tool_results.is_empty() => {
                self.resume_job(job, parked)
            }
            other => {
                self.phase = other;
                log::warn!("[{}] {} is not idle; job refused", job.id, self.name());
                self.report(self.state(), Some(Outcome::Failed));
                job.fail(JobError::WorkerCrashed(
                    "the assigned worker is no longer available".into(),
                ));
            }
        }
    }
}

impl Handler<Unbind> for Worker {
    type Result = ();

    fn handle(&mut self, _: Unbind, _ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Bound(_)) {
            self.clear();
        }
    }
}

impl Handler<StopWorker> for Worker {
    type Result = ();

    fn handle(&mut self, msg: StopWorker, _ctx: &mut Context<Self>) {
        self.retire(ExitReason::Stopped, msg.grace);
    }
}

impl Handler<messages::Reconfigure> for Worker {
    type Result = ();

    fn handle(&mut self, msg: messages::Reconfigure, _ctx: &mut Context<Self>) {
        self.settings = msg.0;
    }
}
