//! Conversations of the Responses API (`/v1/conversations`, and
//! `conversation` on `/v1/responses`): a list of items kept in the daemon's
//! SQLite store, scoped to the API key that created it like stored
//! responses, under a node-tagged id (`conv_<node>_…`). A response made in
//! a conversation reads its items as history and appends its own input and
//! output items to it when it finishes.

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::OptionalExtension;
use serde_json::{json, Value};

use crate::store::{Schema, Store, StoreError};

/// A conversation's own fields (its items are listed apart).
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// `conv_…`
    pub id: String,
    pub created_at: u64,
    pub metadata: Value,
}

impl Conversation {
    /// The conversation object of the API.
    pub fn object(&self) -> Value {
        json!({
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        })
    }
}

/// Where conversations are kept.
pub trait ConversationStore: Send + Sync + Debug {
    /// Creates conversation `id` of `scope` holding `items` (each with an id).
    fn create(
        &self,
        scope: &str,
        id: &str,
        metadata: &Value,
        items: &[Value],
    ) -> Result<Conversation, StoreError>;
    /// The conversation `id` if `scope` created it.
    fn get(&self, scope: &str, id: &str) -> Result<Option<Conversation>, StoreError>;
    /// Replaces its metadata; the updated conversation, if it exists.
    fn update(
        &self,
        scope: &str,
        id: &str,
        metadata: &Value,
    ) -> Result<Option<Conversation>, StoreError>;
    /// Removes it with its items; whether there was one.
    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError>;
    /// Its items, oldest first; `None` if there is no such conversation.
    fn items(&self, scope: &str, id: &str) -> Result<Option<Vec<Value>>, StoreError>;
    /// Appends `items` (each with an id); false if there is no such
    /// conversation.
    fn append(&self, scope: &str, id: &str, items: &[Value]) -> Result<bool, StoreError>;
    /// Removes one item; false if the conversation or item is not there.
    fn delete_item(&self, scope: &str, id: &str, item_id: &str) -> Result<bool, StoreError>;
}

struct ConversationsSchema;

impl Schema for ConversationsSchema {
    const NAME: &'static str = "conversations";
    const MIGRATIONS: &'static [&'static str] = &["CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            scope TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            metadata TEXT NOT NULL
        );
        CREATE TABLE conversation_items (
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            item_id TEXT NOT NULL,
            item TEXT NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        );"];
}

/// Conversations in the SQLite [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteConversations {
    store: Store,
}

impl SqliteConversations {
    pub fn new(store: Store) -> Result<Self, StoreError> {
        store.install::<ConversationsSchema>()?;
        Ok(Self { store })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn insert_items(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    items: &[Value],
) -> Result<(), rusqlite::Error> {
    let next: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), -1) + 1 FROM conversation_items WHERE conversation_id = ?1",
        [id],
        |row| row.get(0),
    )?;
    for (i, item) in items.iter().enumerate() {
        tx.execute(
            "INSERT INTO conversation_items (conversation_id, seq, item_id, item)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                id,
                next + i as i64,
                item["id"].as_str().unwrap_or_default(),
                item.to_string()
            ],
        )?;
    }
    Ok(())
}

