//! `[responses]`: stored responses of the OpenAI Responses API (`store`,
//! `previous_response_id`, `GET /v1/responses/{id}`), kept in the store.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How many stored responses are kept, and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseSettings {
    /// Most stored responses kept per API key; beyond it that key's
    /// oldest are dropped, never another key's (0 = store none).
    pub max_stored: usize,
    /// A stored response is dropped this long after it was created.
    pub ttl_secs: u64,
    /// Most background responses (`background: true`) unfinished at once;
    /// beyond it a new one is refused with 429. They run on spare capacity
    /// only, like message batches.
    pub max_background: usize,
    /// While the store's writes fail (a full disk), acknowledged responses
    /// wait in memory, readable, until written; past this many MiB of them
    /// new responses are answered `store: false` (0 = none wait beyond the
    /// first failed one).
    pub max_unwritten_mb: u64,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        Self {
            max_stored: 1000,
            ttl_secs: 24 * 60 * 60,
            max_background: 64,
            max_unwritten_mb: 64,
        }
    }
}

impl ResponseSettings {
    /// `ttl_secs` as a [`Duration`].
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    /// `max_unwritten_mb` in bytes.
    pub fn max_unwritten_bytes(&self) -> u64 {
        self.max_unwritten_mb.saturating_mul(1024 * 1024)
    }
}
