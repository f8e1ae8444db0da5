//! The worker's periodic checks: boot timeout, departed clients, hangs, the
//! job time limit, park timeouts, and stuck interrupts or clears.

use super::*;

/// How often timers (hangs, disconnects, timeouts) are checked.
pub(super) const TICK: Duration = Duration::from_millis(200);
/// How long an interrupt may take before the process is killed instead.
pub(super) const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How long a `/clear` may take before the process is killed instead.
pub(super) const CLEAR_TIMEOUT: Duration = Duration::from_secs(10);

impl Worker {
    /// Periodic checks: boot timeout, client gone, hangs, job time limit.
    pub(super) fn tick(&mut self) {
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
                self.report(WorkerState::Clearing, None);
                self.send_control("interrupt", Request::Interrupt);
            }
            Phase::Abandoning { since } if since.elapsed() > INTERRUPT_GRACE => {
                let why = "the CLI did not answer an interrupt".to_string();
                self.retire(ExitReason::Crashed(why), Duration::ZERO);
            }
            Phase::Clearing { since, .. } if since.elapsed() > CLEAR_TIMEOUT => {
                let why = "the CLI did not complete /clear".to_string();
                self.retire(ExitReason::Crashed(why), Duration::ZERO);
            }
            _ => {}
        }
    }
}
