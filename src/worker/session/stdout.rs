//! The CLI's stdout, line by line: what each line means in the current
//! phase (a probe or setup reply, a request from the CLI, the end of a
//! `/clear`, or the running turn's output).

use std::time::Duration;

use super::{Phase, Session, RETIRE_GRACE};
use crate::error::JobError;
use crate::worker::protocol::{CliLine, CliMessage, ControlResponse, SystemMessage};
use crate::worker::report::{ExitReason, Outcome, WorkerState};

impl Session {
    pub(super) fn on_line(&mut self, line: CliLine) {
        let message = match line {
            CliLine::Message(message) => message,
            CliLine::NotJson(line) => {
                return log::warn!("{} non-JSON stdout line skipped: {line}", self.name);
            }
            CliLine::Unreadable { error, line } => {
                return log::warn!(
                    "{} unreadable stdout line skipped ({error}): {line:.200}",
                    self.name
                );
            }
            CliLine::TooLong { cap } => {
                return log::warn!(
                    "{} wrote a stdout line over {} MiB; the process is killed",
                    self.name,
                    cap / (1024 * 1024)
                );
            }
        };
        if let CliMessage::Result(result) = &message {
            if result.session_id.is_some() {
                self.session_id = result.session_id.clone();
            }
        }
        if let Some(signal) = crate::worker::account_signal::signal(&message) {
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
            CliMessage::System(SystemMessage::ApiRetry(retry)) => {
                log::info!(
                    "{} upstream retry {}/{} after status {:?} ({})",
                    self.name,
                    retry.attempt.unwrap_or_default(),
                    retry.max_retries.unwrap_or_default(),
                    retry.error_status,
                    retry.error.unwrap_or_default()
                );
                let now = self.now;
                if let Phase::Running(run) = &mut self.phase {
                    run.last_output = now;
                }
            }
            CliMessage::System(SystemMessage::Unknown(unknown)) => {
                // The CLI adds subtypes; none so far changes what a turn means.
                log::info!(
                    "{} ignores a system line of a new subtype: {}",
                    self.name,
                    unknown.subtype
                );
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

    fn on_control_response(&mut self, response: ControlResponse) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Booting { probe } if probe == response.request_id => {
                if response.is_success() {
                    log::info!(
                        "{} ready (pid {}, {:?} after spawn)",
                        self.name,
                        self.pid(),
                        self.since(self.spawned_at)
                    );
                    self.report_booted();
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
                    log::warn!("[{}] {} setup failed: {why}", run.job.id, self.name);
                    self.jobs_done += 1;
                    // Setup state is unknown now: a fresh process is safer.
                    self.phase = Phase::Stopping(ExitReason::Retired);
                    self.report(WorkerState::Stopping, Some(Outcome::Failed));
                    let error = JobError::TurnFailed(format!("worker setup failed: {why}"));
                    self.fail(&run.job, error);
                    self.retire(ExitReason::Retired, RETIRE_GRACE);
                }
            }
            other => self.phase = other,
        }
    }
}
