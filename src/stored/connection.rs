//! The response store of one WebSocket connection: its latest response is
//! kept in memory whether or not it was stored (`store: false`, as Codex
//! sends), so the next `response.create` on the same socket continues it
//! with `previous_response_id` and only its new input items — as OpenAI's
//! WebSocket mode does. Stored responses (`store` not false) also go to
//! the daemon's store; reads fall back to it.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use super::responses::{ResponseStore, StoredResponse};
use crate::store::StoreError;

/// The latest response of a connection, in front of the daemon's store.
#[derive(Debug)]
pub struct ConnectionStore {
    latest: Mutex<Option<StoredResponse>>,
    inner: Option<Arc<dyn ResponseStore>>,
}

impl ConnectionStore {
    pub fn new(inner: Option<Arc<dyn ResponseStore>>) -> Self {
        Self {
            latest: Mutex::new(None),
            inner,
        }
    }

    /// The id of the connection's latest response.
    pub fn latest_id(&self) -> Option<String> {
        self.latest().as_ref().map(|r| r.id.clone())
    }

    fn latest(&self) -> MutexGuard<'_, Option<StoredResponse>> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResponseStore for ConnectionStore {
    fn put(&self, response: &StoredResponse) -> Result<(), StoreError> {
        *self.latest() = Some(response.clone());
        match &self.inner {
            Some(inner) if response.response["store"] != false => inner.put(response),
            _ => Ok(()),
        }
    }

    fn get(&self, scope: &str, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        if let Some(latest) = self
            .latest()
            .as_ref()
            .filter(|r| r.id == id && r.scope == scope)
        {
            return Ok(Some(latest.clone()));
        }
        match &self.inner {
            Some(inner) => inner.get(scope, id),
            None => Ok(None),
        }
    }

    fn delete(&self, scope: &str, id: &str) -> Result<bool, StoreError> {
        let mut latest = self.latest();
        let here = latest
            .as_ref()
            .is_some_and(|r| r.id == id && r.scope == scope);
        if here {
            *latest = None;
        }
        drop(latest);
        let there = match &self.inner {
            Some(inner) => inner.delete(scope, id)?,
            None => false,
        };
        Ok(here || there)
    }

    fn item(&self, scope: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let found = self
            .latest()
            .as_ref()
            .filter(|r| r.scope == scope)
            .and_then(|r| r.conversation().into_iter().find(|i| i["id"] == id));
        match (found, &self.inner) {
            (Some(item), _) => Ok(Some(item)),
            (None, Some(inner)) => inner.item(scope, id),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::stored::responses::SqliteResponses;
    use serde_json::json;
    use std::time::Duration;

    fn response(id: &str, store: bool) -> StoredResponse {
        StoredResponse {
            id: id.into(),
            scope: "k".into(),
            response: json!({"id": id, "store": store, "output": [{"id": format!("out-{id}")}]}),
            input: vec![json!({"id": format!("in-{id}")})],
            context: Vec::new(),
        }
    }

    #[test]
    fn the_latest_response_is_kept_stored_or_not_and_only_stored_ones_reach_the_store() {
        let sqlite: Arc<dyn ResponseStore> = Arc::new(
            SqliteResponses::new(Store::in_memory().unwrap(), 10, Duration::from_secs(60)).unwrap(),
        );
        let socket = ConnectionStore::new(Some(sqlite.clone()));
        socket.put(&response("a", false)).unwrap();
        assert!(socket.get("k", "a").unwrap().is_some());
        assert!(socket.get("other", "a").unwrap().is_none(), "scoped");
        assert!(sqlite.get("k", "a").unwrap().is_none(), "store: false");
        assert_eq!(socket.item("k", "out-a").unwrap().unwrap()["id"], "out-a");
        socket.put(&response("b", true)).unwrap();
        assert!(sqlite.get("k", "b").unwrap().is_some());
        assert!(
            socket.get("k", "a").unwrap().is_none(),
            "only the latest unstored response is kept"
        );
        assert!(socket.delete("k", "b").unwrap());
        assert!(socket.get("k", "b").unwrap().is_none());
        assert!(sqlite.get("k", "b").unwrap().is_none());
    }
}
