//! The running turn: the CLI's output forwarded to the job's client as
//! events (through the job's filters: hidden thinking, the agent view, stop
//! sequences), and what happens to the conversation after the job (bound,
//! cleared or retired).

use tokio::time::Instant;

use super::{Effect, Phase, Run, Session, RETIRE_GRACE};
use crate::error::JobError;
use crate::job::JobEvent;
use crate::worker::protocol::{CliMessage, Outgoing, Request};
use crate::worker::report::{ExitReason, Outcome, WorkerReport};
use crate::worker::stop::Watched;
use crate::worker::WorkerKind;

impl Session {
    pub(super) fn on_turn_message(&mut self, message: CliMessage) {
        let Phase::Running(run) = &mut self.phase else {
            return;
        };
        run.last_output = self.now;
        if matches!(
            message,
            CliMessage::StreamEvent { .. } | CliMessage::Assistant { .. }
        ) {
            // The model's output: the upstream's first bytes have arrived.
            run.first_output.get_or_insert(self.now);
        }
        let events = run.translator.on_message(&message);
        if run.translator.take_broken_off() {
            return self.end_broken_off(events);
        }
        self.forward(events);
    }

    /// The client has part of an upstream call the CLI gave up: it gets
    /// `events` (ending with the failure) and the rest of the turn is
    /// interrupted, as after a stop sequence, but the job failed.
    fn end_broken_off(&mut self, events: Vec<JobEvent>) {
        let Phase::Running(run) = &mut self.phase else {
            return;
        };
        let answered = std::mem::replace(&mut run.answered, true);
        let to = run.job.events.clone();
        if !answered {
            for event in events {
                let event = run.answer.note(event);
                self.effects.push(Effect::Emit(to.clone(), event));
            }
        }
        self.interrupt();
    }

    /// Passes a turn's events on to the job's client through the job's
    /// filters, and finishes the job at its terminal event.
    pub(super) fn forward(&mut self, events: Vec<JobEvent>) {
        let Phase::Running(run) = &mut self.phase else {
            return;
        };
        let mut outcome = None;
        let mut events = events;
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
                        completion.stop_reason = Some(crate::job::StopReason::StopSequence);
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
                let to = run.job.events.clone();
                let event = run.answer.note(event);
                self.effects.push(Effect::Emit(to, event));
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
                let event = run.answer.note(event);
                if terminal {
                    last = Some(event);
                } else {
                    let to = run.job.events.clone();
                    self.effects.push(Effect::Emit(to, event));
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
            "[{}] {} job {} in {} ms (waited {:.1} ms for a worker{})",
            run.job.id,
            self.name,
            if succeeded { "done" } else { "failed" },
            self.since(run.started).as_millis(),
            run.started
                .saturating_duration_since(tokio::time::Instant::from_std(run.job.admitted_at))
                .as_secs_f64()
                * 1e3,
            self.stages(&run)
        );
        if self.kind == WorkerKind::Agent {
            // Tools may have left processes behind (Bash children run in
            // sessions of their own); none outlives its job.
            let job = run.job.id.clone();
            self.effects.push(Effect::KillLeftovers { job });
        }
        let recycle = self.recycle_reason();
        let bind_key = match (&run.job.spec.conversation, &last) {
            (Some(conversation), Some(JobEvent::Finished(answer)))
                if succeeded && self.settings.pool.affinity =>
            {
                Some(conversation.after_reply(&answer.content))
            }
            _ => None,
        };
        match (&recycle, bind_key) {
            (Some(reason), _) => {
                log::info!("{} recycled: {reason}", self.name);
                self.phase = Phase::Stopping(ExitReason::Retired);
            }
            (None, Some(key)) => self.phase = Phase::Bound(key),
            (None, None) => self.clear(),
        }
        let outcome = match &last {
            Some(JobEvent::Failed(JobError::Credentials(text))) => {
                Outcome::CredentialsFailed(text.clone())
            }
            _ => Outcome::of(succeeded),
        };
        if matches!(outcome, Outcome::CredentialsFailed(_)) && !run.translator.has_output() {
            // Nothing reached the client: the pool runs the job on an
            // account whose login works, or answers with this error.
            let state = self.state();
            self.effects.push(Effect::Report(WorkerReport {
                id: self.id,
                state,
                booted: None,
                job: Some(outcome),
                limit: None,
                failover: Some(run.job),
            }));
        } else {
            self.report(self.state(), Some(outcome));
            if let Some(event) = last {
                self.emit(&run.job, event);
            }
        }
        if recycle.is_some() {
            self.retire(ExitReason::Retired, RETIRE_GRACE);
        }
    }

    /// Where a finished turn's time went, for the job's log line: setting
    /// the conversation up (control requests), from the prompt to the CLI's
    /// first line of model output (its own work before the call, and the
    /// upstream's first byte), and from there to the result (the stream).
    fn stages(&self, run: &Run) -> String {
        let ms =
            |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
        let Some(sent) = run.prompt_sent else {
            return String::new();
        };
        let first = run.first_output.unwrap_or(self.now);
        format!(
            "; setup {:.1} ms, prompt to model output {:.1} ms, to result {:.1} ms",
            ms(run.started, sent),
            ms(sent, first),
            ms(first, self.now)
        )
    }

    /// Starts a fresh conversation (the system prompt stays): `/clear`,
    /// whose result must show a new session, then a conversation boundary,
    /// so that the model reads nothing of `/clear` either.
    pub(super) fn clear(&mut self) {
        self.send(Outgoing::Clear);
        self.phase = Phase::Clearing {
            since: self.now,
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
                self.name
            );
            return self.retire(ExitReason::Retired, RETIRE_GRACE);
        }
        self.send(Outgoing::Boundary);
        self.phase = Phase::Idle;
        self.report(self.state(), None);
    }

    pub(super) fn recycle_reason(&self) -> Option<String> {
        let pool = &self.settings.pool;
        if pool.max_jobs_per_worker > 0 && self.jobs_done >= pool.max_jobs_per_worker {
            return Some(format!("{} jobs done", self.jobs_done));
        }
        let rss = self.process.as_ref().and_then(|p| p.rss_bytes())?;
        if pool.max_worker_rss_mb > 0 && rss > pool.max_worker_rss_mb * 1024 * 1024 {
            return Some(format!("RSS {} MiB over the limit", rss / (1024 * 1024)));
        }
        None
    }

    /// Lets go of a turn no client waits for any more: interrupts it, and
    /// its `result` clears the conversation (see `stdout`).
    pub(super) fn abandon(&mut self) {
        self.send_control("interrupt", Request::Interrupt);
        self.phase = Phase::Abandoning { since: self.now };
    }

    /// Interrupts the running turn; its `result` follows (docs/cli-protocol.md §4).
    pub(super) fn interrupt(&mut self) {
        self.send_control("interrupt", Request::Interrupt);
        let now = self.now;
        if let Phase::Running(run) = &mut self.phase {
            run.interrupted_at = Some(now);
        }
    }
}
