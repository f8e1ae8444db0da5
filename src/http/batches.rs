//! `/v1/messages/batches`: the Message Batches API. Batches live in the
//! durable store, visible only to the API key that created them; the batch
//! runner works through them on the pool's spare capacity.

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;

use super::auth::ClientKey;
use super::batch_objects::{batch_object, result_line};
use super::error::{ApiError, ErrorKind};
use super::{body, jobs, limits, AppState};
use crate::api::batches::{deleted_object, parse_create};
use crate::api::Dialect;
use crate::batches::store::{self, Batch, Cursor, Deleted};
use crate::batches::{new_id, now_ms};
use crate::store::StoreError;

const DIALECT: Dialect = Dialect::Anthropic;

/// Results are read from the store this many lines at a time.
const RESULTS_PAGE: usize = 500;

/// The daemon's address as this client reaches it: `server.public_url`,
/// else the scheme and `Host` of the request.
fn base_url(req: &HttpRequest, state: &AppState) -> String {
    match &state.settings().server.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

fn store_failed(e: StoreError) -> ApiError {
    log::error!("batches: {e}");
    ApiError::new(ErrorKind::Api, "the batch store failed", DIALECT)
}

/// Runs `f` on the store; a store failure is a 500.
async fn stored<R: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
) -> Result<R, ApiError> {
    state.store.call(f).await.map_err(store_failed)
}

/// 200 with the `message_batch` object.
fn batch_response(req: &HttpRequest, state: &AppState, batch: &Batch) -> HttpResponse {
    HttpResponse::Ok().json(batch_object(batch, &base_url(req, state)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no message batch {id:?}"),
        DIALECT,
    )
}

/// The batch `id` of `client` (whose batches are those of its scope: a
/// digest of its key, empty without keys), or 404.
async fn find(key: &ClientKey, state: &AppState, id: &str) -> Result<Batch, ApiError> {
    let owner = key.scope.clone();
    let key = id.to_string();
    stored(state, move |c| store::get(c, &owner, &key))
        .await?
        .ok_or_else(|| not_found(id))
}

/// `POST /v1/messages/batches`
pub async fn create(
    req: HttpRequest,
    key: ClientKey,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_limited(&req, payload, &state, DIALECT).await?;
    // A batch counts as one request against the key's request rate and
    // needs budget left; its jobs run on spare capacity, outside
    // max_concurrent.
    limits::admit(&req, &state, &key, false, DIALECT)?;
    let owner = key.scope.clone();
    let settings = state.settings();
    let max_requests = settings.batches.max_requests;
    // As an interactive request would run (agent mode, the key's own
    // permission, x-claude-pool-agent): the default of every request.
    let agent = super::jobs::context(&req, &state, &key).agent_allowed;
    // Validating a large batch is real work: off the HTTP thread.
    let requests = web::block(move || parse_create(&body, max_requests, agent))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Api, e.to_string(), DIALECT))?
        .map_err(|e| ApiError::invalid(e.0, DIALECT))?;
    check_key(&key, &settings, &requests)?;
    let now = now_ms();
    let expires_at = now.saturating_add(settings.batches.expiry().as_millis() as i64);
    let id = new_id(settings.server.node_id());
    let batch = stored(&state, move |c| {
        store::create(c, &owner, &id, now, expires_at, &requests)
    })
    .await?;
    log::info!(
        "batches: {} created with {} requests",
        batch.id,
        batch.counts.total
    );
    state.batch_runner.wake();
    Ok(batch_response(&req, &state, &batch))
}

/// What the key of a new batch may not do: batch jobs run later, on the
/// runner, which does not know the key; so a key without agent mode gets no
/// batches while agent mode is on (they would run as agent jobs), and every
/// request's model must be one the key may use (403 naming the request).
fn check_key(
    key: &ClientKey,
    settings: &crate::config::Settings,
    requests: &[(String, String)],
) -> Result<(), ApiError> {
    if settings.agent.enabled && !key.agent {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!(
                "key `{}` may not use agent mode, and batch requests run as agent jobs while it is on",
                key.name
            ),
            DIALECT,
        ));
    }
    if key.models.is_empty() {
        return Ok(());
    }
    for (i, (_, params)) in requests.iter().enumerate() {
        let params: serde_json::Value = serde_json::from_str(params).unwrap_or_default();
        let model = crate::api::models::resolve_model(
            params["model"].as_str(),
            &settings.claude.default_model,
        );
        if !key.allows_model(&model) {
            let mut e = jobs::check_model(&key.0, &model, DIALECT).unwrap_err();
            e.message = format!("requests[{i}]: {}", e.message);
            return Err(e);
        }
    }
    Ok(())
}

