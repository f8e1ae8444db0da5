//! What the CLI asks of the daemon mid-turn: MCP traffic of the caller's
//! tool server, tool permission checks (answered by `permission`), and the
//! caller's tool calls, which park the turn until the caller's next request
//! brings the results.

use tokio::time::Instant;

use super::{Phase, Session};
use crate::job::{Job, JobEvent, Usage};
use crate::worker::mcp_server::{self as mcp, McpRequest, ToolCall};
use crate::worker::permission;
use crate::worker::protocol::{CliRequest, Outgoing, Reply, ToolPermission};
use crate::worker::report::{Holder, Outcome, WorkerState};
use crate::worker::WorkerKind;

/// A turn waiting for the caller's tool results.
pub(super) struct Parked {
    /// The ids of the turn's tool calls, whose results resume it.
    pub(super) tool_use_ids: Vec<String>,
    /// `tools/call` requests the CLI is blocked on, in arrival order.
    pub(super) calls: Vec<ToolCall>,
    pub(super) since: Instant,
    /// Usage already reported for this CLI turn.
    pub(super) reported: Usage,
}

impl Session {
    /// A control request from the CLI: the tool server's MCP traffic, tool
    /// permission checks, and anything else (refused promptly rather than
    /// left blocking a turn).
    pub(super) fn on_control_request(&mut self, request_id: String, request: CliRequest) {
        let reply = match request {
            CliRequest::McpMessage {
                server_name,
                message,
            } => {
                let tools = self.tools.as_ref();
                match mcp::classify(&request_id, &server_name, &message, tools) {
                    McpRequest::Immediate(message) => Reply::Mcp(message),
                    McpRequest::ToolCall(call) => return self.on_tool_call(call),
                }
            }
            CliRequest::CanUseTool(request) => match self.permission(&request) {
                Ok(()) => Reply::Allow {
                    input: request.input,
                },
                Err(why) => {
                    log::warn!("{} denied a tool call: {why}", self.name);
                    Reply::Deny { message: why }
                }
            },
            CliRequest::Other(subtype) => {
                log::debug!("{} refuses CLI control request {subtype}", self.name);
                Reply::Unsupported(format!("unsupported request {subtype}"))
            }
        };
        self.send(Outgoing::Reply { request_id, reply });
    }

    /// The model called a caller's tool. A call the caller already answered
    /// (parallel calls arrive one at a time) is answered at once; the first
    /// call of a new round ends the job with `tool_use` and parks the turn.
    pub(super) fn on_tool_call(&mut self, call: ToolCall) {
        if self.tool_results.contains_key(&call.tool_use_id) {
            return self.answer_call(&call);
        }
        // The CLI runs the tools of a call it keeps: events of it held back
        // (see `TurnTranslator::holding_back`) go out before the pause.
        if let Phase::Running(run) = &mut self.phase {
            let held = run.translator.release_held();
            self.forward(held);
        }
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            // Park only for a client still waiting for this answer; a
            // departed or already answered one gets its turn interrupted by
            // the timers instead of holding the worker until the park times out.
            Phase::Running(mut run)
                if run.interrupted_at.is_none() && !run.answered && !run.job.is_abandoned() =>
            {
                let paused = run.translator.pause_for_tools();
                let finished = run.answer.note(JobEvent::Finished(paused));
                let tool_use_ids = run.translator.tool_ids().to_vec();
                let reported = run.translator.reported_usage();
                log::info!(
                    "[{}] {} parked on {} tool call(s) after {} ms",
                    run.job.id,
                    self.name,
                    tool_use_ids.len(),
                    self.since(run.started).as_millis()
                );
                self.jobs_done += 1;
                self.tool_results.clear();
                if run.job.spec.background {
                    // Nobody will send results: the answer ends with the
                    // calls, and the turn is let go as a timed-out park is.
                    self.abandon();
                    self.report(self.state(), Some(Outcome::Succeeded));
                    self.emit(&run.job, finished);
                    return;
                }
                self.phase = Phase::Parked(Parked {
                    tool_use_ids: tool_use_ids.clone(),
                    calls: vec![call],
                    since: self.now,
                    reported,
                });
                // The pool knows of the parked turn before the client sees
                // the response end and sends the results.
                self.report(self.state(), Some(Outcome::Succeeded));
                self.emit(&run.job, finished);
            }
            Phase::Parked(mut parked) => {
                parked.calls.push(call);
                self.phase = Phase::Parked(parked);
            }
            other => {
                // Interrupting, or no job: nobody will answer it.
                self.phase = other;
                self.send(Outgoing::Reply {
                    request_id: call.request_id.clone(),
                    reply: Reply::Mcp(mcp::call_unanswered(&call)),
                });
            }
        }
    }

    /// Lets go of the parked turn (timed out, or released by the pool):
    /// it is interrupted and the conversation cleared.
    pub(super) fn give_up_park(&mut self) {
        self.tool_results.clear();
        let prompt = self.system_prompt.clone();
        self.report(WorkerState::Clearing { prompt }, None);
        self.abandon();
    }

    /// Continues a parked turn with the caller's tool results.
    pub(super) fn resume_job(&mut self, job: Job, parked: Parked) {
        log::debug!("[{}] {} resumes a parked turn", job.id, self.name);
        self.tool_results = job
            .spec
            .tool_results
            .iter()
            .map(|r| (r.tool_use_id.clone(), r.clone()))
            .collect();
        self.holder = Holder::of(&job);
        let run = self.new_run(job, parked.reported);
        self.phase = Phase::Running(run);
        for call in parked.calls {
            self.answer_call(&call);
        }
    }

    /// Answers a blocked `tools/call` from the caller's results.
    pub(super) fn answer_call(&mut self, call: &ToolCall) {
        let message = match self.tool_results.get(&call.tool_use_id) {
            Some(result) => mcp::call_reply(call, result),
            None => mcp::call_unanswered(call),
        };
        self.send(Outgoing::Reply {
            request_id: call.request_id.clone(),
            reply: Reply::Mcp(message),
        });
    }

    /// Whether the tool call the CLI asks about may run (see
    /// [`permission::check`]).
    fn permission(&self, request: &ToolPermission) -> Result<(), String> {
        let agent = (self.kind == WorkerKind::Agent)
            .then_some(self.workspace.as_ref())
            .flatten()
            .map(|workspace| (&self.settings.agent, workspace));
        permission::check(request, self.tools.as_ref(), agent)
    }
}
