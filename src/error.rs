//! Why a job did not complete, named by what a caller can act on. The HTTP
//! layer maps each variant to a status and to each dialect's error shape in
//! one place (`http::error`).

use std::time::Duration;

/// What `Retry-After` says to a continuation whose parked turn was released:
/// its retry is served from history, as soon as a worker is free.
const PARK_RELEASED_RETRY_AFTER: Duration = Duration::from_secs(1);
/// What `Retry-After` says while no worker can run.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(10);

/// What `Retry-After` says after the upstream answered 529: it names no
/// time, and the CLI has already retried with backoff (`claude.max_retries`).
const UPSTREAM_OVERLOADED_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A job that did not produce a completion.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// The queue in front of the pool is full; try again shortly.
    #[error("the pool is overloaded: {queued} requests are already waiting")]
    QueueFull {
        queued: usize,
        retry_after: Duration,
    },
    /// The job waited for a worker longer than the queue timeout.
    #[error("no worker became free within {waited:?}")]
    QueueTimeout {
        waited: Duration,
        retry_after: Duration,
    },
    /// The daemon is shutting down and takes no new work.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// No worker can run at all (e.g. the CLI keeps failing to start).
    #[error("no worker is available: {0}")]
    Unavailable(String),
    /// The worker's CLI process died while running the job.
    #[error("the worker running this request exited unexpectedly: {0}")]
    WorkerCrashed(String),
    /// The job ran past a time limit (whole job, or silence from the CLI).
    #[error("{0}")]
    Timeout(String),
    /// The upstream Messages API answered with an error the CLI gave up on.
    /// `status` is the upstream HTTP status, absent for a network timeout.
    #[error("upstream error{}: {message}", status.map(|s| format!(" {s}")).unwrap_or_default())]
    Upstream {
        status: Option<u16>,
        message: String,
    },
    /// The worker has no usable Claude credentials: none at all (the CLI is
    /// not logged in) or rejected upstream (401/403). The daemon's
    /// configuration is at fault, not the client's request.
    #[error(
        "the workers' Claude credentials are missing or were rejected ({0}): log in as the \
         daemon's account (`claude login`, with the same CLAUDE_CONFIG_DIR) or set \
         ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN in its environment, then restart it; \
         see docs/operations.md, Credentials"
    )]
    Credentials(String),
    /// The connection to the upstream failed or broke off mid-answer (no
    /// HTTP status, and not a timeout): what the CLI said.
    #[error("the connection to the upstream API failed: {0}")]
    UpstreamBroken(String),
    /// The turn ended with an error the CLI reported (not an API status).
    #[error("the model turn failed: {0}")]
    TurnFailed(String),
    /// The request continues a turn parked on tool calls that the pool gave
    /// up for other work; sent again, it is answered from its history.
    #[error(
        "the turn waiting for these tool results was released to make room for other work \
         (every worker was busy, or this API key held more than tools.max_parked_per_key \
         parked turns); send the request again: it is then answered from the conversation's \
         history"
    )]
    ParkReleased,
    /// Every account of the pool is rate-limited; the soonest limit ends
    /// after `retry_after`.
    #[error("every account of the pool is rate-limited; retry in {}s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
}

impl JobError {
    /// Seconds a client should wait before retrying, where that is meaningful.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            JobError::QueueFull { retry_after, .. }
            | JobError::QueueTimeout { retry_after, .. }
            | JobError::RateLimited { retry_after } => Some(*retry_after),
            // A degraded pool keeps retrying its workers with backoff; a
            // client may come back later rather than at once.
            JobError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            JobError::ParkReleased => Some(PARK_RELEASED_RETRY_AFTER),
            JobError::Upstream {
                status: Some(529), ..
            } => Some(UPSTREAM_OVERLOADED_RETRY_AFTER),
            _ => None,
        }
    }
}
