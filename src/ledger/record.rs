//! One row of the ledger: a request as the audit log keeps it.

use serde::Serialize;

use crate::job::Usage;

/// Key name of requests on a daemon without keys.
pub const ANONYMOUS: &str = "anonymous";
/// Key name of requests that presented no valid key (refused with 401, or
/// on a route that needs none).
pub const NO_KEY: &str = "(none)";

/// The name an unnamed key (`server.api_keys`, `api_keys_file`) goes by:
/// `key-` and the first 8 hex digits of its digest (the batch owner / scope
/// digest), so the name says nothing of the secret.
pub fn unnamed_key(digest: &str) -> String {
    format!("key-{}", digest.get(..8).unwrap_or(digest))
}

/// One request, recorded once its response is done.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Record {
    /// When the request arrived, in Unix milliseconds.
    pub at_ms: i64,
    pub request_id: String,
    /// The key's name (see [`unnamed_key`], [`ANONYMOUS`], [`NO_KEY`]).
    pub key: String,
    pub method: String,
    /// The request's path.
    pub route: String,
    /// `anthropic`, `openai`, `responses`, or none for other routes.
    pub dialect: Option<String>,
    /// The model the job was asked to run (after alias mapping).
    pub model_asked: Option<String>,
    /// The model the upstream said answered.
    pub model_served: Option<String>,
    /// The `[[accounts]]` name of the account that ran the job.
    pub account: Option<String>,
    pub worker: Option<u64>,
    /// The node that answered.
    pub node: String,
    pub status: u16,
    /// The error's type in the Anthropic vocabulary (`rate_limit_error`, …).
    pub error_type: Option<String>,
    pub usage: Usage,
    /// From admission to a worker taking the job.
    pub queue_ms: Option<u64>,
    /// From arrival to the first content (the whole answer when not streamed).
    pub ttft_ms: Option<u64>,
    /// From arrival to the end of the response body.
    pub duration_ms: u64,
    pub stream: bool,
    /// The batch, for a message batch's request.
    pub batch_id: Option<String>,
    /// The client's address: the peer, or what a trusted proxy forwarded.
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// Request body and answer text, only with `ledger.record_content`.
    pub content: Option<String>,
}

impl Record {
    /// Whether the request failed (status 400 and above).
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }

    /// When its response ended, in Unix milliseconds: the instant its
    /// tokens count against the key's windows.
    pub fn done_ms(&self) -> i64 {
        self.at_ms
            .saturating_add(i64::try_from(self.duration_ms).unwrap_or(i64::MAX))
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    to_ms(std::time::SystemTime::now())
}

/// `at` in Unix milliseconds (0 before the epoch).
pub fn to_ms(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
