//! The state of one worker's CLI conversation, as a plain value: the actor
//! ([`Worker`](super::Worker)) feeds it [`Input`]s — a line the CLI wrote,
//! a job, a stop, the process's exit, a timer tick — each with the time it
//! happened, and carries out the [`Effect`]s it returns: lines to write,
//! events for a job's client, reports to the pool, stopping the process.
//! The session never reads the clock or touches the process, so its timers
//! and turns are tested with made-up inputs (see `tests`). What it reads
//! besides its inputs: whether a job's client still listens (the job's
//! event channel is open), and the process's pid and memory through
//! [`ProcessInfo`].
//!
//! Phases of a worker:
//! ```text
//!          spawn
//!            |
//!         Booting --probe answered--> Idle <-----------------------------+
//!                                      | Job                             |
//!                                      v                                 |
//!            Bound --Job (same     Preparing  (initialize, set_model,    |
//!              ^     conversation)    |        thinking, tool server)    |
//!              |          |           v                                  |
//!              |          +------> Running --tools/call--> Parked        |
//!              |                      |    <--Job (results)--+           |
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
//! Files: `stdout` routes the CLI's lines by phase, `setup` prepares the
//! conversation for a job, `turn` forwards the
//! turn's output and settles the conversation after it, `calls` answers
//! what the CLI asks mid-turn (MCP traffic, permission checks, parking on
//! the caller's tool calls), `limits` acts on rate limits, `timers` holds
//! the periodic checks.

mod calls;
mod limits;
mod setup;
mod stdout;
mod timers;
mod turn;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::mpsc;

use super::agent_view::AgentView;
use super::permission::Workspace;
use super::process::ProcessIds;
use super::protocol::{CliLine, Outgoing, Request};
use super::report::{ExitReason, Holder, Outcome, WorkerReport, WorkerState};
use super::stop::StopWatch;
use super::thinking::HideThinking;
use super::translate::TurnTranslator;
use super::{WorkerId, WorkerKind};
use crate::config::Settings;
use crate::error::JobError;
use crate::job::assemble::Assembler;
use crate::job::{Job, JobEvent, ToolResult, ToolSet};
use calls::Parked;
use setup::Setup;

pub use timers::TICK;

/// Grace for a retired worker to exit on stdin EOF.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// Something that happened to the worker, for the session to act on.
// Inputs and effects are moved once, never stored: their size is no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// The CLI was started: its readiness is probed.
    Spawned(Rc<dyn ProcessInfo>),
    /// The CLI could not be started (why).
    SpawnFailed(String),
    /// A line of the CLI's stdout.
    Line(CliLine),
    /// A job from the pool: a new one, a bound conversation's next turn, or
    /// the tool results a parked turn waits for.
    Job(Job),
    /// The pool gives up the conversation the worker is bound to.
    Unbind,
    /// The pool gives up the turn parked on the caller's tool calls.
    ReleasePark,
    /// The pool stops the worker; the process gets `grace` to exit.
    Stop { grace: Duration },
    /// The process has exited (its status).
    Exited(String),
    /// Time passed: the timers are checked.
    Tick,
}

/// What the actor must do for the session, in order.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Effect {
    /// Write this line to the CLI's stdin.
    Write(Outgoing),
    /// Send this event to a job's client.
    Emit(mpsc::UnboundedSender<JobEvent>, JobEvent),
    /// Tell the pool.
    Report(WorkerReport),
    /// Stop the process: stdin EOF, then signals after the grace.
    Terminate(Duration),
    /// Kill the processes the job `job`'s tools left running.
    KillLeftovers { job: String },
    /// The process is gone: the actor stops.
    Stop,
}

/// What the session reads of its process: the real one's ids, or a fake.
pub trait ProcessInfo: std::fmt::Debug {
    fn pid(&self) -> u32;
    fn rss_bytes(&self) -> Option<u64>;
}

impl ProcessInfo for ProcessIds {
    fn pid(&self) -> u32 {
        ProcessIds::pid(self)
    }

    fn rss_bytes(&self) -> Option<u64> {
        ProcessIds::rss_bytes(self)
    }
}

