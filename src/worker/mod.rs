//! A worker actor: owns one long-lived `claude` process and runs one job at a
//! time in it.
//!
//! Life of a worker:
//! ```text
//! Booting --probe answered--> Idle --RunJob--> Preparing --setup answered--> Running
//!    ^                         ^                                               |
//!    |                         +---------- Clearing <-- result (any outcome) --+
//! spawn                                        \-- or retire (job count / RSS)
//! ```
//! Readiness is probed with `get_binary_version`, never `initialize`, so a
//! ready worker is blank and takes the first job's system prompt through a
//! late `initialize`. After every job, successful or not, the conversation is
//! cleared with `/clear` before the next job, so no job ever runs in a
//! conversation holding another job's messages.

pub mod agent_view;
pub mod mcp;
pub mod messages;
pub mod process;
pub mod protocol;
pub mod spawn;
pub mod stop;
pub mod translate;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use crate::api::assemble::Assembler;
use crate::config::Settings;
use crate::dispatch::messages::{
    ExitReason, JobEnded, JobParked, WorkerBound, WorkerExited, WorkerIdle, WorkerReady,
};
use crate::dispatch::Dispatcher;
use crate::error::JobError;
use crate::job::{Job, JobEvent, ToolResult, ToolSet, Usage};
use agent_view::AgentView;
use mcp::{McpRequest, ToolCall};
use messages::{RunJob, StopWorker, Unbind};
use process::{CliOutput, CliProcess, SpawnSpec};
use protocol::{CliMessage, ControlResponse};
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

/// How often timers (hangs, disconnects, timeouts) are checked.
const TICK: Duration = Duration::from_millis(200);
/// How long an interrupt may take before the process is killed instead.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How long a `/clear` may take before the process is killed instead.
const CLEAR_TIMEOUT: Duration = Duration::from_secs(10);
/// Grace for a retired worker to exit on stdin EOF.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// A step of job setup, each a control request whose reply is awaited.
#[derive(Debug)]
enum Setup {
    /// Give the blank conversation the job's system prompt.
    Initialize(String),
    SetModel(String),
    SetThinking(u32),
    /// Register the job's tool server (or none), replacing the previous one.
    SetTools(Option<ToolSet>),
    /// `/clear`, awaited through its `result`: `set_model` records a
    /// `/model` local command in the conversation, which the next prompt
    /// would otherwise carry to the model.
    Clear,
}

/// What `Preparing` awaits for [`Setup::Clear`] instead of a request id.
const AWAIT_CLEAR: &str = "/clear";

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
    /// The job continues a conversation this worker holds: only the final
    /// message is written.
    continuing: bool,
    /// Collects the reply, whose content keys the conversation afterwards.
    reply: Assembler,
    /// The reply's content once the turn finished normally.
    reply_content: Option<Vec<serde_json::Value>>,
    /// For agent jobs: the one-text-block view the client gets.
    agent_view: Option<AgentView>,
    /// Watches the text for the job's stop sequences, if it has any.
    stop_watch: Option<StopWatch>,
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
    Clearing {
        since: Instant,
    },
    /// Idle, holding the conversation of the last job (affinity).
    Bound,
    /// The process is being stopped; the reason is reported on exit.
    Stopping(ExitReason),
}

/// A turn waiting for the caller's tool results.
struct Parked {
    /// `tools/call` requests the CLI is blocked on, in arrival order.
    calls: Vec<ToolCall>,
    since: Instant,
    /// Usage already reported for this CLI turn.
    reported: Usage,
}

