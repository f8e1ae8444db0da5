//! The one message a worker sends its pool: where it stands now and, when a
//! job just ended, how. It goes through a [`Recipient`](actix::Recipient),
//! so a worker never knows the type of the pool it serves.
//!
//! Order matters: a worker reports a job's end *before* it sends the job's
//! final event, so the pool knows a worker is bound or parked before the
//! client can see the response end and send its next request.

use actix::Message;

use super::WorkerId;
use crate::accounts::signal::Signal;
use crate::job::Job;

/// A worker's report to its pool.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WorkerReport {
    pub id: WorkerId,
    pub state: WorkerState,
    /// How the worker's job ended, when this report ends one.
    pub job: Option<Outcome>,
    /// What the worker's CLI just said about its account's rate limits
    /// (see [`crate::accounts::signal`]).
    pub limit: Option<Signal>,
    /// A job handed back unanswered: its turn met a 429 (or its account's
    /// credentials failed) before anything reached the client, so it runs
    /// again on another account.
    pub failover: Option<Job>,
}

/// Where a worker stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    /// Booted and answering, with a blank conversation.
    Ready { pid: u32 },
    /// Its conversation was cleared: it takes a job with the system prompt
    /// it was set up with.
    Idle,
    /// Running a job (or setting one up).
    Busy,
    /// Idle, holding the conversation keyed `key` for that conversation's
    /// next turn (see `affinity`).
    Bound(u64),
    /// Its turn is blocked on the caller's calls with these `tool_use` ids;
    /// a request carrying results for exactly them resumes it.
    Parked(Vec<String>),
    /// Clearing its conversation (or first interrupting an abandoned turn);
    /// `Idle` follows.
    Clearing,
    /// Its process is being stopped; `Exited` follows.
    Stopping,
    /// Its process is gone and the worker has stopped.
    Exited(ExitReason),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Failed because the worker's Claude credentials are missing or were
    /// rejected: the CLI's words. Handed back as `failover` when nothing
    /// reached the client, for the pool to run on another account.
    CredentialsFailed(String),
}

impl Outcome {
    /// [`Outcome::Succeeded`] or [`Outcome::Failed`].
    pub fn of(succeeded: bool) -> Self {
        if succeeded {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        }
    }
}

/// Why a worker's process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// Retired by the worker itself: job count or memory limit, a failed
    /// job setup, a `/clear` that left the conversation in place. Replaced
    /// at once and counted as a restart and a recycle, never as a failure.
    Retired,
    /// Stopped by the pool: shutdown, a smaller pool, or to be replaced by
    /// a blank worker (or one of another kind). Replaced (unless the pool
    /// shrinks or drains) and counted as a restart, not as a recycle.
    Stopped,
    /// The process could not be started, or died before it was ready.
    BootFailed(String),
    /// The process died or was killed while in service.
    Crashed(String),
}