/// `GET /v1/messages/batches/{id}`
pub async fn get(
    req: HttpRequest,
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let batch = find(&key, &state, &id).await?;
    Ok(batch_response(&req, &state, &batch))
}

/// The query of a list request. Unknown parameters (`beta=true`) are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    limit: Option<usize>,
    before_id: Option<String>,
    after_id: Option<String>,
}

/// `GET /v1/messages/batches?limit&before_id&after_id`: newest first.
pub async fn list(
    req: HttpRequest,
    key: ClientKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let owner = key.scope.clone();
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid(format!("query: {e}"), DIALECT))?
        .into_inner();
    let limit = query.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(
            "limit: must be between 1 and 1000",
            DIALECT,
        ));
    }
    if query.before_id.is_some() && query.after_id.is_some() {
        return Err(ApiError::invalid(
            "before_id and after_id cannot be combined",
            DIALECT,
        ));
    }
    let cursor_id = query.before_id.clone().or(query.after_id.clone());
    let before = query.before_id.is_some();
    let page = stored(&state, move |c| {
        let cursor = match (&cursor_id, before) {
            (None, _) => Cursor::Start,
            (Some(id), true) => Cursor::Before(id),
            (Some(id), false) => Cursor::After(id),
        };
        store::list(c, &owner, cursor, limit)
    })
    .await?;
    let Some((batches, has_more)) = page else {
        let id = query.before_id.or(query.after_id).unwrap_or_default();
        return Err(not_found(&id));
    };
    let base = base_url(&req, &state);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "data": batches.iter().map(|b| batch_object(b, &base)).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": batches.first().map(|b| &b.id),
        "last_id": batches.last().map(|b| &b.id),
    })))
}

/// `POST /v1/messages/batches/{id}/cancel`
pub async fn cancel(
    req: HttpRequest,
    key: ClientKey,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The body is empty; reading it applies the same checks as every POST.
    body::read_limited(&req, payload, &state, DIALECT).await?;
    let owner = key.scope.clone();
    let key = id.clone();
    let batch = stored(&state, move |c| store::cancel(c, &owner, &key, now_ms()))
        .await?
        .ok_or_else(|| not_found(&id))?;
    state.batch_runner.wake();
    Ok(batch_response(&req, &state, &batch))
}

/// `DELETE /v1/messages/batches/{id}`: only an ended batch.
pub async fn delete(
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let owner = key.scope.clone();
    let key = id.clone();
    let deleted = stored(&state, move |c| store::delete(c, &owner, &key)).await?;
    match deleted {
        Deleted::Done => Ok(HttpResponse::Ok().json(deleted_object(&id))),
        Deleted::NotFound => Err(not_found(&id)),
        Deleted::NotEnded => Err(ApiError::invalid(
            format!("message batch {id:?} is still processing; cancel it, then delete it once it has ended"),
            DIALECT,
        )),
    }
}

/// `GET /v1/messages/batches/{id}/results`: JSONL, one line per request, in
/// request order, read from the store page by page as the client reads.
pub async fn results(
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let batch = find(&key, &state, &id).await?;
    if batch.ended_at.is_none() {
        return Err(ApiError::invalid(
            format!("message batch {id:?} is still processing; its results are available once it has ended"),
            DIALECT,
        ));
    }
    if batch.archived_at.is_some() {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("the results of message batch {id:?} were removed after the retention period"),
            DIALECT,
        ));
    }
    let store = state.store.clone();
    let seq = batch.seq;
    let lines = futures_util::stream::try_unfold(Some(-1i64), move |after| {
        let store = store.clone();
        async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let rows = store
                .call(move |c| store::results(c, seq, after, RESULTS_PAGE))
                .await
                .map_err(|e| {
                    log::error!("batches: reading results: {e}");
                    std::io::Error::other(e.to_string())
                })?;
            let next = (rows.len() == RESULTS_PAGE).then(|| rows[rows.len() - 1].idx);
            let chunk: String = rows.iter().map(result_line).collect();
            Ok::<_, std::io::Error>(Some((Bytes::from(chunk), next)))
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-jsonl")
        .streaming(lines))
}
