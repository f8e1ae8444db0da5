//! Stored responses (`store: true`, OpenAI's default): what
//! `GET /v1/responses/{id}`, its `input_items` and `previous_response_id`
//! read. Kept in the daemon's SQLite store, so they survive restarts;
//! bounded by count per API key (`responses.max_stored`, that key's oldest
//! dropped first, so one key cannot push out another's) and by age
//! (`responses.ttl_secs`), and scoped to the API key that created them.
//!
//! Each row holds the whole conversation before its own input, so a
//! response stays continuable however old the first response of its
//! conversation is.

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::OptionalExtension;
use serde_json::Value;

pub use crate::api::responses::kept::StoredResponse;
use crate::store::{Schema, Store, StoreError};

/// Where stored responses are kept.
pub trait ResponseStore: Send + Sync + Debug {
    /// Keeps `response`, replacing any with its id.
    fn put(&self, response: &StoredResponse) -> Result<(), StoreError>;
    /// The response `id` if it exists, is not expired and belongs to `scope`.
    fn get(&self, scope: &str, id: &str) -> Result<Option<StoredResponse>, StoreError>;
    /// Removes the response `id` of `scope`; whether there was one.
    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError>;
    /// An input or output item of a stored response of `scope`, by its id
    /// (for `item_reference` inputs).
    fn item(&self, scope: &str, id: &str) -> Result<Option<Value>, StoreError>;
}

/// The `responses` table of the store.
struct ResponsesSchema;

impl Schema for ResponsesSchema {
    const NAME: &'static str = "responses";
    const MIGRATIONS: &'static [&'static str] = &[
        "CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            scope TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            response TEXT NOT NULL,
            input TEXT NOT NULL,
            context TEXT NOT NULL
        );
        CREATE INDEX responses_by_age ON responses (created_at);",
        // Items by id, for `item_reference`; dropped with their response.
        "CREATE TABLE response_items (
            id TEXT NOT NULL,
            response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
            scope TEXT NOT NULL,
            item TEXT NOT NULL,
            PRIMARY KEY (id, response_id)
        );
        CREATE INDEX response_items_by_response ON response_items (response_id);",
        // The count bound is per key.
        "CREATE INDEX responses_by_scope ON responses (scope, created_at);",
    ];
}

/// Stored responses in the SQLite [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteResponses {
    store: Store,
    max: usize,
    ttl: Duration,
}

impl SqliteResponses {
    /// Installs the table (once) and keeps at most `max` responses of each
    /// scope (API key), each for `ttl`.
    pub fn new(store: Store, max: usize, ttl: Duration) -> Result<Self, StoreError> {
        store.install::<ResponsesSchema>()?;
        Ok(Self { store, max, ttl })
    }

    /// Rows created at or before this (Unix seconds) are expired.
    fn expired_at_or_before(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        i64::try_from(now.saturating_sub(self.ttl.as_secs())).unwrap_or(i64::MAX)
    }
}

fn to_text(items: &[Value]) -> String {
    Value::Array(items.to_vec()).to_string()
}

fn from_text(text: &str) -> Vec<Value> {
    serde_json::from_str(text).unwrap_or_default()
}

