//! `[batches]`: the Message Batches API, run on the pool's spare capacity
//! (their store is `[store]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Message batches and the store file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// The old name of `store.path` (the store holds more than batches),
    /// still read, with a deprecation warning; never written back.
    #[serde(skip_serializing)]
    pub store_path: Option<PathBuf>,
    /// Most requests one batch may hold.
    pub max_requests: usize,
    /// Most workers batch jobs may hold at once; 0 = all but one of the
    /// pool (at least one).
    pub max_workers: usize,
    /// Results are removed this many days after their batch ended; the batch
    /// object stays until deleted.
    pub retention_days: u64,
    /// A batch's requests still queued this long after it was created
    /// expire (Anthropic's window: 24 hours).
    pub expiry_secs: u64,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            store_path: None,
            max_requests: 100_000,
            max_workers: 0,
            retention_days: 29,
            expiry_secs: 24 * 60 * 60,
        }
    }
}

impl BatchSettings {
    /// How many workers batch jobs may hold in a pool of `pool_size`.
    pub fn worker_cap(&self, pool_size: usize) -> usize {
        match self.max_workers {
            0 => pool_size.saturating_sub(1).max(1),
            n => n,
        }
    }

    /// `retention_days` as a [`Duration`].
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_days.saturating_mul(24 * 60 * 60))
    }

    /// `expiry_secs` as a [`Duration`].
    pub fn expiry(&self) -> Duration {
        Duration::from_secs(self.expiry_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_jobs_leave_one_worker_unless_told_otherwise() {
        let auto = BatchSettings::default();
        assert_eq!(auto.worker_cap(4), 3);
        assert_eq!(auto.worker_cap(1), 1, "a pool of one still runs batches");
        let fixed = BatchSettings {
            max_workers: 2,
            ..auto
        };
        assert_eq!(fixed.worker_cap(8), 2);
    }
}
