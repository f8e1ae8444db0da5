//! `/v1/conversations`: create, retrieve, update and delete a conversation,
//! and list, add, retrieve and delete its items. Every route acts only on
//! the caller's own conversations (another key's id is a 404).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::ClientKey;
use super::error::{ApiError, ErrorKind};
use super::responses::{list_page, Page};
use super::{body, AppState};
use crate::api::responses::output::with_ids;
use crate::api::Dialect;
use crate::store::StoreError;
use crate::stored::conversations::ConversationStore;
use crate::stored::write_behind::ConversationsBehind;

const DIALECT: Dialect = Dialect::Responses;
/// Most items a create or add request may carry (OpenAI's limit).
const MAX_ITEMS: usize = 20;

/// The caller's scope and the conversation store.
fn caller(
    key: &ClientKey,
    state: &AppState,
) -> Result<(String, Arc<ConversationsBehind>), ApiError> {
    let store = state
        .conversations
        .clone()
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "conversations are not available", DIALECT))?;
    Ok((key.scope.clone(), store))
}

fn fault(e: StoreError) -> ApiError {
    ApiError::new(ErrorKind::Api, format!("conversations: {e}"), DIALECT)
}

/// Runs `f` on the caller's conversations off the HTTP thread (SQLite).
async fn stored<R: Send + 'static>(
    key: &ClientKey,
    state: &AppState,
    f: impl FnOnce(&str, &dyn ConversationStore) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    let (scope, store) = caller(key, state)?;
    web::block(move || f(&scope, store.as_ref()))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Api, format!("conversations: {e}"), DIALECT))?
        .map_err(fault)
}

/// What a store call finds: a value, or whether the conversation was there.
trait Found {
    type Value;
    fn found(self) -> Option<Self::Value>;
}

impl<T> Found for Option<T> {
    type Value = T;
    fn found(self) -> Option<T> {
        self
    }
}

impl Found for bool {
    type Value = ();
    fn found(self) -> Option<()> {
        self.then_some(())
    }
}

/// Runs `f` on the caller's conversation `id` off the HTTP thread; a 404
/// when it finds none (`None`, `false`).
async fn on_conversation<F: Found + Send + 'static>(
    key: &ClientKey,
    state: &AppState,
    id: &str,
    f: impl FnOnce(&str, &str, &dyn ConversationStore) -> Result<F, StoreError> + Send + 'static,
) -> Result<F::Value, ApiError> {
    let wanted = id.to_string();
    stored(key, state, move |scope, store| f(scope, &wanted, store))
        .await?
        .found()
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Conversation with id '{id}' not found."),
        DIALECT,
    )
}

fn item_not_found(item: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Item with id '{item}' not found."),
        DIALECT,
    )
}

/// A create or update body.
#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    items: Option<Vec<Value>>,
    #[serde(default)]
    metadata: Option<Value>,
}

async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Body, ApiError> {
    let bytes = body::read_limited(req, payload, state, DIALECT).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Body::default());
    }
    let body: Body = crate::api::parse_json(&bytes).map_err(|e| ApiError::invalid(e.0, DIALECT))?;
    if let Some(metadata) = &body.metadata {
        if !metadata.is_object() && !metadata.is_null() {
            return Err(
                ApiError::invalid("metadata: must be an object", DIALECT).with_param("metadata")
            );
        }
    }
    if body.items.as_ref().is_some_and(|i| i.len() > MAX_ITEMS) {
        return Err(ApiError::invalid(
            format!("items: at most {MAX_ITEMS} items at a time"),
            DIALECT,
        )
        .with_param("items"));
    }
    if let Some(bad) = body.items.iter().flatten().position(|i| !i.is_object()) {
        return Err(
            ApiError::invalid(format!("items[{bad}]: must be an object"), DIALECT)
                .with_param("items"),
        );
    }
    Ok(body)
}

pub(super) async fn create(
    req: HttpRequest,
    key: ClientKey,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, &state).await?;
    let id = crate::ids::of_node("conv_", state.settings().server.node_id());
    let metadata = body.metadata.filter(|m| !m.is_null()).unwrap_or(json!({}));
    let items = with_ids(body.items.unwrap_or_default());
    let made = stored(&key, &state, move |scope, store| {
        store.create(scope, &id, &metadata, &items)
    })
    .await?;
    Ok(HttpResponse::Ok().json(made.object()))
}

pub(super) async fn get(
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let found = on_conversation(&key, &state, &id, |scope, id, store| store.get(scope, id)).await?;
    Ok(HttpResponse::Ok().json(found.object()))
}

pub(super) async fn update(
    req: HttpRequest,
    key: ClientKey,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, &state).await?;
    let metadata = body.metadata.filter(|m| !m.is_null()).unwrap_or(json!({}));
    let updated = on_conversation(&key, &state, &id, move |scope, id, store| {
        store.update(scope, id, &metadata)
    })
    .await?;
    Ok(HttpResponse::Ok().json(updated.object()))
}

pub(super) async fn delete(
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    on_conversation(&key, &state, &id, |scope, id, store| {
        store.delete(scope, id)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .json(json!({"id": *id, "object": "conversation.deleted", "deleted": true})))
}

pub(super) async fn list_items(
    req: HttpRequest,
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let items =
        on_conversation(&key, &state, &id, |scope, id, store| store.items(scope, id)).await?;
    let page = web::Query::<Page>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid(format!("invalid query string: {e}"), DIALECT))?;
    Ok(HttpResponse::Ok().json(list_page(items, &page)?))
}

pub(super) async fn add_items(
    req: HttpRequest,
    key: ClientKey,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, &state).await?;
    let Some(items) = body.items.filter(|i| !i.is_empty()) else {
        return Err(
            ApiError::invalid("items: at least one item is needed", DIALECT).with_param("items"),
        );
    };
    let items = with_ids(items);
    let added = items.clone();
    on_conversation(&key, &state, &id, move |scope, id, store| {
        store.append(scope, id, &added)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": items,
        "first_id": items.first().map(|i| i["id"].clone()),
        "last_id": items.last().map(|i| i["id"].clone()),
        "has_more": false,
    })))
}

pub(super) async fn get_item(
    key: ClientKey,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, item) = path.into_inner();
    let items =
        on_conversation(&key, &state, &id, |scope, id, store| store.items(scope, id)).await?;
    let found = items
        .into_iter()
        .find(|i| i["id"] == item.as_str())
        .ok_or_else(|| item_not_found(&item))?;
    Ok(HttpResponse::Ok().json(found))
}

pub(super) async fn delete_item(
    key: ClientKey,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, item) = path.into_inner();
    let (wanted, item_id) = (id.clone(), item.clone());
    let (conversation, deleted) = stored(&key, &state, move |scope, store| {
        let Some(conversation) = store.get(scope, &wanted)? else {
            return Ok((None, false));
        };
        let deleted = store.delete_item(scope, &wanted, &item_id)?;
        Ok((Some(conversation), deleted))
    })
    .await?;
    let conversation = conversation.ok_or_else(|| not_found(&id))?;
    if !deleted {
        return Err(item_not_found(&item));
    }
    Ok(HttpResponse::Ok().json(conversation.object()))
}
