//! `[tools]`: caller-defined tools, whose calls park a turn until the
//! caller sends the results.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Caller-defined tools (`tools` in a request).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolSettings {
    /// How long a turn parked on the caller's tool calls waits for the
    /// caller's results before it is abandoned and the worker cleared.
    pub park_timeout_secs: u64,
    /// How many turns parked on tool calls one API key may hold at once;
    /// parking one more releases that key's oldest (0: no limit). Parked
    /// turns hold a worker each.
    pub max_parked_per_key: usize,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self {
            park_timeout_secs: 300,
            max_parked_per_key: 4,
        }
    }
}

impl ToolSettings {
    /// `park_timeout_secs` as a [`Duration`].
    pub fn park_timeout(&self) -> Duration {
        Duration::from_secs(self.park_timeout_secs)
    }
}
