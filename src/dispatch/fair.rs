//! Fair share of free workers among the keys whose jobs wait: the next job
//! to try is the oldest of the key with the fewest running jobs relative to
//! its weight (ties to the key whose oldest job came first), so one key's
//! burst cannot hold another key's single request behind it for more than
//! about one job's duration. Within a key, jobs keep their order.
//!
//! Pure: the dispatcher says what waits and what runs, and tells which
//! jobs it placed; this only orders.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// The order in which waiting jobs are offered a worker, one round.
#[derive(Debug)]
pub struct FairShare<K> {
    lines: Vec<Line>,
    by_key: HashMap<K, usize>,
}

/// One key's waiting jobs (queue positions, oldest first) and running count.
#[derive(Debug)]
struct Line {
    running: usize,
    weight: f64,
    waiting: VecDeque<usize>,
}

impl Line {
    fn load(&self) -> f64 {
        self.running as f64 / self.weight
    }
}

/// A job offered by [`FairShare::next_offer`]: its queue position and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub position: usize,
    line: usize,
}

impl<K: Eq + Hash> FairShare<K> {
    /// A round over `waiting` (each job's key and weight, in queue order),
    /// where `running(key)` jobs of each key already hold a worker. A
    /// weight not above zero counts as 1.
    pub fn new(waiting: impl IntoIterator<Item = (K, f64)>, running: impl Fn(&K) -> usize) -> Self {
        let mut share = Self {
            lines: Vec::new(),
            by_key: HashMap::new(),
        };
        for (position, (key, weight)) in waiting.into_iter().enumerate() {
            let line = match share.by_key.get(&key) {
                Some(&line) => line,
                None => {
                    let weight = if weight > 0.0 { weight } else { 1.0 };
                    share.lines.push(Line {
                        running: running(&key),
                        weight,
                        waiting: VecDeque::new(),
                    });
                    share.by_key.insert(key, share.lines.len() - 1);
                    share.lines.len() - 1
                }
            };
            share.lines[line].waiting.push_back(position);
        }
        share
    }

    /// The next job to offer a worker: the oldest of the least loaded key.
    /// Each job is offered once a round.
    pub fn next_offer(&mut self) -> Option<Offer> {
        let line = self
            .lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.waiting.front().map(|&head| (i, l.load(), head)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.2.cmp(&b.2)))?
            .0;
        let position = self.lines[line].waiting.pop_front()?;
        Some(Offer { position, line })
    }

    /// The offered job got a worker: its key runs one more.
    pub fn placed(&mut self, offer: Offer) {
        self.lines[offer.line].running += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions in the order offered, when every offer is placed.
    fn order(waiting: &[(&'static str, f64)], running: &[(&str, usize)]) -> Vec<usize> {
        let mut share = FairShare::new(waiting.iter().copied(), |k| {
            running.iter().find(|(r, _)| r == k).map_or(0, |(_, n)| *n)
        });
        std::iter::from_fn(|| {
            let offer = share.next_offer()?;
            share.placed(offer);
            Some(offer.position)
        })
        .collect()
    }

    #[test]
    fn one_key_keeps_its_order() {
        let a = ("a", 1.0);
        assert_eq!(order(&[a, a, a], &[("a", 5)]), [0, 1, 2]);
    }

    #[test]
    fn a_lone_request_goes_before_a_burst_of_another_key() {
        // Key a holds both workers and queued 18 more; b's one request came
        // last and is offered first.
        let mut waiting = vec![("a", 1.0); 18];
        waiting.push(("b", 1.0));
        let order = order(&waiting, &[("a", 2)]);
        assert_eq!(order[0], 18);
        assert_eq!(&order[1..], (0..18).collect::<Vec<_>>());
    }

    #[test]
    fn keys_alternate_by_running_jobs_and_ties_go_to_the_older() {
        let (a, b) = (("a", 1.0), ("b", 1.0));
        assert_eq!(order(&[a, a, b, b], &[]), [0, 2, 1, 3]);
        assert_eq!(order(&[a, a, b, b], &[("a", 1)]), [2, 0, 3, 1]);
    }

    #[test]
    fn weights_scale_the_share() {
        // b weighs 2: it runs two jobs for each of a's.
        let (a, b) = (("a", 1.0), ("b", 2.0));
        let got = order(&[a, a, a, b, b, b, b, b, b], &[]);
        let keys: String = got.iter().map(|&p| if p < 3 { 'a' } else { 'b' }).collect();
        assert_eq!(keys, "abbabbabb");
        // A weight of zero or less counts as 1.
        assert_eq!(
            order(&[("a", 0.0), ("b", -3.0), ("a", 0.0)], &[]),
            [0, 1, 2]
        );
    }

    #[test]
    fn a_job_not_placed_leaves_its_key_as_loaded() {
        let (a, b) = (("a", 1.0), ("b", 1.0));
        let mut share = FairShare::new([a, a, b], |_| 0);
        let first = share.next_offer().unwrap();
        assert_eq!(first.position, 0);
        // Not placed (no worker fits it): a is still the least loaded and
        // older, so its next job is offered before b's.
        assert_eq!(share.next_offer().unwrap().position, 1);
        assert_eq!(share.next_offer().unwrap().position, 2);
        assert_eq!(share.next_offer(), None);
    }
}
