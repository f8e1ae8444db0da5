//! Setting the worker's CLI conversation up for a job (system prompt,
//! model, thinking, output limit, tools), one control request at a time,
//! then writing the job's prompt.

use std::collections::VecDeque;

use super::{Phase, Run, Session, RETIRE_GRACE};
use crate::error::JobError;
use crate::job::assemble::Assembler;
use crate::job::{Job, ToolSet, Usage};
use crate::worker::agent_view::AgentView;
use crate::worker::protocol::{Outgoing, Request};
use crate::worker::report::ExitReason;
use crate::worker::stop::StopWatch;
use crate::worker::translate::TurnTranslator;

/// A step of job setup, each a control request whose reply is awaited.
#[derive(Debug)]
pub(super) enum Setup {
    /// Give the blank conversation the job's system prompt.
    Initialize(String),
    SetModel(String),
    SetThinking(u32),
    /// The output token limit (`None`: the CLI's default), through the
    /// CLI's own `CLAUDE_CODE_MAX_OUTPUT_TOKENS` applied with
    /// `apply_flag_settings`; verified to set each turn's `max_tokens`.
    SetMaxTokens(Option<u32>),
    /// Register the job's tool server (or none), replacing the previous one.
    SetTools(Option<ToolSet>),
    /// A conversation boundary (no reply awaited): `set_model` records a
    /// `/model` local command in the conversation, which the next prompt
    /// would otherwise carry to the model.
    Boundary,
}

impl Session {
    pub(super) fn start_job(&mut self, job: Job, continuing: bool) {
        self.holder = crate::worker::report::Holder::of(&job);
        let mut steps = VecDeque::new();
        match &self.system_prompt {
            None => steps.push_back(Setup::Initialize(job.spec.system.clone())),
            Some(current) if *current != job.spec.system => {
                // The dispatcher never does this; refuse rather than leak.
                log::error!(
                    "[{}] {}: job with another system prompt refused",
                    job.id,
                    self.name
                );
                let error = JobError::Unavailable("worker holds another system prompt".into());
                self.fail(&job, error);
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
        if self.max_tokens != job.spec.max_tokens {
            steps.push_back(Setup::SetMaxTokens(job.spec.max_tokens));
        }
        let wanted = job.spec.tools.as_ref().map(|t| &t.server);
        if self.tools.as_ref().map(|t| &t.server) != wanted {
            steps.push_back(Setup::SetTools(job.spec.tools.clone()));
        }
        if job.spec.model != self.model {
            steps.push_back(Setup::Boundary);
        }
        log::debug!(
            "[{}] {} starts job (model {})",
            job.id,
            self.name,
            job.spec.model
        );
        self.tool_results.clear();
        let mut run = self.new_run(job, Usage::default());
        run.continuing = continuing;
        self.continue_setup(run, steps);
    }

    pub(super) fn new_run(&self, job: Job, reported: Usage) -> Run {
        let now = self.now;
        let job_is_agent = job.spec.agent;
        let stop_watch = StopWatch::new(&job.spec.stop_sequences);
        let thinking_off = job.spec.thinking_budget == 0;
        Run {
            translator: TurnTranslator::with_tools(
                job.spec.tools.as_ref().map(ToolSet::api_prefix),
                self.settings.server.node_id(),
                reported,
            )
            .holding_back(!job.spec.streamed),
            job,
            started: now,
            last_output: now,
            prompt_sent: None,
            first_output: None,
            interrupted_at: None,
            stopped_at_sequence: false,
            answered: false,
            continuing: false,
            answer: Assembler::default(),
            stop_watch,
            hide_thinking: (thinking_off && !job_is_agent).then(Default::default),
            agent_view: job_is_agent
                .then(|| AgentView::new(self.settings.agent.show_tool_activity)),
        }
    }

    /// Sends the next setup request, or the prompt once setup is done. The
    /// worker's record of the CLI's state changes with the request.
    pub(super) fn continue_setup(&mut self, mut run: Run, mut rest: VecDeque<Setup>) {
        let (what, request) = match rest.pop_front() {
            Some(Setup::Initialize(system)) => {
                self.system_prompt = Some(system.clone());
                let system_prompt = system;
                ("init", Request::Initialize { system_prompt })
            }
            Some(Setup::SetModel(model)) => {
                self.model = model.clone();
                ("model", Request::SetModel { model })
            }
            Some(Setup::SetThinking(budget)) => {
                self.thinking_budget = Some(budget);
                let max_thinking_tokens = budget;
                (
                    "thinking",
                    Request::SetMaxThinkingTokens {
                        max_thinking_tokens,
                    },
                )
            }
            Some(Setup::SetMaxTokens(limit)) => {
                self.max_tokens = limit;
                ("max-tokens", Request::max_output_tokens(limit))
            }
            Some(Setup::SetTools(tools)) => {
                let request = Request::tool_server(tools.as_ref());
                self.tools = tools;
                ("tools", request)
            }
            Some(Setup::Boundary) => {
                self.send(Outgoing::Boundary);
                return self.continue_setup(run, rest);
            }
            None => {
                let prompt = if run.continuing {
                    &run.job.spec.continuation
                } else {
                    &run.job.spec.prompt
                };
                self.send(Outgoing::User(prompt.clone()));
                run.prompt_sent = Some(self.now);
                self.phase = Phase::Running(run);
                return;
            }
        };
        let awaiting = self.send_control(what, request);
        self.phase = Phase::Preparing {
            run,
            awaiting,
            rest,
        };
    }
}
