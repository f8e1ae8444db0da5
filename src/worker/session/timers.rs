//! The worker's periodic checks: boot timeout, departed clients, hangs, the
//! job time limit, park timeouts, and stuck interrupts or clears. Each reads
//! the time of the tick it runs in, never the clock.

use std::time::Duration;

use super::{Effect, Phase, Session};
use crate::error::JobError;
use crate::job::JobEvent;
use crate::worker::report::ExitReason;

/// How often timers (hangs, disconnects, timeouts) are checked.
pub const TICK: Duration = Duration::from_millis(200);
/// How long an interrupt may take before the process is killed instead.
pub(super) const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How long a `/clear` may take before the process is killed instead.
pub(super) const CLEAR_TIMEOUT: Duration = Duration::from_secs(10);

impl Session {
    /// Periodic checks: boot timeout, client gone, hangs, job time limit.
    pub(super) fn tick(&mut self) {
        let now = self.now;
        let elapsed = |since| now.saturating_duration_since(since);
        let pool = &self.settings.pool;
        let request_timeout = self.settings.server.request_timeout();
        let idle_timeout = pool.turn_idle_timeout();
        let park_timeout = self.settings.tools.park_timeout();
        match &mut self.phase {
            Phase::Booting { .. } if elapsed(self.spawned_at) > pool.boot_timeout() => {
                let why = format!("not ready after {:?}", pool.boot_timeout());
                self.retire(ExitReason::BootFailed(why), Duration::ZERO);
            }
            Phase::Preparing { run, .. }
                if run.job.is_abandoned() || elapsed(run.started) > idle_timeout =>
            {
                let why = "job setup did not complete".to_string();
                self.retire(ExitReason::Crashed(why), Duration::ZERO);
            }
            Phase::Running(run) => {
                if let Some(at) = run.interrupted_at {
                    if elapsed(at) > INTERRUPT_GRACE {
                        let why = "the CLI did not answer an interrupt".to_string();
                        self.retire(ExitReason::Crashed(why), Duration::ZERO);
                    }
                    return;
                }
                let mut failure = None;
                if run.job.is_abandoned() {
                    log::info!("[{}] client went away; interrupting the turn", run.job.id);
                } else if elapsed(run.started) > request_timeout {
                    failure = Some(format!(
                        "the request took longer than {}s",
                        request_timeout.as_secs()
                    ));
                } else if elapsed(run.last_output) > idle_timeout {
                    failure = Some(format!(
                        "the worker produced no output for {}s",
                        idle_timeout.as_secs()
                    ));
                } else {
                    return;
                }
                if let Some(why) = failure {
                    log::warn!("[{}] {why}; interrupting the turn", run.job.id);
                    let to = run.job.events.clone();
                    self.effects
                        .push(Effect::Emit(to, JobEvent::Failed(JobError::Timeout(why))));
                    run.answered = true;
                }
                self.interrupt();
            }
            Phase::Parked(parked) if elapsed(parked.since) > park_timeout => {
                log::info!("{} parked turn timed out; abandoning it", self.name);
                self.give_up_park();
            }
            Phase::Abandoning { since } if elapsed(*since) > INTERRUPT_GRACE => {
                let why = "the CLI did not answer an interrupt".to_string();
                self.retire(ExitReason::Crashed(why), Duration::ZERO);
            }
            Phase::Clearing { since, .. } if elapsed(*since) > CLEAR_TIMEOUT => {
                let why = "the CLI did not complete /clear".to_string();
                self.retire(ExitReason::Crashed(why), Duration::ZERO);
            }
            _ => {}
        }
    }
}
