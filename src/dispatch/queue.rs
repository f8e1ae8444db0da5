//! The queue: jobs admitted and waiting for a worker, oldest first, as
//! [`Order`]s. Each job waits under the [`Ticket`] it was held under, by
//! which the pool and the actor name it (never by its channel). The queue owns its bound
//! (`pool.max_queue` plus the workers on their way), its timeouts, and the
//! rounds in which waiting jobs are offered workers in fair-share order
//! (see `fair`); which worker takes a job is the pool's choice.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::fair::{FairShare, Offer};
use super::order::Order;

/// Names a job held for the pool, from admission until it runs or is
/// answered (see `order`).
pub type Ticket = u64;

/// Jobs waiting for a worker, oldest first.
#[derive(Debug, Default)]
pub(super) struct Queue {
    waiting: VecDeque<Order>,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The waiting jobs, oldest first.
    pub fn jobs(&self) -> impl Iterator<Item = &Order> {
        self.waiting.iter()
    }

    /// A job joins at the back.
    pub fn push_back(&mut self, job: Order) -> Ticket {
        let ticket = job.ticket;
        self.waiting.push_back(job);
        ticket
    }

    /// A job handed back unanswered joins at the front: it was admitted
    /// before every job waiting.
    pub fn push_front(&mut self, job: Order) {
        self.waiting.push_front(job);
    }

    pub fn contains(&self, ticket: Ticket) -> bool {
        self.waiting.iter().any(|job| job.ticket == ticket)
    }

    /// Takes the job of `ticket` out, if it still waits.
    pub fn remove(&mut self, ticket: Ticket) -> Option<Order> {
        let at = self.waiting.iter().position(|job| job.ticket == ticket)?;
        self.waiting.remove(at)
    }

    /// Takes every job out, oldest first.
    pub fn take_all(&mut self) -> Vec<Order> {
        self.waiting.drain(..).collect()
    }

    /// Whether more jobs wait than may: `max_queue`, plus `room` workers
    /// free or on their way (a job waiting for one of those is not over the
    /// limit: that worker is capacity).
    pub fn is_over(&self, max_queue: usize, room: usize) -> bool {
        self.len() > max_queue + room
    }

    /// Takes out the jobs that have waited longer than `timeout` at `now`,
    /// each with how long it waited; the others keep their order.
    pub fn take_expired(&mut self, now: Instant, timeout: Duration) -> Vec<(Order, Duration)> {
        let mut expired = Vec::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for job in self.waiting.drain(..) {
            let waited = waited(&job, now);
            if waited > timeout {
                expired.push((job, waited));
            } else {
                kept.push_back(job);
            }
        }
        self.waiting = kept;
        expired
    }

    /// Starts a round in which every waiting job is offered a worker once,
    /// in fair-share order between keys (see `fair`), where `running(key)`
    /// jobs of each key already hold a worker. The jobs leave the queue
    /// for the round; [`Queue::end_round`] puts back those not placed.
    pub fn round(&mut self, running: impl Fn(&String) -> usize) -> Round {
        let jobs: Vec<Option<Order>> = self.waiting.drain(..).map(Some).collect();
        let share = FairShare::new(jobs.iter().flatten().map(share_of), running);
        Round { jobs, share }
    }

    /// Ends `round`: the jobs it did not place wait again, in their order.
    pub fn end_round(&mut self, round: Round) {
        debug_assert!(self.waiting.is_empty(), "nothing joins during a round");
        self.waiting = round.jobs.into_iter().flatten().collect();
    }
}

/// How long `job` has waited at `now` since it was admitted.
pub(super) fn waited(job: &Order, now: Instant) -> Duration {
    now.saturating_duration_since(job.admitted_at)
}

/// Whose share a job counts in, and that key's weight: the scope (a digest
/// of the client's key; one shared scope without keys) and the key's
/// `weight`.
fn share_of(job: &Order) -> (String, f64) {
    (job.scope.clone(), f64::from(job.weight))
}

