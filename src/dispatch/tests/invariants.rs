//! Property tests of the pool's invariants: random sequences of inputs
//! (jobs of a few system prompts and callers, workers finishing, binding,
//! booting, exiting, time passing, batch jobs), the invariants checked
//! after every step.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    /// A job with prompt `prompt` from caller `scope`.
    Submit { prompt: u8, scope: u8 },
    /// A background job with prompt `prompt`.
    Batch { prompt: u8 },
    /// The `nth` busy worker finishes; it stays bound or is cleared.
    Finish { nth: usize, bind: bool },
    /// The `nth` clearing worker is ready again.
    Cleared { nth: usize },
    /// The `nth` starting worker finished booting.
    Boot { nth: usize },
    /// The `nth` stopping worker exited.
    Exit { nth: usize },
    /// Time passes.
    Wait { ms: u64 },
    /// The client of the `nth` queued job stops listening.
    Leave { nth: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3, 0u8..2).prop_map(|(prompt, scope)| Step::Submit { prompt, scope }),
        1 => (0u8..3).prop_map(|prompt| Step::Batch { prompt }),
        3 => (0usize..4, any::<bool>()).prop_map(|(nth, bind)| Step::Finish { nth, bind }),
        2 => (0usize..4).prop_map(|nth| Step::Cleared { nth }),
        2 => (0usize..4).prop_map(|nth| Step::Boot { nth }),
        2 => (0usize..4).prop_map(|nth| Step::Exit { nth }),
        1 => (0u64..15_000).prop_map(|ms| Step::Wait { ms }),
        1 => (0usize..4).prop_map(|nth| Step::Leave { nth }),
    ]
}

/// The model of the workers: which hold a job (so must not get another).
/// A job handed out never had its client leave: `Leave` drops the client of
/// a queued job, which the pool is told of at once.
struct Model {
    h: Harness,
    /// Workers holding a job, from `Run` to the report that ends it.
    holding: BTreeSet<WorkerId>,
    /// Jobs submitted (interactive) and taken (batch).
    submitted: u64,
    /// Stops seen so far (of `h.stopped`).
    stops_seen: usize,
    max_queue: usize,
}

impl Model {
    fn new(size: usize, max_queue: usize, spares: usize) -> Self {
        // 2 stands for "auto".
        let spares = match spares {
            2 => "\"auto\"".to_string(),
            n => n.to_string(),
        };
        let toml = format!(
            "[pool]\nsize = {size}\nmax_queue = {max_queue}\nblank_spares = {spares}\nqueue_timeout_secs = 5\n"
        );
        let mut model = Self {
            h: Harness::new(&toml),
            holding: BTreeSet::new(),
            submitted: 0,
            stops_seen: 0,
            max_queue,
        };
        model.sync();
        model
    }

    /// Takes the jobs the pool handed out since the last step, checking
    /// that none went to a worker already holding one, and that no worker
    /// holding a job (running, or a parked turn) was stopped.
    fn sync(&mut self) {
        for id in &self.h.stopped[self.stops_seen..] {
            assert!(
                !self.holding.contains(id),
                "worker-{id} was stopped while holding a job"
            );
        }
        self.stops_seen = self.h.stopped.len();
        for (id, job) in std::mem::take(&mut self.h.running) {
            assert!(!job.is_abandoned(), "{} ran after its client left", job.id);
            assert!(
                self.holding.insert(id),
                "worker-{id} got {} while holding a job",
                job.id
            );
        }
    }

    /// The `nth` worker (wrapping) in a state `matches` accepts.
    fn nth(&self, nth: usize, matches: impl Fn(&WorkerState) -> bool) -> Option<WorkerId> {
        let ids: Vec<WorkerId> = self
            .h
            .pool
            .workers
            .iter()
            .filter(|(_, s)| matches(&s.state))
            .map(|(id, _)| *id)
            .collect();
        (!ids.is_empty()).then(|| ids[nth % ids.len()])
    }

