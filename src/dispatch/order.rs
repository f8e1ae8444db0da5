//! What the pool knows of a job: an [`Order`], the plain data its queue,
//! routing and accounts decide by, under the job's [`Ticket`]. The job
//! itself (its prompt, its channel) stays with the actor, in [`HeldJobs`], which
//! resolves the pool's effects by ticket: the pool never holds a channel.

use std::collections::HashMap;

use tokio::time::Instant;

use super::queue::Ticket;
use crate::job::Job;
use crate::worker::report::Holder;
use crate::worker::WorkerKind;

/// A job as the pool sees it.
#[derive(Debug, Clone)]
pub struct Order {
    /// Names the job between the pool and the actor.
    pub ticket: Ticket,
    /// The request id, for the log.
    pub id: String,
    /// The system prompt, empty for none.
    pub system: String,
    /// An agent job (it runs on an agent worker).
    pub agent: bool,
    /// A message batch's request (see `batch`).
    pub background: bool,
    /// Who sent it (a digest of the key; empty without keys).
    pub scope: String,
    /// The key a worker bound to its conversation's previous turn holds.
    pub conversation: Option<u64>,
    /// The tool calls whose results it carries, sorted; empty for none.
    pub tool_calls: Vec<String>,
    /// The accounts its key may use (empty: any).
    pub accounts: Vec<String>,
    /// Its key's fair-share weight.
    pub weight: u32,
    /// When it was admitted.
    pub admitted_at: Instant,
}

impl Order {
    /// The order for `job`, under `ticket`.
    pub fn of(ticket: Ticket, job: &Job) -> Self {
        let mut tool_calls: Vec<String> = job
            .spec
            .tool_results
            .iter()
            .map(|r| r.tool_use_id.clone())
            .collect();
        tool_calls.sort_unstable();
        Self {
            ticket,
            id: job.id.clone(),
            system: job.spec.system.clone(),
            agent: job.spec.agent,
            background: job.spec.background,
            scope: job.spec.scope.clone(),
            conversation: job.spec.conversation.as_ref().map(|c| c.lookup),
            tool_calls,
            accounts: job.caller.accounts.clone(),
            weight: job.caller.weight,
            admitted_at: Instant::from_std(job.admitted_at),
        }
    }

    /// Whether its key may use `account`.
    pub fn allows_account(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.iter().any(|a| a == account)
    }

    /// The kind of worker it runs on.
    pub fn kind(&self) -> WorkerKind {
        WorkerKind::for_job(self.agent)
    }

    /// What a worker running it reports holding.
    pub fn holder(&self) -> Holder {
        Holder {
            prompt: self.system.clone(),
            scope: self.scope.clone(),
            background: self.background,
        }
    }
}

/// The jobs the pool holds orders for, by ticket: kept by whoever feeds the
/// pool (the actor, the tests' harness) until an effect names them.
#[derive(Debug, Default)]
pub struct HeldJobs {
    jobs: HashMap<Ticket, Job>,
    last: Ticket,
}

impl HeldJobs {
    /// Keeps `job` under a new ticket; its order goes to the pool.
    pub fn hold(&mut self, job: Job) -> Order {
        self.last += 1;
        let order = Order::of(self.last, &job);
        self.jobs.insert(self.last, job);
        order
    }

    /// The job of `ticket`, which leaves (to run, or to be answered).
    pub fn take(&mut self, ticket: Ticket) -> Option<Job> {
        self.jobs.remove(&ticket)
    }

    /// Takes out the jobs whose clients stopped listening (their channels
    /// closed), and names them for [`super::Pool::clients_left`].
    pub fn take_departed(&mut self) -> Vec<Ticket> {
        let mut gone: Vec<Ticket> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.is_abandoned())
            .map(|(ticket, _)| *ticket)
            .collect();
        gone.sort_unstable();
        for ticket in &gone {
            self.jobs.remove(ticket);
        }
        gone
    }
}