pub struct Worker {
    id: WorkerId,
    kind: WorkerKind,
    settings: Arc<Settings>,
    dispatcher: Addr<Dispatcher>,
    spec: SpawnSpec,
    process: Option<CliProcess>,
    phase: Phase,
    /// The system prompt fixed by `initialize`; `None` while blank.
    system_prompt: Option<String>,
    /// The model the CLI currently uses.
    model: String,
    /// The thinking budget last set; `None` while the CLI's default applies.
    thinking_budget: Option<u32>,
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
        dispatcher: Addr<Dispatcher>,
        spec: SpawnSpec,
    ) -> Self {
        let model = settings.claude.default_model.clone();
        Self {
            id,
            kind,
            settings,
            dispatcher,
            spec,
            process: None,
            phase: Phase::Idle,
            system_prompt: None,
            model,
            thinking_budget: None,
            tools: None,
            tool_results: HashMap::new(),
            jobs_done: 0,
            spawned_at: Instant::now(),
            next_request: 0,
        }
    }

    fn name(&self) -> String {
        format!("worker-{}", self.id)
    }

    fn request_id(&mut self, what: &str) -> String {
        self.next_request += 1;
        format!("cp-{what}-{}", self.next_request)
    }

    fn send_line(&self, line: String) {
        if let Some(process) = &self.process {
            process.send(line);
        }
    }

    fn send_control(&mut self, what: &str, request: serde_json::Value) -> String {
        let id = self.request_id(what);
        self.send_line(protocol::control_request(&id, request));
        id
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

    fn start_job(&mut self, job: Job, continuing: bool) {
        let mut steps = VecDeque::new();
        match &self.system_prompt {
            None => steps.push_back(Setup::Initialize(job.spec.system.clone())),
            Some(current) if *current != job.spec.system => {
                // The dispatcher never does this; refuse rather than leak.
                log::error!(
                    "[{}] {}: job with another system prompt refused",
                    job.id,
                    self.name()
                );
                job.fail(JobError::Unavailable(
                    "worker holds another system prompt".into(),
                ));
                self.retire(ExitReason::Retired, RETIRE_GRACE);
                return;
            }
            Some(_) => {}
        }
        if job.spec.model != self.model {
            steps.push_back(Setup::SetModel(job.spec.model.clone()));
        }
        if self.thinking_budget != Some(job.spec.thinking_budget) {
            steps.push_back(Setup::SetThinking(job.spec.thinking_budget));
        }
        let wanted = job.spec.tools.as_ref().map(|t| &t.server);
        if self.tools.as_ref().map(|t| &t.server) != wanted {
            steps.push_back(Setup::SetTools(job.spec.tools.clone()));
        }
        if job.spec.model != self.model {
            steps.push_back(Setup::Clear);
        }
        log::debug!(
            "[{}] {} starts job (model {})",
            job.id,
            self.name(),
            job.spec.model
        );
        self.tool_results.clear();
        let mut run = self.new_run(job, Usage::default());
        run.continuing = continuing;
        self.continue_setup(run, steps);
    }

    fn new_run(&self, job: Job, reported: Usage) -> Run {
        let now = Instant::now();
        let job_is_agent = job.spec.agent;
        let stop_watch = StopWatch::new(&job.spec.stop_sequences);
        Run {
            translator: TurnTranslator::with_tools(
                job.spec.tools.as_ref().map(ToolSet::api_prefix),
                reported,
            ),
            job,
            started: now,
            last_output: now,
            interrupted_at: None,
            answered: false,
            continuing: false,
            reply: Assembler::default(),
            reply_content: None,
            stop_watch,
            agent_view: job_is_agent
                .then(|| AgentView::new(self.settings.agent.show_tool_activity)),
        }
    }

    /// Continues a parked turn with the caller's tool results.
    fn resume_job(&mut self, job: Job, parked: Parked) {
        log::debug!("[{}] {} resumes a parked turn", job.id, self.name());
        self.tool_results = job
            .spec
            .tool_results
            .iter()
            .map(|r| (r.tool_use_id.clone(), r.clone()))
            .collect();
        let run = self.new_run(job, parked.reported);
        self.phase = Phase::Running(run);
        for call in parked.calls {
            self.answer_call(&call);
        }
    }

    /// Answers a blocked `tools/call` from the caller's results.
    fn answer_call(&mut self, call: &ToolCall) {
        let reply = match self.tool_results.get(&call.tool_use_id) {
            Some(result) => mcp::call_reply(call, result),
            None => mcp::call_unanswered(call),
        };
        self.send_line(protocol::control_success(&call.request_id, reply));
    }

    /// Sends the next setup request, or the prompt once setup is done.
    fn continue_setup(&mut self, run: Run, mut rest: VecDeque<Setup>) {
        match rest.pop_front() {
            Some(Setup::Initialize(system)) => {
                let awaiting = self.send_control(
                    "init",
                    json!({"subtype": "initialize", "systemPrompt": [system]}),
                );
                self.system_prompt = Some(system);
                self.phase = Phase::Preparing {
                    run,
                    awaiting,
                    rest,
                };
            }
            Some(Setup::SetModel(model)) => {
                let awaiting =
                    self.send_control("model", json!({"subtype": "set_model", "model": model}));
                self.model = model;
                self.phase = Phase::Preparing {
                    run,
                    awaiting,
                    rest,
                };
            }
            Some(Setup::SetTools(tools)) => {
                let servers = match &tools {
                    Some(t) => json!({ t.server.clone(): {"type": "sdk", "name": t.server} }),
                    None => json!({}),
                };
                let awaiting = self.send_control(
                    "tools",
                    json!({"subtype": "mcp_set_servers", "servers": servers}),
                );
                self.tools = tools;
                self.phase = Phase::Preparing {
                    run,
                    awaiting,
                    rest,
                };
            }
            Some(Setup::Clear) => {
                self.send_line(protocol::clear_command());
                self.phase = Phase::Preparing {
                    run,
                    awaiting: AWAIT_CLEAR.to_string(),
                    rest,
                };
            }
            Some(Setup::SetThinking(budget)) => {
                let awaiting = self.send_control(
                    "thinking",
                    json!({"subtype": "set_max_thinking_tokens", "max_thinking_tokens": budget}),
                );
                self.thinking_budget = Some(budget);
                self.phase = Phase::Preparing {
                    run,
                    awaiting,
                    rest,
                };
            }
            None => {
                let prompt = if run.continuing {
                    &run.job.spec.continuation
                } else {
                    &run.job.spec.prompt
                };
                self.send_line(protocol::user_message(prompt));
                self.phase = Phase::Running(run);
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
                    self.dispatcher.do_send(WorkerReady {
                        id: self.id,
                        pid: self.pid(),
                    });
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
                    run.job
                        .fail(JobError::TurnFailed(format!("worker setup failed: {why}")));
                    self.jobs_done += 1;
                    self.dispatcher.do_send(JobEnded {
                        id: self.id,
                        succeeded: false,
                    });
                    // Setup state is unknown now: a fresh process is safer.
                    self.retire(ExitReason::Retired, RETIRE_GRACE);
                }
            }
            other => self.phase = other,
        }
    }

    /// A control request from the CLI: the tool server's MCP traffic, tool
    /// permission checks, and anything else (refused promptly rather than
    /// left blocking a turn).
    fn on_control_request(&mut self, request_id: &str, request: &serde_json::Value) {
        let subtype = request
            .get("subtype")
            .and_then(|s| s.as_str())
            .unwrap_or("?");
        let line = match subtype {
            "mcp_message" => match mcp::classify(request_id, request, self.tools.as_ref()) {
                McpRequest::Immediate(reply) => protocol::control_success(request_id, reply),
                McpRequest::ToolCall(call) => return self.on_tool_call(call),
            },
            "can_use_tool" => match self.permission(request) {
                Ok(()) => {
                    let input = request.get("input").cloned().unwrap_or(json!({}));
                    protocol::control_success(
                        request_id,
                        json!({"behavior": "allow", "updatedInput": input}),
                    )
                }
                Err(why) => {
                    log::warn!("{} denied a tool call: {why}", self.name());
                    protocol::control_success(
                        request_id,
                        json!({"behavior": "deny", "message": why}),
                    )
                }
            },
            _ => {
                log::debug!("{} refuses CLI control request {subtype}", self.name());
                protocol::control_error(request_id, &format!("unsupported request {subtype}"))
            }
        };
        self.send_line(line);
    }

    /// Whether a tool call the CLI asks about may run: the current job's
    /// caller tools always; on an agent worker, the configured built-in
    /// tools, as long as every path involved is inside its workspace.
    fn permission(&self, request: &serde_json::Value) -> Result<(), String> {
        let tool = request
            .get("tool_name")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        if self
            .tools
            .as_ref()
            .is_some_and(|t| tool.starts_with(&t.api_prefix()))
        {
            return Ok(());
        }
        let agent = &self.settings.agent;
        let allowed = self.kind == WorkerKind::Agent
            && agent.tools.iter().any(|t| t == tool)
            && !agent.disallowed_tools.iter().any(|t| t == tool);
        if !allowed {
            return Err(format!("the tool {tool} is not enabled on this server"));
        }
        let input = &request["input"];
        let paths = ["file_path", "path", "notebook_path"]
            .iter()
            .filter_map(|key| input.get(*key).and_then(|v| v.as_str()))
            .chain(request.get("blocked_path").and_then(|v| v.as_str()));
        for path in paths {
            if !agent_view::inside(&self.spec.cwd, path) {
                return Err(format!("{path} is outside this agent's workspace"));
            }
        }
        Ok(())
    }

    /// The model called a caller's tool. A call the caller already answered
    /// (parallel calls arrive one at a time) is answered at once; the first
    /// call of a new round ends the job with `tool_use` and parks the turn.
    fn on_tool_call(&mut self, call: ToolCall) {
        if self.tool_results.contains_key(&call.tool_use_id) {
            return self.answer_call(&call);
        }
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Running(run) if run.interrupted_at.is_none() => {
                let completion = run.translator.pause_for_tools();
                let tool_use_ids = run.translator.tool_ids().to_vec();
                let reported = run.translator.reported_usage();
                if !run.answered {
                    let _ = run.job.events.send(JobEvent::Finished(completion));
                }
                log::info!(
                    "[{}] {} parked on {} tool call(s) after {} ms",
                    run.job.id,
                    self.name(),
                    tool_use_ids.len(),
                    run.started.elapsed().as_millis()
                );
                self.jobs_done += 1;
                self.dispatcher.do_send(JobEnded {
                    id: self.id,
                    succeeded: true,
                });
                self.dispatcher.do_send(JobParked {
                    id: self.id,
                    tool_use_ids,
                });
                self.tool_results.clear();
                self.phase = Phase::Parked(Parked {
                    calls: vec![call],
                    since: Instant::now(),
                    reported,
                });
            }
            Phase::Parked(mut parked) => {
                parked.calls.push(call);
                self.phase = Phase::Parked(parked);
            }
            other => {
                // Interrupting, or no job: nobody will answer it.
                self.phase = other;
                let reply = mcp::call_unanswered(&call);
                self.send_line(protocol::control_success(&call.request_id, reply));
            }
        }
    }

    fn on_turn_message(&mut self, message: CliMessage) {
        let Phase::Running(run) = &mut self.phase else {
            return;
        };
        run.last_output = Instant::now();
        let mut outcome = None;
        let mut events = run.translator.on_message(&message);
        if let Some(view) = &mut run.agent_view {
            events = events.into_iter().flat_map(|e| view.map(e)).collect();
        }
        let mut stopped = None;
        if let (Some(watch), false) = (&mut run.stop_watch, run.answered) {
            let mut out = Vec::new();
            for event in events {
                match watch.watch(event) {
                    Watched::Continue(more) => out.extend(more),
                    Watched::Stop {
                        events,
                        index,
                        sequence,
                    } => {
                        out.extend(events);
                        out.push(JobEvent::BlockStop { index });
                        let mut completion = run.translator.pause_for_tools();
                        completion.stop_reason = Some("stop_sequence".into());
                        completion.stop_sequence = Some(sequence);
                        stopped = Some(JobEvent::Finished(completion));
                        break;
                    }
                }
            }
            events = out;
        }
        if let Some(finished) = stopped {
            // The client's answer ends at the stop sequence; the rest of the
            // turn is interrupted and the worker cleared afterwards.
            for event in events.into_iter().chain(Some(finished)) {
                let _ = run.job.events.send(event);
            }
            run.answered = true;
            self.interrupt();
            return;
        }
        for event in events {
            let terminal = event.is_terminal();
            if terminal {
                let finished = matches!(event, JobEvent::Finished(_));
                outcome = Some(finished && run.interrupted_at.is_none());
            }
            if !run.answered {
                run.answered = terminal;
                if let Some(Ok(answer)) = run.reply.push(event.clone()) {
                    run.reply_content = Some(answer.content);
                }
                let _ = run.job.events.send(event);
            }
        }
        if let Some(succeeded) = outcome {
            self.finish_job(succeeded);
        }
    }

    /// The turn is over: report, then clear the conversation or retire.
    fn finish_job(&mut self, succeeded: bool) {
        let Some(run) = self.take_run() else { return };
        self.jobs_done += 1;
        log::info!(
            "[{}] {} job {} in {} ms",
            run.job.id,
            self.name(),
            if succeeded { "done" } else { "failed" },
            run.started.elapsed().as_millis()
        );
        self.dispatcher.do_send(JobEnded {
            id: self.id,
            succeeded,
        });
        if self.kind == WorkerKind::Agent {
            // Tools may have left processes behind (Bash children run in
            // sessions of their own); none outlives its job.
            let killed = process::kill_tagged(&self.spec.tag, Some(self.pid()));
            if killed > 0 {
                log::info!(
                    "[{}] killed {killed} process(es) left by the job's tools",
                    run.job.id
                );
            }
        }
        if let Some(reason) = self.recycle_reason() {
            log::info!("{} recycled: {reason}", self.name());
            self.retire(ExitReason::Retired, RETIRE_GRACE);
            return;
        }
        let bind_key = match (&run.job.spec.conversation, &run.reply_content) {
            (Some(conversation), Some(reply)) if succeeded && self.settings.pool.affinity => {
                Some(conversation.after_reply(reply))
            }
            _ => None,
        };
        match bind_key {
            Some(key) => {
                self.phase = Phase::Bound;
                self.dispatcher.do_send(WorkerBound { id: self.id, key });
            }
            None => self.clear(),
        }
    }

    /// Starts a fresh conversation (the system prompt stays).
    fn clear(&mut self) {
        self.send_line(protocol::clear_command());
        self.phase = Phase::Clearing {
            since: Instant::now(),
        };
    }

    fn recycle_reason(&self) -> Option<String> {
        let pool = &self.settings.pool;
        if pool.max_jobs_per_worker > 0 && self.jobs_done >= pool.max_jobs_per_worker {
            return Some(format!("{} jobs done", self.jobs_done));
        }
        let rss = self.process.as_ref().and_then(CliProcess::rss_bytes)?;
        if pool.max_worker_rss_mb > 0 && rss > pool.max_worker_rss_mb * 1024 * 1024 {
            return Some(format!("RSS {} MiB over the limit", rss / (1024 * 1024)));
        }
        None
    }

    fn interrupt(&mut self) {
        let id = self.request_id("interrupt");
        self.send_line(protocol::control_request(
            &id,
            json!({"subtype": "interrupt"}),
        ));
        if let Phase::Running(run) = &mut self.phase {
            run.interrupted_at = Some(Instant::now());
        }
    }

    /// Periodic checks: boot timeout, client gone, hangs, job time limit.
    fn tick(&mut self) {
        let pool = &self.settings.pool;
        let request_timeout = self.settings.server.request_timeout();
        let idle_timeout = pool.turn_idle_timeout();
        let park_timeout = self.settings.tools.park_timeout();
        match &mut self.phase {
            Phase::Booting { .. } if self.spawned_at.elapsed() > pool.boot_timeout() => {
                let why = format!("not ready after {:?}", pool.boot_timeout());
                self.retire(ExitReason::BootFailed(why), Duration::ZERO);
            }
            Phase::Preparing { run, .. }
                if run.job.is_abandoned() || run.started.elapsed() > idle_timeout =>
            {
                let why = "job setup did not complete".to_string();
                self.retire(ExitReason::Crashed(why), Duration::ZERO);
            }
            Phase::Running(run) => {
                if let Some(at) = run.interrupted_at {
                    if at.elapsed() > INTERRUPT_GRACE {
                        let why = "the CLI did not answer an interrupt".to_string();
                        self.retire(ExitReason::Crashed(why), Duration::ZERO);
                    }
                    return;
                }
                let mut failure = None;
                if run.job.is_abandoned() {
                    log::info!("[{}] client went away; interrupting the turn", run.job.id);
                } else if run.started.elapsed() > request_timeout {
                    failure = Some(format!(
                        "the request took longer than {}s",
                        request_timeout.as_secs()
                    ));
                } else if run.last_output.elapsed() > idle_timeout {
                    failure = Some(format!(
                        "the worker produced no output for {}s",
                        idle_timeout.as_secs()
                    ));
                } else {
                    return;
                }
                if let Some(why) = failure {
                    log::warn!("[{}] {why}; interrupting the turn", run.job.id);
                    run.job.fail(JobError::Timeout(why));
                    run.answered = true;
                }
                self.interrupt();
            }
            Phase::Parked(parked) if parked.since.elapsed() > park_timeout => {
                log::info!("worker-{} parked turn timed out; abandoning it", self.id);
                self.phase = Phase::Abandoning {
                    since: Instant::now(),
                };
                self.tool_results.clear();
                self.send_control("interrupt", json!({"subtype": "interrupt"}));
            }
            Phase::Abandoning { since } if since.elapsed() > INTERRUPT_GRACE => {
                let why = "the CLI did not answer an interrupt".to_string();
                self.retire(ExitReason::Crashed(why), Duration::ZERO);
            }
            Phase::Clearing { since } if since.elapsed() > CLEAR_TIMEOUT => {
                let why = "the CLI did not complete /clear".to_string();
                self.retire(ExitReason::Crashed(why), Duration::ZERO);
            }
            _ => {}
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
        self.dispatcher.do_send(WorkerExited {
            id: self.id,
            reason,
        });
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
                let probe = self.send_control("probe", json!({"subtype": "get_binary_version"}));
                self.phase = Phase::Booting { probe };
                ctx.run_interval(TICK, |act, _| act.tick());
            }
            Err(e) => {
                let why = format!("cannot run `{}`: {e}", self.spec.command);
                log::error!("{} {why}", self.name());
                self.dispatcher.do_send(WorkerExited {
                    id: self.id,
                    reason: ExitReason::BootFailed(why),
                });
                ctx.stop();
            }
        }
    }
}

