//! Messages the dispatcher accepts: from the HTTP front end (admission,
//! health, shutdown) and from its workers (lifecycle reports).

use actix::Message;

use super::health::Health;
use crate::error::JobError;
use crate::job::Job;
use crate::worker::WorkerId;

/// Admit a job: run it now, queue it, or refuse it at once.
#[derive(Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct Submit(pub Job);

/// A snapshot of the pool for `/health`.
#[derive(Message)]
#[rtype(result = "Health")]
pub struct GetHealth;

/// Stop admitting; queued jobs are refused. In-flight jobs run on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Stop every worker process (after draining).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAll;

/// A worker answered its readiness probe and has a blank conversation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerReady {
    pub id: WorkerId,
    pub pid: u32,
}

/// A worker's job ended (successfully or not); the worker is now being
/// cleared or retired and is not yet available.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobEnded {
    pub id: WorkerId,
    pub succeeded: bool,
}

/// A worker's job ended with the model calling the caller's tools; the
/// turn waits for a request carrying results for exactly these calls.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobParked {
    pub id: WorkerId,
    pub tool_use_ids: Vec<String>,
}

/// A worker's job ended normally and the worker keeps that conversation,
/// bound under `key` (see `affinity`), instead of clearing it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerBound {
    pub id: WorkerId,
    pub key: u64,
}

/// A worker's conversation was cleared after a job; it can take another job
/// with the same system prompt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerIdle {
    pub id: WorkerId,
}

/// Why a worker's process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// Retired on purpose (job count or memory limit, or prompt mismatch).
    Retired,
    /// Stopped by the dispatcher (shutdown).
    Stopped,
    /// The process could not be started, or died before it was ready.
    BootFailed(String),
    /// The process died or was killed while in service.
    Crashed(String),
}

impl ExitReason {
    pub fn is_failure(&self) -> bool {
        matches!(self, ExitReason::BootFailed(_) | ExitReason::Crashed(_))
    }
}

/// A worker's process has exited and its actor is stopping.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerExited {
    pub id: WorkerId,
    pub reason: ExitReason,
}

/// Reloaded settings (SIGHUP): new limits and timeouts, forwarded to every
/// worker, and the pool grown or shrunk to `pool.size`. Jobs in flight run
/// on; only idle workers are stopped to shrink the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure(pub std::sync::Arc<crate::config::Settings>);