/// The job a worker is running.
struct Run {
    job: Job,
    translator: TurnTranslator,
    started: Instant,
    last_output: Instant,
    /// When the prompt was written to the CLI (setup done).
    prompt_sent: Option<Instant>,
    /// When the CLI's first line of the turn came after that.
    first_output: Option<Instant>,
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
    /// Builds the whole answer from what the client gets: its `Finished`
    /// event carries it, and its content keys the conversation afterwards.
    answer: Assembler,
    /// For agent jobs: the one-text-block view the client gets.
    agent_view: Option<AgentView>,
    /// Watches the text for the job's stop sequences, if it has any.
    stop_watch: Option<StopWatch>,
    /// Drops thinking the job did not ask for.
    hide_thinking: Option<HideThinking>,
}

enum Phase {
    /// Started; the readiness probe `probe` is not answered yet.
    Booting {
        probe: String,
    },
    Idle,
    /// Setting the conversation up for the job: `awaiting` is the control
    /// request whose reply comes next, `rest` the steps after it.
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

/// One worker's CLI conversation and the job running in it.
pub struct Session {
    id: WorkerId,
    kind: WorkerKind,
    /// `worker-N` (or `worker-N@account`), for the log.
    name: String,
    settings: Arc<Settings>,
    /// An agent worker's workspace, for the file tools' path check.
    workspace: Option<Workspace>,
    /// The process, once spawned.
    process: Option<Rc<dyn ProcessInfo>>,
    phase: Phase,
    /// The system prompt fixed by `initialize`; `None` while blank.
    system_prompt: Option<String>,
    /// Whose job the worker last started: what it holds while busy, parked
    /// or bound.
    holder: Holder,
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
    /// When the input being handled happened.
    now: Instant,
    /// Effects of the input being handled.
    effects: Vec<Effect>,
}

impl Session {
    /// A session for worker `id` whose process is about to be spawned.
    pub fn new(
        id: WorkerId,
        kind: WorkerKind,
        name: String,
        settings: Arc<Settings>,
        workspace: Option<Workspace>,
        now: Instant,
    ) -> Self {
        Self {
            id,
            kind,
            name,
            model: settings.claude.default_model.clone(),
            settings,
            workspace,
            process: None,
            phase: Phase::Idle,
            system_prompt: None,
            holder: Holder::default(),
            session_id: None,
            thinking_budget: None,
            max_tokens: None,
            tools: None,
            tool_results: HashMap::new(),
            jobs_done: 0,
            spawned_at: now,
            next_request: 0,
            now,
            effects: Vec::new(),
        }
    }

    /// Reloaded settings: limits and timeouts read from now on.
    pub fn reconfigure(&mut self, settings: Arc<Settings>) {
        self.settings = settings;
    }

    /// Acts on `input`, which happened at `now`; returns what the actor
    /// must do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        self.now = now;
        match input {
            Input::Spawned(process) => {
                log::info!("{} spawned (pid {})", self.name, process.pid());
                self.process = Some(process);
                self.spawned_at = now;
                let probe = self.send_control("probe", Request::max_output_tokens(None));
                self.phase = Phase::Booting { probe };
            }
            Input::SpawnFailed(why) => {
                log::error!("{} {why}", self.name);
                self.report(WorkerState::Exited(ExitReason::BootFailed(why)), None);
                self.effects.push(Effect::Stop);
            }
            Input::Line(line) => self.on_line(line),
            Input::Job(job) => self.on_job(job),
            Input::Unbind => {
                if matches!(self.phase, Phase::Bound(_)) {
                    self.clear();
                }
            }
            Input::ReleasePark => {
                if matches!(self.phase, Phase::Parked(_)) {
                    log::info!("{} parked turn released for other work", self.name);
                    self.give_up_park();
                }
            }
            Input::Stop { grace } => self.retire(ExitReason::Stopped, grace),
            Input::Exited(status) => self.on_exit(status),
            Input::Tick => self.tick(),
        }
        std::mem::take(&mut self.effects)
    }

    fn since(&self, then: Instant) -> Duration {
        self.now.saturating_duration_since(then)
    }

    fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, |p| p.pid())
    }

    fn request_id(&mut self, what: &str) -> String {
        self.next_request += 1;
        format!("cp-{what}-{}", self.next_request)
    }

    fn send(&mut self, line: Outgoing) {
        self.effects.push(Effect::Write(line));
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

    fn emit(&mut self, job: &Job, event: JobEvent) {
        self.effects.push(Effect::Emit(job.events.clone(), event));
    }

    /// Ends `job` with `error` (harmless if the client is gone).
    fn fail(&mut self, job: &Job, error: JobError) {
        self.emit(job, JobEvent::Failed(error));
    }

    /// Tells the pool where the worker stands now, and how a job ended if
    /// one just did. Sent before the job's final event (see `report`).
    fn report(&mut self, state: WorkerState, job: Option<Outcome>) {
        self.effects.push(Effect::Report(WorkerReport {
            id: self.id,
            state,
            booted: None,
            job,
            limit: None,
            failover: None,
        }));
    }

    /// Tells the pool the worker finished booting: ready, blank.
    fn report_booted(&mut self) {
        self.effects.push(Effect::Report(WorkerReport {
            id: self.id,
            state: self.state(),
            booted: Some(self.pid()),
            job: None,
            limit: None,
            failover: None,
        }));
    }

    /// The state the current phase amounts to, as the pool sees it.
    fn state(&self) -> WorkerState {
        let holder = || self.holder.clone();
        let prompt = || self.system_prompt.clone();
        match &self.phase {
            Phase::Booting { .. } => WorkerState::Starting,
            Phase::Preparing { .. } | Phase::Running(_) => WorkerState::Busy(holder()),
            Phase::Idle => WorkerState::Ready { prompt: prompt() },
            Phase::Parked(parked) => {
                let mut tool_use_ids = parked.tool_use_ids.clone();
                tool_use_ids.sort_unstable();
                WorkerState::Parked {
                    holder: holder(),
                    tool_use_ids,
                }
            }
            Phase::Abandoning { .. } | Phase::Clearing { .. } => {
                WorkerState::Clearing { prompt: prompt() }
            }
            Phase::Bound(key) => WorkerState::Bound {
                holder: holder(),
                conversation: *key,
            },
            Phase::Stopping(_) => WorkerState::Stopping,
        }
    }

    /// Stops the process; the actor stops once it has exited. A job cut
    /// short is failed to its client (unless it has its answer) and counted
    /// as failed.
    fn retire(&mut self, reason: ExitReason, grace: Duration) {
        let mut ended = None;
        if let Some(run) = self.take_run() {
            ended = Some(Outcome::Failed);
            if !run.answered {
                let error = match &reason {
                    ExitReason::Stopped => JobError::ShuttingDown,
                    ExitReason::Crashed(why) | ExitReason::BootFailed(why) => {
                        JobError::WorkerCrashed(why.clone())
                    }
                    ExitReason::Retired => JobError::WorkerCrashed("worker retired".into()),
                };
                self.fail(&run.job, error);
            }
        }
        if !matches!(self.phase, Phase::Stopping(_)) {
            self.phase = Phase::Stopping(reason);
            self.report(WorkerState::Stopping, ended);
        }
        self.effects.push(Effect::Terminate(grace));
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

    /// A job from the pool: run it if the worker can.
    fn on_job(&mut self, job: Job) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => self.start_job(job, false),
            Phase::Bound(_) if job.spec.conversation.is_some() => self.start_job(job, true),
            Phase::Parked(parked) if !job.spec.tool_results.is_empty() => {
                self.resume_job(job, parked)
            }
            other => {
                self.phase = other;
                log::warn!("[{}] {} is not idle; job refused", job.id, self.name);
                self.report(self.state(), Some(Outcome::Failed));
                let error = "the assigned worker is no longer available";
                self.fail(&job, JobError::WorkerCrashed(error.into()));
            }
        }
    }

    fn on_exit(&mut self, status: String) {
        let mut ended = None;
        if let Some(run) = self.take_run() {
            ended = Some(Outcome::Failed);
            if !run.answered {
                let why = format!("the CLI exited mid-job ({status})");
                self.fail(&run.job, JobError::WorkerCrashed(why));
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
                log::warn!("{} (pid {}) {why}", self.name, self.pid())
            }
            _ => log::info!("{} (pid {}) stopped: {status}", self.name, self.pid()),
        }
        self.phase = Phase::Stopping(reason.clone());
        self.report(WorkerState::Exited(reason), ended);
        self.effects.push(Effect::Stop);
    }
}
