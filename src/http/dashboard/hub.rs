//! The admins' event hub: facts the daemon learns (a request's ledger row,
//! a worker's state, an account's status, a batch's progress) published
//! once into a bounded broadcast channel that every `/admin/events` stream
//! reads. Publishing never waits: a stream that falls more than
//! [`CAPACITY`] events behind skips the ones it missed (and is told so),
//! so a slow browser can never hold up a request or the pool.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use super::tickets::Tickets;

/// Events a stream may fall behind before it skips.
pub const CAPACITY: usize = 1024;

/// One event as the streams send it: its number, its SSE event name and
/// its JSON text (serialized once, whatever the number of streams).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: u64,
    pub kind: &'static str,
    pub data: Arc<str>,
}

/// Shared by the handlers (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Event>,
    next_id: AtomicU64,
    /// Tells this run of the daemon from the previous one in event ids, so
    /// that a page reconnecting after a restart knows to reload everything.
    boot: String,
    /// Whether the sampler (`sampler.rs`) runs: only while someone listens.
    sampling: AtomicBool,
    pub(super) tickets: Tickets,
}

impl Default for Hub {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        let boot = uuid::Uuid::new_v4().simple().to_string();
        Self {
            inner: Arc::new(Inner {
                sender,
                next_id: AtomicU64::new(1),
                boot: boot[..8].to_string(),
                sampling: AtomicBool::new(false),
                tickets: Tickets::default(),
            }),
        }
    }
}

impl Hub {
    /// Sends `data` as a `kind` event to every stream open now; nothing
    /// happens (and nothing is serialized) while none is.
    pub fn publish(&self, kind: &'static str, data: &impl Serialize) {
        if self.inner.sender.receiver_count() == 0 {
            return;
        }
        let Ok(text) = serde_json::to_string(data) else {
            return;
        };
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self.inner.sender.send(Event {
            id,
            kind,
            data: text.into(),
        });
    }

    /// Publishes each row `ledger` records as a `request` event (without
    /// recorded content): HTTP requests as their responses end, batch
    /// requests as they finish.
    pub fn watch(&self, ledger: &crate::ledger::Ledger) {
        let hub = self.clone();
        ledger.observe(move |row| {
            if hub.has_listeners() {
                let shown = crate::ledger::Record {
                    content: None,
                    ..row.clone()
                };
                hub.publish("request", &shown);
            }
        });
    }

    /// A new stream's receiver: it sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.sender.subscribe()
    }

    /// Whether any stream is open.
    pub fn has_listeners(&self) -> bool {
        self.inner.sender.receiver_count() > 0
    }

    /// This run's mark in event ids (`<boot>-<n>`).
    pub fn boot(&self) -> &str {
        &self.inner.boot
    }

    /// The one-time tickets that open a stream.
    pub fn tickets(&self) -> &Tickets {
        &self.inner.tickets
    }

    /// Claims the sampler's place: true for the one caller that should
    /// start it, until [`Hub::sampler_stopped`].
    pub(super) fn start_sampling(&self) -> bool {
        !self.inner.sampling.swap(true, Ordering::AcqRel)
    }

    pub(super) fn sampler_stopped(&self) {
        self.inner.sampling.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lagging_receiver_skips_and_publishing_never_waits() {
        let hub = Hub::default();
        hub.publish("nobody", &1); // no receiver: dropped, no id used
        let mut slow = hub.subscribe();
        for n in 0..CAPACITY + 10 {
            hub.publish("n", &n);
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(skipped)) => assert_eq!(skipped, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
        let next = slow.recv().await.unwrap();
        assert_eq!(&*next.data, "10");
        assert_eq!(next.id, 11, "ids count published events only");
    }
}
