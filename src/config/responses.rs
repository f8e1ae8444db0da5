//! `[responses]`: stored responses of the OpenAI Responses API (`store`,
//! `previous_response_id`, `GET /v1/responses/{id}`), kept in the store.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How many stored responses are kept, and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseSettings {
    /// Most stored responses kept; beyond it the oldest are dropped
    /// (0 = store none).
    pub max_stored: usize,
    /// A stored response is dropped this long after it was created.
    pub ttl_secs: u64,
    /// Most background responses (`background: true`) unfinished at once;
    /// beyond it a new one is refused with 429. They run on spare capacity
    /// only, like message batches.
    pub max_background: usize,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        Self {
            max_stored: 1000,
            ttl_secs: 24 * 60 * 60,
            max_background: 64,
        }
    }
}

impl ResponseSettings {
    /// `ttl_secs` as a [`Duration`].
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }
}
