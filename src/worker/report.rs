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
    /// The process's pid, in the report that says the worker finished
    /// booting (and only there).
    pub booted: Option<u32>,
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

/// Where a worker stands: the one state of a worker, which it reports and
/// its pool stores as is. Each variant carries what the pool decides by:
/// the system prompt the worker is set up with, whose conversation it
/// holds, the tool calls a parked turn waits for.
///
/// The pool writes a state itself only to record what it just asked of the
/// worker (a job given, a conversation let go, a stop): the state the
/// worker will report next, so that it is not asked twice meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawned, not ready yet (the pool's state for a worker it spawned;
    /// the worker reports `Ready` next, or `Exited`).
    Starting,
    /// Free for a job: blank (`prompt` is `None`: takes any system prompt)
    /// or set up with `prompt` (takes a job with that prompt only).
    Ready { prompt: Option<String> },
    /// Running a job (or setting one up) for `holder`.
    Busy(Holder),
    /// Its turn is blocked on the caller's calls with these `tool_use` ids
    /// (sorted); a request of `holder`'s carrying results for exactly them
    /// resumes it.
    Parked {
        holder: Holder,
        tool_use_ids: Vec<String>,
    },
    /// Idle, holding `holder`'s conversation keyed `conversation` for that
    /// conversation's next turn (see `affinity`).
    Bound { holder: Holder, conversation: u64 },
    /// Clearing its conversation (or first interrupting an abandoned turn);
    /// `Ready` with the same `prompt` follows.
    Clearing { prompt: Option<String> },
    /// Its process is being stopped; `Exited` follows.
    Stopping,
    /// Its process is gone and the worker has stopped.
    Exited(ExitReason),
}

/// Whose work a worker holds: the job's system prompt, the scope (caller)
/// that sent it, and whether it is a background (batch) job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub prompt: String,
    pub scope: String,
    pub background: bool,
}

impl Holder {
    /// The holder of `job`.
    pub fn of(job: &Job) -> Self {
        Self {
            prompt: job.spec.system.clone(),
            scope: job.spec.scope.clone(),
            background: job.spec.background,
        }
    }
}

impl WorkerState {
    /// The system prompt the worker is set up with, when it is known to
    /// have one and to keep it (not while starting or stopping).
    pub fn prompt(&self) -> Option<&str> {
        match self {
            WorkerState::Ready { prompt } | WorkerState::Clearing { prompt } => prompt.as_deref(),
            WorkerState::Busy(holder)
            | WorkerState::Parked { holder, .. }
            | WorkerState::Bound { holder, .. } => Some(&holder.prompt),
            WorkerState::Starting | WorkerState::Stopping | WorkerState::Exited(_) => None,
        }
    }

    /// Whose work it holds, while busy, parked or bound.
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            WorkerState::Busy(holder)
            | WorkerState::Parked { holder, .. }
            | WorkerState::Bound { holder, .. } => Some(holder),
            _ => None,
        }
    }

    /// The name `/health` shows.
    pub fn as_str(&self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Ready { .. } => "ready",
            WorkerState::Busy(_) => "busy",
            WorkerState::Parked { .. } => "parked",
            WorkerState::Bound { .. } => "bound",
            WorkerState::Clearing { .. } => "clearing",
            WorkerState::Stopping | WorkerState::Exited(_) => "stopping",
        }
    }
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