impl ConversationStore for SqliteConversations {
    fn create(
        &self,
        scope: &str,
        id: &str,
        metadata: &Value,
        items: &[Value],
    ) -> Result<Conversation, StoreError> {
        let created_at = now_secs();
        self.store.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO conversations (id, scope, created_at, metadata) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![id, scope, created_at as i64, metadata.to_string()],
            )?;
            insert_items(&tx, id, items)?;
            tx.commit()
        })?;
        Ok(Conversation {
            id: id.to_string(),
            created_at,
            metadata: metadata.clone(),
        })
    }

    fn get(&self, scope: &str, id: &str) -> Result<Option<Conversation>, StoreError> {
        self.store.with(|conn| {
            conn.query_row(
                "SELECT created_at, metadata FROM conversations WHERE id = ?1 AND scope = ?2",
                [id, scope],
                |row| {
                    let created_at: i64 = row.get(0)?;
                    let metadata: String = row.get(1)?;
                    Ok(Conversation {
                        id: id.to_string(),
                        created_at: created_at as u64,
                        metadata: serde_json::from_str(&metadata).unwrap_or(json!({})),
                    })
                },
            )
            .optional()
        })
    }

    fn update(
        &self,
        scope: &str,
        id: &str,
        metadata: &Value,
    ) -> Result<Option<Conversation>, StoreError> {
        let changed = self.store.with(|conn| {
            conn.execute(
                "UPDATE conversations SET metadata = ?3 WHERE id = ?1 AND scope = ?2",
                [id, scope, &metadata.to_string()],
            )
        })?;
        match changed {
            0 => Ok(None),
            _ => self.get(scope, id),
        }
    }

    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
        self.store.with(|conn| {
            conn.execute(
                "DELETE FROM conversations WHERE id = ?1 AND scope = ?2",
                [id, scope],
            )
            .map(|n| n > 0)
        })
    }

    fn items(&self, scope: &str, id: &str) -> Result<Option<Vec<Value>>, StoreError> {
        if self.get(scope, id)?.is_none() {
            return Ok(None);
        }
        let texts: Vec<String> = self.store.with(|conn| {
            let mut query = conn.prepare(
                "SELECT item FROM conversation_items WHERE conversation_id = ?1 ORDER BY seq",
            )?;
            let rows = query.query_map([id], |row| row.get(0))?;
            rows.collect()
        })?;
        Ok(Some(
            texts
                .iter()
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect(),
        ))
    }

    fn append(&self, scope: &str, id: &str, items: &[Value]) -> Result<bool, StoreError> {
        self.store.with(|conn| {
            let tx = conn.transaction()?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM conversations WHERE id = ?1 AND scope = ?2",
                    [id, scope],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if exists {
                insert_items(&tx, id, items)?;
            }
            tx.commit()?;
            Ok(exists)
        })
    }

    fn delete_item(&self, scope: &str, id: &str, item_id: &str) -> Result<bool, StoreError> {
        self.store.with(|conn| {
            conn.execute(
                "DELETE FROM conversation_items WHERE item_id = ?3 AND conversation_id = (
                     SELECT id FROM conversations WHERE id = ?1 AND scope = ?2)",
                [id, scope, item_id],
            )
            .map(|n| n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_scoped_and_keep_their_items_in_order() {
        let store = SqliteConversations::new(Store::in_memory().unwrap()).unwrap();
        let first = [json!({"id": "msg_1", "type": "message"})];
        let made = store
            .create("k1", "conv_1", &json!({"topic": "x"}), &first)
            .unwrap();
        assert_eq!(made.object()["object"], "conversation");
        assert_eq!(store.get("k1", "conv_1").unwrap(), Some(made));
        assert_eq!(store.get("k2", "conv_1").unwrap(), None, "another key");
        assert_eq!(store.items("k2", "conv_1").unwrap(), None);
        assert!(!store.append("k2", "conv_1", &[json!({"id": "x"})]).unwrap());
        let more = [json!({"id": "fc_1"}), json!({"id": "msg_2"})];
        assert!(store.append("k1", "conv_1", &more).unwrap());
        let ids: Vec<Value> = store
            .items("k1", "conv_1")
            .unwrap()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!(ids, [json!("msg_1"), json!("fc_1"), json!("msg_2")]);
        assert!(!store.delete_item("k2", "conv_1", "fc_1").unwrap());
        assert!(store.delete_item("k1", "conv_1", "fc_1").unwrap());
        assert_eq!(store.items("k1", "conv_1").unwrap().unwrap().len(), 2);
        let updated = store.update("k1", "conv_1", &json!({"a": "b"})).unwrap();
        assert_eq!(updated.unwrap().metadata, json!({"a": "b"}));
        assert!(!store.delete("k2", "conv_1").unwrap());
        assert!(store.delete("k1", "conv_1").unwrap());
        assert_eq!(store.get("k1", "conv_1").unwrap(), None);
        assert_eq!(store.items("k1", "conv_1").unwrap(), None);
    }
}
