//! How the routes reach the stored state of the Responses API: look up
//! what a request names before it is parsed ([`Stores::look_up`], on the
//! blocking pool), and write what a finished response keeps — after a
//! whole body ([`Stores::keep_async`]) or as a stream ends ([`Keeping`],
//! a decorator of the codec's encoder).

use std::sync::Arc;

use serde_json::Value;

use super::conversations::ConversationStore as _;
use super::responses::ResponseStore;
use super::write_behind::ConversationsBehind;
use crate::api::error::{ApiError, ErrorKind};
use crate::api::responses::kept::{Kept, Lookups, References, StoredResponse};
use crate::api::responses::stream::ResponseStream;
use crate::api::{Dialect, EventEncoder, Frame};
use crate::job::JobEvent;
use crate::store::StoreError;

const DIALECT: Dialect = Dialect::Responses;

/// The stores a request's stored state lives in.
#[derive(Debug, Clone, Default)]
pub struct Stores {
    /// Stored responses (none: `store: true` keeps nothing).
    pub responses: Option<Arc<dyn ResponseStore>>,
    /// Conversations, their items added behind the request.
    pub conversations: Option<Arc<ConversationsBehind>>,
}

fn fault(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| ApiError::new(ErrorKind::Api, format!("{what}: {e}"), DIALECT)
}

/// Runs `f` on the blocking pool: the stores' calls may wait on SQLite or
/// on a write in progress.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("stored state: {e}"), DIALECT))?
}

impl Stores {
    /// What `references` names in `scope`, read off the HTTP thread.
    pub async fn look_up(&self, scope: &str, references: References) -> Result<Lookups, ApiError> {
        let lookups = Lookups {
            can_store: self.responses.is_some(),
            ..Lookups::default()
        };
        if references.is_empty() {
            return Ok(lookups);
        }
        let stores = self.clone();
        let scope = scope.to_string();
        blocking(move || stores.read(&scope, references, lookups)).await
    }

    fn read(
        &self,
        scope: &str,
        references: References,
        mut lookups: Lookups,
    ) -> Result<Lookups, ApiError> {
        if let Some(store) = &self.responses {
            if let Some(id) = &references.previous {
                lookups.previous = store.get(scope, id).map_err(fault("stored responses"))?;
            }
            for id in references.items {
                if let Some(item) = store.item(scope, &id).map_err(fault("stored responses"))? {
                    lookups.items.insert(id, item);
                }
            }
        }
        if let (Some(store), Some(id)) = (&self.conversations, &references.conversation) {
            lookups.conversation = store.items(scope, id).map_err(fault("conversations"))?;
        }
        Ok(lookups)
    }

    /// Hands what a finished response keeps to the stores' writers; false
    /// if the response store refused the response (its writes fail and its
    /// backlog is full). Both the stored response and the conversation's
    /// new items are written behind (see `write_behind`): this returns
    /// before the disk does, and calls no SQLite, so a stream's end may
    /// call it on the HTTP thread.
    pub fn keep(&self, kept: &Kept) -> bool {
        let id = kept.id().unwrap_or("a response");
        if let (Some(store), Some((conversation, items))) =
            (&self.conversations, &kept.conversation)
        {
            if let Err(e) = store.append_behind(&kept.scope, conversation, items.clone()) {
                log::error!("responses: cannot add {id} to conversation {conversation}: {e}");
            }
        }
        match (&self.responses, &kept.response) {
            (Some(store), Some(response)) => match store.put(response) {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("responses: {id} not stored, answered store: false: {e}");
                    false
                }
            },
            _ => true,
        }
    }

    /// [`Stores::keep`] off the HTTP thread.
    pub async fn keep_async(&self, kept: Kept) -> bool {
        let stores = self.clone();
        blocking(move || Ok(stores.keep(&kept)))
            .await
            .unwrap_or(false)
    }

    /// Removes the response `id` of `scope`, off the HTTP thread (a delete
    /// waits for a write of the same response in progress).
    pub async fn delete(&self, scope: &str, id: &str) -> Result<bool, ApiError> {
        let Some(store) = self.responses.clone() else {
            return Ok(false);
        };
        let (scope, id) = (scope.to_string(), id.to_string());
        blocking(move || store.delete(&scope, &id).map_err(fault("stored responses"))).await
    }

    /// The stored response `id` of `scope`, read off the HTTP thread.
    pub async fn get(&self, scope: &str, id: &str) -> Result<Option<StoredResponse>, ApiError> {
        let Some(store) = self.responses.clone() else {
            return Ok(None);
        };
        let (scope, id) = (scope.to_string(), id.to_string());
        blocking(move || store.get(&scope, &id).map_err(fault("stored responses"))).await
    }
}

/// A stream encoder whose finished response is kept as the stream ends:
/// the codec says what to keep ([`EventEncoder::take_kept`]), this writes
/// it and, if the store refuses it, marks it `store: false` in the frames
/// that carry it.
pub struct Keeping<E> {
    inner: E,
    stores: Stores,
}

impl<E: EventEncoder> Keeping<E> {
    pub fn new(inner: E, stores: Stores) -> Self {
        Self { inner, stores }
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Keeps what the encoder says is to be kept; false if the response
    /// store refused it.
    fn keep_now(&mut self) -> Option<(bool, Option<String>)> {
        let kept = self.inner.take_kept()?;
        Some((self.stores.keep(&kept), kept.id().map(str::to_string)))
    }

    fn keep(&mut self, mut frames: Vec<Frame>) -> Vec<Frame> {
        if let Some((false, Some(id))) = self.keep_now() {
            for frame in &mut frames {
                if let Frame::Event(_, data) | Frame::Data(data) = frame {
                    if data["response"]["id"] == id.as_str() {
                        data["response"]["store"] = Value::Bool(false);
                    }
                }
            }
        }
        frames
    }
}

impl Keeping<ResponseStream> {
    /// Ends a response cancelled while it ran (see
    /// [`ResponseStream::cancel`]), kept as such.
    pub fn cancel(&mut self) -> Value {
        let mut response = self.inner.cancel();
        if let Some((false, _)) = self.keep_now() {
            response["store"] = Value::Bool(false);
        }
        response
    }
}

impl<E: EventEncoder> EventEncoder for Keeping<E> {
    fn encode(&mut self, event: JobEvent) -> Vec<Frame> {
        let frames = self.inner.encode(event);
        self.keep(frames)
    }

    fn keepalive(&mut self) -> Vec<Frame> {
        let frames = self.inner.keepalive();
        self.keep(frames)
    }

    fn finish(&mut self) -> Vec<Frame> {
        let frames = self.inner.finish();
        self.keep(frames)
    }
}
