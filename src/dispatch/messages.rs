//! Messages the dispatcher accepts from the HTTP front end and the daemon:
//! admission, health, shutdown, reloads. Workers report through one message
//! of their own, [`WorkerReport`](crate::worker::report::WorkerReport).

use actix::Message;

use super::health::Health;
use crate::error::JobError;
use crate::job::Job;

/// Admit a job: run it now, queue it, or refuse it at once.
#[derive(Message)]
#[rtype(result = "Result<(), JobError>")]
pub struct Submit(pub Job);

/// A client stopped waiting for its job (its receiver is closed): queued
/// jobs whose clients are gone leave the queue now, not at the next tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientLeft;

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

/// A reload (SIGHUP) published new settings to the shared copy: the
/// dispatcher reads them, and the pool is grown or shrunk to `pool.size`
/// (workers read their limits and timeouts from the shared copy
/// themselves). Jobs in flight run on; only idle workers are stopped to
/// shrink the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure;