impl StreamHandler<Vec<u8>> for Worker {
    fn handle(&mut self, line: Vec<u8>, _ctx: &mut Context<Self>) {
        let message = match protocol::parse_line(&line) {
            None => {
                if !line.trim_ascii().is_empty() {
                    log::warn!(
                        "{} non-JSON stdout line skipped: {}",
                        self.name(),
                        String::from_utf8_lossy(&line).trim_end()
                    );
                }
                return;
            }
            Some(Err(e)) => {
                log::warn!(
                    "{} unreadable stdout line skipped ({e}): {:.200}",
                    self.name(),
                    String::from_utf8_lossy(&line).trim_end()
                );
                return;
            }
            Some(Ok(message)) => message,
        };
        match message {
            CliMessage::ControlResponse { response } => self.on_control_response(response),
            CliMessage::ControlRequest {
                request_id,
                request,
            } => self.on_control_request(&request_id, &request),
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
            CliMessage::Result(_) if matches!(&self.phase, Phase::Preparing { awaiting, .. } if awaiting == AWAIT_CLEAR) => {
                if let Phase::Preparing { run, rest, .. } =
                    std::mem::replace(&mut self.phase, Phase::Idle)
                {
                    self.continue_setup(run, rest);
                }
            }
            CliMessage::Result(_) if matches!(self.phase, Phase::Abandoning { .. }) => self.clear(),
            CliMessage::Result(_) if matches!(self.phase, Phase::Clearing { .. }) => {
                self.phase = Phase::Idle;
                let rss_bytes = self.process.as_ref().and_then(CliProcess::rss_bytes);
                self.dispatcher.do_send(WorkerIdle {
                    id: self.id,
                    rss_bytes,
                });
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
            Phase::Bound if job.spec.conversation.is_some() => self.start_job(job, true),
            Phase::Parked(parked) if !job.spec.tool_results.is_empty() => {
                self.resume_job(job, parked)
            }
            other => {
                self.phase = other;
                log::warn!("[{}] {} is not idle; job refused", job.id, self.name());
                job.fail(JobError::WorkerCrashed(
                    "the assigned worker is no longer available".into(),
                ));
                self.dispatcher.do_send(JobEnded {
                    id: self.id,
                    succeeded: false,
                });
            }
        }
    }
}

impl Handler<Unbind> for Worker {
    type Result = ();

    fn handle(&mut self, _: Unbind, _ctx: &mut Context<Self>) {
        if matches!(self.phase, Phase::Bound) {
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
