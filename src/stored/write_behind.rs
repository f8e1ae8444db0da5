//! Writes behind the request: what a finished response keeps — the stored
//! response ([`WriteBehind`]) and the items its conversation gains
//! ([`ConversationsBehind`]) — is handed to a writer thread of its own, so
//! no SQLite commit is part of a request's time or runs on an HTTP thread.
//! Until a write is committed it is held in memory and every read of the
//! same response or conversation sees it (read-your-writes). A write the
//! store refuses (a full disk) stays in memory, readable, and is retried
//! with a doubling pause; the store's health shows the failure.

use std::time::Duration;

mod conversations;
mod pending;
mod responses;

pub use conversations::ConversationsBehind;
pub use responses::WriteBehind;

/// The first pause before writing again after a failed write; it doubles
/// on each failure up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(250);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(10);
