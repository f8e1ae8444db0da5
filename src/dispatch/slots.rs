//! The pool's workers as it knows them: one [`Slot`] per worker, holding
//! the state the worker last reported (or that the pool just asked of it),
//! since when, and which workers are stopping for good. Ids are handed out
//! here. What a worker is chosen for is the pool's (`routing`, `room`,
//! `blank`); this only keeps and finds.

use std::collections::btree_map;
use std::collections::BTreeMap;

use tokio::time::Instant;

use super::accounts::AccountKey;
use crate::worker::report::WorkerState;
use crate::worker::{WorkerId, WorkerKind};

/// Why a stopping worker is not replaced when its process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leaving {
    /// Its account needs fewer workers.
    Shrink,
    /// Its replacement was spawned when it was retired (see `room`).
    Replaced,
}

/// The pool's view of one worker.
#[derive(Debug)]
pub(super) struct Slot {
    pub kind: WorkerKind,
    /// The account whose credentials the worker runs with.
    pub account: AccountKey,
    /// Set when the worker is retired to make room for another kind.
    pub replace_with: Option<WorkerKind>,
    /// Where the worker stands, as it last reported (or as the pool just
    /// asked of it: see [`WorkerState`]).
    pub state: WorkerState,
    /// Since when it has been in `state`: how long a worker has been free,
    /// bound or parked, for choosing the least recently used.
    pub since: Instant,
    pub pid: u32,
    pub jobs: u64,
    /// An agent worker's tenant: the scope of the first job it ran. What
    /// that job's tools left (workspace, config directory with the shell
    /// snapshot every Bash command sources, `/tmp`, home) stays with the
    /// worker, so it never runs a job of another scope (see `pick`): such a
    /// job gets a fresh worker, the pinned one being replaced when idle.
    pub tenant: Option<String>,
    /// When it finished booting.
    pub booted_at: Option<Instant>,
}

/// Every worker of the pool, by id, and those stopping for good.
#[derive(Debug)]
pub(super) struct Slots {
    by_id: BTreeMap<WorkerId, Slot>,
    /// Workers stopping for good: not replaced when their process exits.
    leaving: BTreeMap<WorkerId, Leaving>,
    next_id: WorkerId,
}

impl Default for Slots {
    fn default() -> Self {
        Self {
            by_id: BTreeMap::new(),
            leaving: BTreeMap::new(),
            next_id: 1,
        }
    }
}

impl Slots {
    /// A new worker of `kind` on `account`, starting at `now`: its id.
    pub fn add(&mut self, kind: WorkerKind, account: AccountKey, now: Instant) -> WorkerId {
        let id = self.next_id;
        self.next_id += 1;
        let slot = Slot {
            kind,
            account,
            replace_with: None,
            state: WorkerState::Starting,
            since: now,
            pid: 0,
            jobs: 0,
            tenant: None,
            booted_at: None,
        };
        self.by_id.insert(id, slot);
        id
    }

    /// Worker `id` is gone: its slot, and why it was leaving if it was.
    pub fn remove(&mut self, id: WorkerId) -> Option<(Slot, Option<Leaving>)> {
        let slot = self.by_id.remove(&id)?;
        Some((slot, self.leaving.remove(&id)))
    }

    pub fn get(&self, id: &WorkerId) -> Option<&Slot> {
        self.by_id.get(id)
    }

    pub fn get_mut(&mut self, id: &WorkerId) -> Option<&mut Slot> {
        self.by_id.get_mut(id)
    }

