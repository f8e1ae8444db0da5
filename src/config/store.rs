//! `[store]`: the durable SQLite store every feature that keeps state
//! across restarts shares (batches, stored responses, conversations, keys
//! made through the admin API, the usage ledger).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The store file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// The SQLite store. Unset: `batches.sqlite3` in `$STATE_DIRECTORY`
    /// (systemd's `StateDirectory=`), else in the working directory.
    /// `batches.store_path`, its old name, is still read.
    pub path: Option<PathBuf>,
}
