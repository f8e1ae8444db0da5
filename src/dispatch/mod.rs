//! The dispatcher: admission, the bounded queue, and the pool of worker
//! actors it owns.
//!
//! Pool contract: a job is checked out to a ready worker, the worker is
//! cleared (or retired) after the job and reports back, and a worker whose
//! process exits is replaced — at once when it was retired on purpose, after
//! a capped, doubling backoff when it failed. Jobs are never replayed.
//!
//! Two layers, as in the worker (`Session` and `Worker`):
//! - [`Pool`] decides, as a plain value: it takes typed inputs (a job
//!   arrived, a worker reported, clients left, time passed, new settings),
//!   each with the time it happened, and returns [`Effect`]s (spawn a
//!   worker, tell a worker to run a job and where it runs, clear, stop;
//!   refuse a job; wake me later), naming jobs by ticket. It holds no job,
//!   only each job's [`Order`] (what it decides by), and never reads the
//!   clock, spawns a process, sends a message, touches a file or reads or
//!   writes a job's channel, so its decisions are tested on made-up inputs
//!   (see `tests`).
//! - [`Dispatcher`] is the actor: it holds the jobs by ticket ([`HeldJobs`]),
//!   feeds the pool their orders and its messages with the time, tells it
//!   which queued jobs' clients left (it alone looks at their channels),
//!   reads the shared settings a reload published, and carries out the
//!   effects, resolving each ticket to its job.
//!
//! The pool's parts: `order` (a job as the pool sees it), `queue`
//! (waiting orders, the bound,
//! timeouts, rounds in the fair-share order of `fair`), `slots` (each
//! worker's reported state, ids, workers leaving), `routing` (which worker
//! gets which job), `room` (workers freed for waiting jobs), `blank` and
//! `spares` (blank spares for new system prompts, and how many), `parking`
//! (turns parked on a caller's tools), `accounts` (each account staffed,
//! failover; which account takes work is `crate::accounts`), `restarts`
//! (backoff, crash loops), `batch` (background jobs on idle capacity),
//! `reconfigure` (a reload), `health`.

mod accounts;
mod actor;
pub mod batch;
pub(crate) mod blank;
mod expiry;
pub mod fair;
pub mod health;
mod host_load;
pub mod messages;
mod order;
mod parking;
mod pool;
mod queue;
mod reconfigure;
mod reports;
mod restarts;
mod room;
mod routing;
mod slots;
mod spares;

#[cfg(test)]
mod tests;

pub use actor::Dispatcher;
pub use order::{HeldJobs, Order};
pub use pool::{Command, Effect, Pool};
