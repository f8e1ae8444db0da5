//! Reloaded settings (SIGHUP) in the dispatcher: new limits and timeouts for
//! it and every worker, and the pool grown or shrunk to `pool.size`.
//!
//! Growing spawns workers at once. Shrinking stops idle workers only —
//! ready ones first, then bound ones, least recently used first — and never
//! one that is running, parked on tool calls, or booting; the rest of the
//! surplus goes as workers become idle ([`Dispatcher::trim_surplus`] runs
//! after every dispatch). Jobs in flight are never touched.

use std::time::Instant;

use actix::prelude::*;

use super::messages::Reconfigure;
use super::{Dispatcher, SlotState, STOP_GRACE};
use crate::worker::messages::{Reconfigure as ReconfigureWorker, StopWorker};
use crate::worker::WorkerId;

impl Dispatcher {
    /// Workers the pool has or will have: all but those stopping for good,
    /// plus respawns waiting out a backoff.
    fn planned_workers(&self) -> usize {
        self.workers.len() - self.shrinking.len() + self.pending_spawns
    }

    /// Stops idle workers beyond `pool.size` (see the module docs).
    pub(super) fn trim_surplus(&mut self) {
        let surplus = self
            .planned_workers()
            .saturating_sub(self.settings.pool.size);
        if surplus == 0 || self.draining {
            return;
        }
        // Ready before bound; bound ones idle longest first.
        let mut idle: Vec<(u8, Option<Instant>, WorkerId)> = self
            .workers
            .iter()
            .filter_map(|(id, slot)| match slot.state {
                SlotState::Ready => Some((0, None, *id)),
                SlotState::Bound => Some((1, slot.bound.map(|(_, since)| since), *id)),
                _ => None,
            })
            .collect();
        idle.sort();
        for (_, _, id) in idle.into_iter().take(surplus) {
            let Some(slot) = self.workers.get_mut(&id) else {
                continue;
            };
            slot.state = SlotState::Stopping;
            slot.bound = None;
            slot.addr.do_send(StopWorker { grace: STOP_GRACE });
            self.shrinking.insert(id);
            log::info!(
                "worker-{id} stopping: pool.size is now {}",
                self.settings.pool.size
            );
        }
    }
}

impl Handler<Reconfigure> for Dispatcher {
    type Result = ();

    fn handle(&mut self, Reconfigure(settings): Reconfigure, ctx: &mut Context<Self>) {
        self.settings = settings;
        for slot in self.workers.values() {
            slot.addr.do_send(ReconfigureWorker(self.settings.clone()));
        }
        if self.draining {
            return;
        }
        let size = self.settings.pool.size;
        if self.planned_workers() < size {
            log::info!(
                "pool grows from {} to {size} workers",
                self.planned_workers()
            );
        }
        while self.planned_workers() < size {
            let kind = self.default_kind();
            self.spawn_worker(ctx, kind);
        }
        // Also hands queued jobs to the new limits and trims a surplus.
        self.dispatch();
    }
}
