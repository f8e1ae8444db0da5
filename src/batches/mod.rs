//! Message batches: requests submitted together, kept in the durable store,
//! and run by the [`runner`] as background jobs on the pool's spare
//! capacity; their results wait in the store until collected.
//!
//! - [`store`]: the tables, and creating, reading, canceling, deleting.
//! - [`queue`]: the runner's side: requests handed out, outcomes recorded,
//!   recovery, expiry, retention.
//! - [`runner`]: feeds queued requests to the dispatcher, records results,
//!   expires and archives.
//! - [`attribution`]: each request runs as the key that created its batch,
//!   and leaves its row in the usage ledger.

pub mod attribution;
pub mod queue;
pub mod runner;
pub mod store;

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

pub use runner::{Runner, RunnerHandle};

/// Now, as the store keeps times: Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A fresh batch id of node `node`, `msgbatch_<node>_…`: a load balancer
/// sends its later requests to the node whose store holds it.
pub fn new_id(node: &str) -> String {
    crate::ids::of_node("msgbatch_", node)
}

/// Whom a batch belongs to: a digest of the API key that created it (the
/// key itself is never stored), or the empty string on a keyless daemon,
/// which has one caller.
pub fn owner_of(key: Option<&str>) -> String {
    match key {
        None => String::new(),
        Some(key) => Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_digests_of_keys() {
        assert_eq!(owner_of(None), "");
        let a = owner_of(Some("key-a"));
        assert_eq!(a.len(), 64);
        assert_eq!(
            a,
            owner_of(Some("key-a")),
            "stable across calls and restarts"
        );
        assert_ne!(a, owner_of(Some("key-b")));
        assert!(!a.contains("key-a"));
        assert!(new_id("n1").starts_with("msgbatch_n1_"));
    }
}