    fn run(&mut self, step: &Step) {
        let prompt = |p: &u8| format!("prompt {p}");
        match step {
            Step::Submit { prompt: p, scope } => {
                let job = self.h.job(&prompt(p), &format!("key {scope}"));
                self.submitted += 1;
                if let Err(JobError::QueueFull { queued, .. }) = self.h.submit(job) {
                    assert!(
                        queued >= self.max_queue,
                        "refused with {queued} queued, below max_queue"
                    );
                }
            }
            Step::Batch { prompt: p } => {
                let mut job = self.h.job(&prompt(p), "batch");
                job.spec.background = true;
                if self.h.run_if_idle(job) {
                    self.submitted += 1;
                }
            }
            Step::Finish { nth, bind } => {
                let busy = |s: &WorkerState| matches!(s, WorkerState::Busy(_));
                if let Some(id) = self.nth(*nth, busy) {
                    if self.holding.remove(&id) {
                        if *bind {
                            self.h.finish_bound(id, id * 1000 + self.submitted);
                        } else {
                            self.h.finish(id);
                        }
                    }
                }
            }
            Step::Cleared { nth } => {
                let clearing = |s: &WorkerState| matches!(s, WorkerState::Clearing { .. });
                if let Some(id) = self.nth(*nth, clearing) {
                    let prompt = self.h.state(id).prompt().map(str::to_string);
                    self.h.report(id, WorkerState::Ready { prompt }, None);
                }
            }
            Step::Boot { nth } => {
                if let Some(id) = self.nth(*nth, |s| *s == WorkerState::Starting) {
                    self.h.boot(id);
                }
            }
            Step::Exit { nth } => {
                if let Some(id) = self.nth(*nth, |s| *s == WorkerState::Stopping) {
                    // A worker stopped mid-job fails that job.
                    let outcome = self.holding.remove(&id).then_some(Outcome::Failed);
                    let exited = WorkerState::Exited(ExitReason::Stopped);
                    self.h.report(id, exited, outcome);
                }
            }
            Step::Leave { nth } => {
                let queued: Vec<String> = self.h.pool.queue.jobs().map(|j| j.id.clone()).collect();
                if !queued.is_empty() {
                    self.h.client_leaves(&queued[nth % queued.len()]);
                }
            }
            Step::Wait { ms } => {
                self.h.advance(Duration::from_millis(*ms));
                self.h.tick();
            }
        }
        self.sync();
        self.check();
    }

    /// The invariants, after every step.
    fn check(&self) {
        let pool = &self.h.pool;
        // Counters add up: every job is answered, refused, waiting or held.
        let stats = &pool.stats;
        let accounted = stats.completed
            + stats.failed
            + stats.rejected
            + stats.abandoned
            + pool.queue.len() as u64
            + self.holding.len() as u64;
        assert_eq!(accounted, self.submitted, "{stats:?}");
        // A waiting job has no idle worker that could take it now or after
        // a `/clear` (issue 27): never one ready with its prompt; and unless
        // a worker clearing under its prompt is coming for it (tens of ms),
        // no blank one ready, and none bound with its prompt (cleared for it
        // instead of waiting for a boot or a job to end).
        let count = |matches: &dyn Fn(&WorkerState) -> bool| {
            pool.workers.values().filter(|s| matches(&s.state)).count()
        };
        for job in pool.queue.jobs() {
            let system = job.system.as_str();
            let ready_with = count(&|s| {
                *s == WorkerState::Ready {
                    prompt: Some(system.into()),
                }
            });
            assert_eq!(
                ready_with, 0,
                "{} waits beside a ready worker of its prompt",
                job.id
            );
            let waiting = pool.queue.jobs().filter(|j| j.system == system).count();
            let clearing = count(
                &|s| matches!(s, WorkerState::Clearing { prompt } if prompt.as_deref() == Some(system)),
            );
            if waiting > clearing {
                let blank = count(&|s| *s == WorkerState::Ready { prompt: None });
                let bound = count(
                    &|s| matches!(s, WorkerState::Bound { holder, .. } if holder.prompt == system),
                );
                assert_eq!(
                    (blank, bound),
                    (0, 0),
                    "{} waits uncovered: {:?}",
                    job.id,
                    pool.workers
                );
            }
        }
        // A job waits for a boot (or a job to end) only when no idle
        // worker could be made ready for it: while any worker sits idle,
        // every waiting job has a worker on its way (clearing, booting,
        // replacing one, or a respawn).
        let idle = count(&|s| matches!(s, WorkerState::Ready { .. } | WorkerState::Bound { .. }));
        if idle > 0 {
            let coming = pool
                .workers
                .iter()
                .filter(|(id, s)| match s.state {
                    WorkerState::Starting | WorkerState::Clearing { .. } => true,
                    WorkerState::Stopping => !pool.workers.is_leaving(**id),
                    _ => false,
                })
                .count()
                + pool.restarts.pending.len();
            assert!(
                pool.queue.len() <= coming,
                "{} jobs wait, {coming} workers on their way, beside an idle one: {:?}",
                pool.queue.len(),
                pool.workers
            );
        }
        // The blank-spare target is restored whatever took a spare: with
        // no job waiting, fewer blank workers than the target means no
        // worker has sat idle (ready with a prompt, or bound) for
        // `pool.spare_refill_idle_secs`,
        // or a retired prompt came back (refills hold back).
        let kind = WorkerKind::Plain;
        if pool.queue.is_empty()
            && !pool.spares.held_back
            && pool.blanks(kind) < pool.spare_target_for(kind)
        {
            let idle_for = pool.settings.pool.spare_refill_idle();
            let cold = pool.workers.values().any(|s| {
                matches!(
                    s.state,
                    WorkerState::Ready { prompt: Some(_) } | WorkerState::Bound { .. }
                ) && self.h.now.saturating_duration_since(s.since) >= idle_for
            });
            assert!(
                !cold,
                "a spare is missing beside a cold worker: {:?}",
                pool.workers
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_pools_invariants_hold_whatever_happens(
        size in 1usize..4,
        max_queue in 0usize..3,
        spares in 0usize..3,
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let mut model = Model::new(size, max_queue, spares);
        for step in &steps {
            model.run(step);
        }
    }
}
