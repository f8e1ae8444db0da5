//! Messages a worker actor accepts.

use std::time::Duration;

use actix::Message;

use crate::job::Job;

/// Run this job. Sent by the dispatcher only to a worker it believes idle
/// and able to take the job's system prompt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunJob(pub Job);

/// Stop the process (stdin EOF, then signals after `grace`) and the actor.
/// The worker reports `Exited` once the process is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopWorker {
    pub grace: Duration,
}

/// Give up the conversation this worker is bound to: clear it, then report
/// `Idle`. Ignored unless the worker is still bound.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unbind;

/// Give up the turn parked on the caller's tool calls, for other work:
/// interrupt it, clear the conversation, then report `Idle`. Ignored unless
/// the worker is still parked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleasePark;