    pub fn iter(&self) -> btree_map::Iter<'_, WorkerId, Slot> {
        self.by_id.iter()
    }

    pub fn values(&self) -> btree_map::Values<'_, WorkerId, Slot> {
        self.by_id.values()
    }

    pub fn keys(&self) -> btree_map::Keys<'_, WorkerId, Slot> {
        self.by_id.keys()
    }

    /// Worker `id` is now in `state` (as the pool asked of it), since `now`.
    pub fn set_state(&mut self, id: WorkerId, state: WorkerState, now: Instant) {
        if let Some(slot) = self.by_id.get_mut(&id) {
            slot.state = state;
            slot.since = now;
        }
    }

    /// How many workers are in a state `matches` accepts.
    pub fn count(&self, matches: impl Fn(&WorkerState) -> bool) -> usize {
        self.by_id.values().filter(|s| matches(&s.state)).count()
    }

    /// Worker `id` stops for good (`why`): its exit is not replaced.
    pub fn leave(&mut self, id: WorkerId, why: Leaving) {
        self.leaving.insert(id, why);
    }

    /// Worker `id` is no longer leaving for good.
    pub fn stay(&mut self, id: WorkerId) {
        self.leaving.remove(&id);
    }

    pub fn is_leaving(&self, id: WorkerId) -> bool {
        self.leaving.contains_key(&id)
    }

    /// How many workers are leaving for good because of `why`.
    pub fn leaving_for(&self, why: Leaving) -> usize {
        self.leaving.values().filter(|w| **w == why).count()
    }

    /// The workers that stay (all but those leaving for good), of `account`
    /// or (`None`) of every account.
    pub fn staying(&self, account: Option<AccountKey>) -> usize {
        self.by_id
            .iter()
            .filter(|(id, _)| !self.leaving.contains_key(id))
            .filter(|(_, s)| account.is_none_or(|a| s.account == a))
            .count()
    }
}

impl std::ops::Index<&WorkerId> for Slots {
    type Output = Slot;

    fn index(&self, id: &WorkerId) -> &Slot {
        &self.by_id[id]
    }
}

impl<'a> IntoIterator for &'a Slots {
    type Item = (&'a WorkerId, &'a Slot);
    type IntoIter = btree_map::Iter<'a, WorkerId, Slot>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_id.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn workers_get_new_ids_and_start_starting() {
        let t0 = Instant::now();
        let mut slots = Slots::default();
        let a = slots.add(WorkerKind::Plain, 1, t0);
        let b = slots.add(WorkerKind::Agent, 2, t0);
        assert_eq!((a, b), (1, 2));
        assert_eq!(slots[&a].state, WorkerState::Starting);
        assert_eq!(slots[&b].account, 2);
        slots.remove(a);
        assert_eq!(
            slots.add(WorkerKind::Plain, 1, t0),
            3,
            "ids are never reused"
        );
        assert_eq!(slots.keys().count(), 2);
    }

    #[test]
    fn a_state_set_by_the_pool_starts_its_clock() {
        let t0 = Instant::now();
        let mut slots = Slots::default();
        let id = slots.add(WorkerKind::Plain, 1, t0);
        let later = t0 + Duration::from_secs(3);
        slots.set_state(id, WorkerState::Stopping, later);
        assert_eq!(slots[&id].state, WorkerState::Stopping);
        assert_eq!(slots[&id].since, later);
        assert_eq!(slots.count(|s| *s == WorkerState::Stopping), 1);
        assert_eq!(slots.count(|s| *s == WorkerState::Starting), 0);
        // Unknown workers are ignored.
        slots.set_state(99, WorkerState::Stopping, later);
        assert_eq!(slots.keys().count(), 1);
    }

    #[test]
    fn leaving_workers_do_not_stay_and_say_why_when_they_go() {
        let t0 = Instant::now();
        let mut slots = Slots::default();
        let a = slots.add(WorkerKind::Plain, 1, t0);
        let b = slots.add(WorkerKind::Plain, 1, t0);
        let c = slots.add(WorkerKind::Plain, 2, t0);
        slots.leave(a, Leaving::Shrink);
        slots.leave(b, Leaving::Replaced);
        assert!(slots.is_leaving(a) && !slots.is_leaving(c));
        assert_eq!(slots.staying(None), 1);
        assert_eq!(slots.staying(Some(1)), 0);
        assert_eq!(slots.staying(Some(2)), 1);
        assert_eq!(slots.leaving_for(Leaving::Replaced), 1);
        slots.stay(b);
        assert_eq!(slots.staying(Some(1)), 1);
        let (slot, why) = slots.remove(a).unwrap();
        assert_eq!((slot.account, why), (1, Some(Leaving::Shrink)));
        assert!(!slots.is_leaving(a), "forgotten with the worker");
        assert!(slots.remove(a).is_none());
        assert_eq!(slots.remove(c).map(|(_, why)| why), Some(None));
    }
}