/// One fair-share round over the queue (see [`Queue::round`]).
pub(super) struct Round {
    jobs: Vec<Option<Order>>,
    share: FairShare<String>,
}

impl Round {
    /// The next job to offer a worker, and the job itself.
    pub fn next(&mut self) -> Option<(Offer, &Order)> {
        loop {
            let offer = self.share.next_offer()?;
            if let Some(job) = &self.jobs[offer.position] {
                return Some((offer, job));
            }
        }
    }

    /// The offered job got a worker: it leaves the queue, and its key runs
    /// one more.
    pub fn place(&mut self, offer: Offer) -> Order {
        self.share.placed(offer);
        self.jobs[offer.position].take().expect("offered once")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::tests::spec;
    use crate::job::Job;

    fn job(id: &str, scope: &str, admitted: Instant) -> Order {
        let (mut job, _) = Job::new(id.into(), spec("s", scope));
        job.admitted_at = admitted.into_std();
        // Each job its own ticket, as `Held` hands them out.
        let ticket = id.bytes().fold(0, |t, b| t * 256 + Ticket::from(b));
        Order::of(ticket, &job)
    }

    fn ids(queue: &Queue) -> Vec<&str> {
        queue.jobs().map(|j| j.id.as_str()).collect()
    }

    #[test]
    fn tickets_name_jobs_and_a_job_run_again_goes_first() {
        let t0 = Instant::now();
        let mut queue = Queue::default();
        let a = queue.push_back(job("a", "", t0));
        let b = queue.push_back(job("b", "", t0));
        queue.push_front(job("again", "", t0));
        assert_eq!(ids(&queue), ["again", "a", "b"]);
        assert_eq!(queue.remove(a).map(|j| j.id), Some("a".into()));
        assert!(!queue.contains(a) && queue.contains(b));
        assert!(queue.remove(a).is_none(), "a ticket names one job once");
        assert_eq!(queue.take_all().len(), 2);
        assert!(queue.is_empty());
    }

    #[test]
    fn the_bound_is_max_queue_plus_the_room_coming() {
        let t0 = Instant::now();
        let mut queue = Queue::default();
        queue.push_back(job("a", "", t0));
        queue.push_back(job("b", "", t0));
        assert!(!queue.is_over(2, 0));
        assert!(queue.is_over(1, 0));
        assert!(!queue.is_over(1, 1), "a worker on its way is capacity");
        assert!(queue.is_over(0, 1));
    }

    #[test]
    fn jobs_expire_only_once_waited_longer_than_the_timeout() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        let mut queue = Queue::default();
        queue.push_back(job("old", "", t0));
        queue.push_back(job("new", "", t0 + Duration::from_secs(2)));
        queue.push_back(job("older", "", t0));
        assert!(queue.take_expired(t0 + timeout, timeout).is_empty());
        let expired = queue.take_expired(t0 + timeout + Duration::from_millis(1), timeout);
        let expired: Vec<(&str, Duration)> =
            expired.iter().map(|(j, w)| (j.id.as_str(), *w)).collect();
        let waited = timeout + Duration::from_millis(1);
        assert_eq!(expired, [("old", waited), ("older", waited)]);
        assert_eq!(ids(&queue), ["new"]);
    }

    #[test]
    fn a_round_offers_in_fair_order_and_keeps_the_queue_order_of_the_rest() {
        let t0 = Instant::now();
        let mut queue = Queue::default();
        for (id, scope) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("a3", "a")] {
            queue.push_back(job(id, scope, t0));
        }
        // Key a already runs a job: b's is offered first.
        let mut round = queue.round(|key| usize::from(key == "a"));
        let mut offered = Vec::new();
        while let Some((offer, job)) = round.next() {
            offered.push(job.id.clone());
            // Only b's job and a's second find a worker.
            if job.id == "b1" || job.id == "a2" {
                round.place(offer);
            }
        }
        assert_eq!(offered, ["b1", "a1", "a2", "a3"]);
        queue.end_round(round);
        assert_eq!(ids(&queue), ["a1", "a3"]);
    }
}