impl ResponseStore for SqliteResponses {
    fn put(&self, r: &StoredResponse) -> Result<(), StoreError> {
        if self.max == 0 {
            return Ok(());
        }
        let expired = self.expired_at_or_before();
        let now = expired.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(0));
        let max = i64::try_from(self.max).unwrap_or(i64::MAX);
        self.store.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO responses (id, scope, created_at, response, input, context)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    r.id,
                    r.scope,
                    now,
                    r.response.to_string(),
                    to_text(&r.input),
                    to_text(&r.context)
                ],
            )?;
            let output = r.response["output"].as_array().into_iter().flatten();
            for item in r.input.iter().chain(output) {
                if let Some(item_id) = item["id"].as_str() {
                    tx.execute(
                        "INSERT OR REPLACE INTO response_items (id, response_id, scope, item)
                         VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![item_id, r.id, r.scope, item.to_string()],
                    )?;
                }
            }
            tx.execute("DELETE FROM responses WHERE created_at <= ?1", [expired])?;
            tx.execute(
                "DELETE FROM responses WHERE rowid IN (
                     SELECT rowid FROM responses WHERE scope = ?1
                     ORDER BY created_at DESC, rowid DESC
                     LIMIT -1 OFFSET ?2)",
                rusqlite::params![r.scope, max],
            )?;
            tx.commit()
        })
    }

    fn get(&self, scope: &str, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        let expired = self.expired_at_or_before();
        self.store.with(|conn| {
            conn.query_row(
                "SELECT response, input, context FROM responses
                 WHERE id = ?1 AND scope = ?2 AND created_at > ?3",
                rusqlite::params![id, scope, expired],
                |row| {
                    let response: String = row.get(0)?;
                    let input: String = row.get(1)?;
                    let context: String = row.get(2)?;
                    Ok(StoredResponse {
                        id: id.to_string(),
                        scope: scope.to_string(),
                        response: serde_json::from_str(&response).unwrap_or(Value::Null),
                        input: from_text(&input),
                        context: from_text(&context),
                    })
                },
            )
            .optional()
        })
    }

    fn item(&self, scope: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let expired = self.expired_at_or_before();
        let text: Option<String> = self.store.with(|conn| {
            conn.query_row(
                "SELECT i.item FROM response_items i JOIN responses r ON r.id = i.response_id
                 WHERE i.id = ?1 AND i.scope = ?2 AND r.created_at > ?3
                 ORDER BY r.created_at DESC LIMIT 1",
                rusqlite::params![id, scope, expired],
                |row| row.get(0),
            )
            .optional()
        })?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
        self.store.with(|conn| {
            conn.execute(
                "DELETE FROM responses WHERE id = ?1 AND scope = ?2",
                [id, scope],
            )
            .map(|n| n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(id: &str, scope: &str, context: Vec<Value>) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            scope: scope.into(),
            response: json!({"id": id, "output": [{"type": "message", "id": format!("out-{id}")}]}),
            input: vec![json!({"type": "message", "id": format!("in-{id}")})],
            context,
        }
    }

    fn store(max: usize, ttl: Duration) -> SqliteResponses {
        SqliteResponses::new(Store::in_memory().unwrap(), max, ttl).unwrap()
    }

    #[test]
    fn responses_are_scoped_bounded_and_deletable() {
        let store = store(2, Duration::from_secs(60));
        store.put(&stored("a", "k1", vec![])).unwrap();
        assert_eq!(
            store.get("k1", "a").unwrap(),
            Some(stored("a", "k1", vec![]))
        );
        assert_eq!(
            store.get("k2", "a").unwrap(),
            None,
            "another key sees nothing"
        );
        assert!(!store.delete("k2", "a").unwrap());
        store.put(&stored("b", "k1", vec![])).unwrap();
        store.put(&stored("c", "k1", vec![])).unwrap();
        assert_eq!(store.get("k1", "a").unwrap(), None, "the oldest is dropped");
        assert!(store.get("k1", "b").unwrap().is_some());
        assert_eq!(store.item("k1", "out-b").unwrap().unwrap()["id"], "out-b");
        assert_eq!(store.item("k1", "in-b").unwrap().unwrap()["id"], "in-b");
        assert_eq!(store.item("k2", "out-b").unwrap(), None);
        assert!(store.delete("k1", "c").unwrap());
        assert_eq!(store.get("k1", "c").unwrap(), None);
        assert_eq!(
            store.item("k1", "out-c").unwrap(),
            None,
            "gone with its response"
        );
    }

    #[test]
    fn one_key_does_not_push_out_anothers_responses() {
        let store = store(2, Duration::from_secs(60));
        store.put(&stored("a1", "key-a", vec![])).unwrap();
        store.put(&stored("a2", "key-a", vec![])).unwrap();
        for i in 0..5 {
            store
                .put(&stored(&format!("b{i}"), "key-b", vec![]))
                .unwrap();
        }
        assert!(
            store.get("key-a", "a1").unwrap().is_some(),
            "key-a keeps its own"
        );
        assert!(store.get("key-a", "a2").unwrap().is_some());
        assert_eq!(store.get("key-b", "b2").unwrap(), None, "key-b's oldest go");
        assert!(store.get("key-b", "b3").unwrap().is_some());
        assert!(store.get("key-b", "b4").unwrap().is_some());
        store.put(&stored("a3", "key-a", vec![])).unwrap();
        assert_eq!(store.get("key-a", "a1").unwrap(), None, "each key capped");
    }

    #[test]
    fn expired_responses_are_gone() {
        let store = store(10, Duration::ZERO);
        store.put(&stored("a", "", vec![])).unwrap();
        assert_eq!(store.get("", "a").unwrap(), None);
    }

    #[test]
    fn a_conversation_is_its_context_input_and_output() {
        let a = stored("a", "", vec![]);
        let b = stored("b", "", a.conversation());
        let ids: Vec<_> = b
            .conversation()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["in-a", "out-a", "in-b", "out-b"]);
    }
}
