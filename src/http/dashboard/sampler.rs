//! Turns the pool's state into events while an admin listens: once a
//! second it reads the dispatcher's health snapshot (the same one `/health`
//! serves) and publishes what changed — `workers` when a worker's state,
//! process or job count moved, `accounts` when an account's status or
//! limit did, `pool` when the queue or job counters did — and every two
//! seconds the batches whose counts moved. Sampling the snapshot rather
//! than hooking the dispatcher keeps the pool's code free of the
//! dashboard; a change shorter than a second between samples is missed,
//! which a person watching a page does not notice. It stops when the last
//! stream closes.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web;
use serde_json::{json, Value};

use super::batches::{batch_json, newest};
use crate::dispatch::health::Health;
use crate::dispatch::messages::GetHealth;
use crate::http::AppState;

const EVERY: Duration = Duration::from_secs(1);
/// Batches are read from the store every this many samples.
const BATCHES_EVERY: u32 = 2;

/// Starts the sampler unless it runs already.
pub fn ensure_running(state: &web::Data<AppState>) {
    if !state.events.start_sampling() {
        return;
    }
    let state = state.clone();
    actix_rt::spawn(async move {
        let mut last = Last::default();
        let mut tick = 0u32;
        while state.events.has_listeners() && !state.is_draining() {
            if let Ok(health) = state.dispatcher.send(GetHealth).await {
                last.publish_health(&state, &health);
            }
            if tick.is_multiple_of(BATCHES_EVERY) {
                if let Ok(batches) = newest(&state).await {
                    for (owner, batch) in batches {
                        let counts = (batch.counts, batch.ended_at.is_some());
                        if last.batches.insert(batch.id.clone(), counts) != Some(counts) {
                            state
                                .events
                                .publish("batch", &batch_json(&state, &owner, &batch));
                        }
                    }
                }
            }
            tick = tick.wrapping_add(1);
            tokio::time::sleep(EVERY).await;
        }
        state.events.sampler_stopped();
        // A stream opened just as the loop ended would have no sampler.
        if state.events.has_listeners() && !state.is_draining() {
            ensure_running(&state);
        }
    });
}

/// What the last sample published, to publish only changes.
#[derive(Default)]
struct Last {
    workers: Option<Value>,
    accounts: Option<Value>,
    pool: Option<Value>,
    batches: HashMap<String, (crate::batches::store::Counts, bool)>,
}

impl Last {
    fn publish_health(&mut self, state: &AppState, health: &Health) {
        // RSS wanders by the kilobyte: a worker's figure alone is no change.
        let workers_key = json!(health
            .workers
            .items
            .iter()
            .map(|w| (w.id, w.pid, w.state, w.jobs))
            .collect::<Vec<_>>());
        if changed(&mut self.workers, workers_key) {
            state.events.publish("workers", &health.workers);
        }
        let accounts = json!(health.accounts);
        if changed(&mut self.accounts, accounts) {
            state.events.publish("accounts", &health.accounts);
        }
        let pool = json!({
            "status": health.status,
            "reason": health.reason,
            "queue": health.queue,
            "jobs": health.jobs,
            "restarts": health.restarts,
            "recycles": health.recycles,
        });
        if changed(&mut self.pool, pool.clone()) {
            state.events.publish("pool", &pool);
        }
    }
}

/// Stores `now` in `last`; true if it differs from what was there.
fn changed(last: &mut Option<Value>, now: Value) -> bool {
    if last.as_ref() == Some(&now) {
        return false;
    }
    *last = Some(now);
    true
}
