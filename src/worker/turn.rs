//! Running a job in the worker's CLI conversation: setting the conversation
//! up for it (system prompt, model, thinking, tools), writing the prompt,
//! forwarding the turn's events, and what happens to the conversation after
//! the job (bound, cleared or retired).

use super::*;

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

impl Worker {
    pub(super) fn start_job(&mut self, job: Job, continuing: bool) {
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
            self.name(),
            job.spec.model
        );
        self.tool_results.clear();
        let mut run = self.new_run(job, Usage::default());
        run.continuing = continuing;
        self.continue_setup(run, steps);
    }

    pub(super) fn new_run(&self, job: Job, reported: Usage) -> Run {
        let now = Instant::now();
        let job_is_agent = job.spec.agent;
        let stop_watch = StopWatch::new(&job.spec.stop_sequences);
        let thinking_off = job.spec.thinking_budget == 0;
        let bindable = self.settings.pool.affinity && job.spec.conversation.is_some();
        Run {
            translator: TurnTranslator::with_tools(
                job.spec.tools.as_ref().map(ToolSet::api_prefix),
                self.settings.server.node_id(),
                reported,
            ),
            job,
            started: now,
            last_output: now,
            interrupted_at: None,
            stopped_at_sequence: false,
            answered: false,
            continuing: false,
            reply: bindable.then(Assembler::default),
            reply_content: None,
            stop_watch,
            hide_thinking: (thinking_off && !job_is_agent).then(Default::default),
            agent_view: job_is_agent
                .then(|| AgentView::new(self.settings.agent.show_tool_activity)),
        }
    }

    /// Sends the next setup request, or the prompt once setup is done.
    pub(super) fn continue_setup(&mut self, run: Run, mut rest: VecDeque<Setup>) {
        match rest.pop_front() {
            Some(Setup::Initialize(system)) => {
                let awaiting = self.send_control(
                    "init",
                    Request::Initialize {
                        system_prompt: system.clone(),
                    },
                );
                self.system_prompt = Some(system);
                self.phase = Phase::Preparing {
                    run,
                    awaiting,
                    rest,
                };
            }
            Some(Setup::SetModel(model)) => {
                let awaiting = self.send_control(
                    "model",
                    Request::SetModel {
                        model: model.clone(),
                    },
                );
                self.model = model;
                self.phase = Phase::Preparing {
                    run,
                    awaiting,
                    rest,
                };
            }
            Some(Setup::SetTools(tools)) => {
                let awaiting = self.send_control("tools", Request::tool_server(tools.as_ref()));
                self.tools = tools;
                self.phase = Phase::Preparing {
                    run,
                    awaiting,
                    rest,
                };
            }
            Some(Setup::Boundary) => {
                self.send(Outgoing::Boundary);
                self.continue_setup(run, rest);
            }
            Some(Setup::SetMaxTokens(limit)) => {
                let awaiting = self.send_control("max-tokens", Request::max_output_tokens(limit));
                self.max_tokens = limit;
                self.phase = Phase::Preparing {
                    run,
                    awaiting,
                    rest,
                };
            }
            Some(Setup::SetThinking(budget)) => {
                let awaiting = self.send_control(
                    "thinking",
                    Request::SetMaxThinkingTokens {
                        max_thinking_tokens: budget,
                    },
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
                self.send(Outgoing::User(prompt.clone()));
                self.phase = Phase::Running(run);
            }
        }
    }

    pub(super) fn on_turn_message(&mut self, message: CliMessage) {
        let Phase::Running(run) = &mut self.phase else {
            return;
        };
        run.last_output = Instant::now();
        let mut outcome = None;
        let mut events = run.translator.on_message(&message);
        if let Some(hide) = &mut run.hide_thinking {
            events = events.into_iter().filter_map(|e| hide.map(e)).collect();
        }
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
            run.stopped_at_sequence = true;
            self.interrupt();
            return;
        }
        // The final event is held back until the pool has been told how the
        // job ended (see `report`).
        let mut last = None;
        for event in events {
            let terminal = event.is_terminal();
            if terminal {
                let finished = matches!(event, JobEvent::Finished(_));
                outcome =
                    Some(run.stopped_at_sequence || (finished && run.interrupted_at.is_none()));
            }
            if !run.answered {
                run.answered = terminal;
                if let Some(Ok(answer)) = run.reply.as_mut().and_then(|r| r.push(event.clone())) {
                    run.reply_content = Some(answer.content);
                }
                if terminal {
                    last = Some(event);
                } else {
                    let _ = run.job.events.send(event);
                }
            }
        }
        if let Some(succeeded) = outcome {
            self.finish_job(succeeded, last);
        }
    }

    /// The turn is over: the worker retires, stays bound to the
    /// conversation, or clears it; the pool learns which before the client
    /// gets `last`, the job's final event (if it does not have one yet).
    pub(super) fn finish_job(&mut self, succeeded: bool, last: Option<JobEvent>) {
        let Some(run) = self.take_run() else { return };
        self.jobs_done += 1;
        log::info!(
            "[{}] {} job {} in {} ms (waited {} ms for a worker)",
            run.job.id,
            self.name(),
            if succeeded { "done" } else { "failed" },
            run.started.elapsed().as_millis(),
            run.started
                .saturating_duration_since(run.job.admitted_at)
                .as_millis()
        );
        if self.kind == WorkerKind::Agent {
            // Tools may have left processes behind (Bash children run in
            // sessions of their own); none outlives its job.
            let killed = self.process.as_ref().map_or(0, CliProcess::kill_leftovers);
            if killed > 0 {
                log::info!(
                    "[{}] killed {killed} process(es) left by the job's tools",
                    run.job.id
                );
            }
        }
        let recycle = self.recycle_reason();
        let bind_key = match (&run.job.spec.conversation, &run.reply_content) {
            (Some(conversation), Some(reply)) if succeeded && self.settings.pool.affinity => {
                Some(conversation.after_reply(reply))
            }
            _ => None,
        };
        match (&recycle, bind_key) {
            (Some(reason), _) => {
                log::info!("{} recycled: {reason}", self.name());
                self.phase = Phase::Stopping(ExitReason::Retired);
            }
            (None, Some(key)) => self.phase = Phase::Bound(key),
            (None, None) => self.clear(),
        }
        let outcome = match &last {
            Some(JobEvent::Failed(error @ JobError::Credentials(_))) => {
                Outcome::CredentialsFailed(error.to_string())
            }
            _ => Outcome::of(succeeded),
        };
        self.report(self.state(), Some(outcome));
        if let Some(event) = last {
            let _ = run.job.events.send(event);
        }
        if recycle.is_some() {
            self.retire(ExitReason::Retired, RETIRE_GRACE);
        }
    }

    /// Starts a fresh conversation (the system prompt stays): `/clear`,
    /// whose result must show a new session, then a conversation boundary,
    /// so that the model reads nothing of `/clear` either.
    pub(super) fn clear(&mut self) {
        self.send(Outgoing::Clear);
        self.phase = Phase::Clearing {
            since: Instant::now(),
            session: self.session_id.clone(),
        };
    }

    /// `/clear` answered. A conversation that kept its session id was not
    /// emptied: the worker is retired rather than risk the next job reading
    /// this one's messages.
    pub(super) fn on_cleared(&mut self, session_before: Option<String>) {
        if session_before.is_some() && session_before == self.session_id {
            log::warn!(
                "{}: /clear left the conversation in place (same session id); retiring the worker",
                self.name()
            );
            return self.retire(ExitReason::Retired, RETIRE_GRACE);
        }
        self.send(Outgoing::Boundary);
        self.phase = Phase::Idle;
        self.report(WorkerState::Idle, None);
    }

    pub(super) fn recycle_reason(&self) -> Option<String> {
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

    pub(super) fn interrupt(&mut self) {
        self.send_control("interrupt", Request::Interrupt);
        if let Phase::Running(run) = &mut self.phase {
            run.interrupted_at = Some(Instant::now());
        }
    }
}
