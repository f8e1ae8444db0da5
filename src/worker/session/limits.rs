//! A worker meeting its account's rate limit. The pool hears of every
//! signal (see [`crate::accounts::signal`]); for the job in hand a 429
//! means:
//!
//! - nothing has reached the client yet: the job goes back to the pool to
//!   run on another account, and this worker abandons the turn at once (the
//!   CLI would otherwise sit out `retry-after` — minutes — in silence);
//! - the answer has started: the client gets a clean `rate_limit_error`
//!   now, and the turn is interrupted.

use super::{Effect, Phase, Session};
use crate::accounts::signal::Signal;
use crate::error::JobError;
use crate::job::{Job, JobEvent};
use crate::worker::report::WorkerReport;

impl Session {
    /// Acts on a rate-limit signal read from a CLI line; `turn_over` when
    /// that line is the turn's `result`. Returns true when the line is dealt
    /// with and must not be processed further.
    pub(super) fn on_account_signal(&mut self, signal: Signal, turn_over: bool) -> bool {
        let limited = matches!(signal, Signal::Limited { .. });
        let name = self.name.clone();
        // The client mid-answer, to be told of the limit.
        let mut cut_short = None;
        let failover = match &mut self.phase {
            Phase::Running(run) if limited && run.interrupted_at.is_none() && !run.answered => {
                if run.translator.has_output() {
                    if !turn_over {
                        log::warn!(
                            "[{}] {name} met a 429 mid-answer; the client gets a rate-limit error",
                            run.job.id
                        );
                        cut_short = Some(run.job.events.clone());
                        run.answered = true;
                    }
                    // Else the result's own 429 reaches the client.
                    None
                } else {
                    self.take_run()
                }
            }
            _ => None,
        };
        let Some(run) = failover else {
            // The pool hears of the limit before the client can see its
            // answer end (and ask again).
            self.report_limit(signal, None);
            if let Some(client) = cut_short {
                let error = JobError::Upstream {
                    status: Some(429),
                    message: "the account's rate limit was reached during the answer".into(),
                };
                self.effects
                    .push(Effect::Emit(client, JobEvent::Failed(error)));
                self.interrupt();
            }
            return false;
        };
        log::warn!(
            "[{}] {name} met a 429 before any output; the job moves to another account",
            run.job.id
        );
        if turn_over {
            self.clear();
        } else {
            self.abandon();
        }
        self.report_limit(signal, Some(run.job));
        true
    }

    /// Tells the pool what the CLI said about the account (and hands back
    /// a job to run elsewhere), with the worker's state.
    fn report_limit(&mut self, signal: Signal, failover: Option<Job>) {
        self.effects.push(Effect::Report(WorkerReport {
            id: self.id,
            state: self.state(),
            booted: None,
            job: None,
            limit: Some(signal),
            failover,
        }));
    }
}
