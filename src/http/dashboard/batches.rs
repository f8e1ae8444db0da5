//! `/admin/batches`: every key's message batches for the admin, with their
//! progress as it stands (the Messages Batches API shows a batch only to
//! its own key, and its counts only once it has ended), and a cancel.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::super::auth::AdminCaller;
use super::super::error::{ApiError, ErrorKind};
use super::super::AppState;
use crate::api::Dialect;
use crate::batches::now_ms;
use crate::batches::store::{self, Batch};
use crate::http::batch_objects::processing_status;

const DIALECT: Dialect = Dialect::Anthropic;

/// Batches a listing shows: the newest.
pub const LISTED: usize = 100;

/// A batch as the admin sees it: whose, and how far along.
pub fn batch_json(state: &AppState, owner: &str, batch: &Batch) -> Value {
    let key = match owner {
        "" => crate::ledger::ANONYMOUS.to_string(),
        scope => state
            .keys
            .by_scope(scope)
            .map_or_else(|| "(revoked key)".to_string(), |c| c.name.clone()),
    };
    let c = &batch.counts;
    json!({
        "id": batch.id,
        "key": key,
        "processing_status": processing_status(batch),
        "created_at_ms": batch.created_at,
        "ended_at_ms": batch.ended_at,
        "cancel_initiated_at_ms": batch.cancel_initiated_at,
        "counts": {
            "total": c.total, "processing": c.processing(), "succeeded": c.succeeded,
            "errored": c.errored, "canceled": c.canceled, "expired": c.expired,
        },
    })
}

fn store_failed(e: crate::store::StoreError) -> ApiError {
    log::error!("admin batches: {e}");
    ApiError::new(ErrorKind::Api, "the batch store failed", DIALECT)
}

/// The newest batches of every key, owners' scopes with them.
pub async fn newest(state: &AppState) -> Result<Vec<(String, Batch)>, ApiError> {
    state
        .store
        .call(|c| store::list_all(c, LISTED))
        .await
        .map_err(store_failed)
}

/// `GET /admin/batches`: the newest batches of every key.
pub async fn list(
    _admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let data: Vec<Value> = newest(&state)
        .await?
        .iter()
        .map(|(owner, b)| batch_json(&state, owner, b))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}

/// `POST /admin/batches/{id}/cancel`: cancels any key's batch (queued
/// requests at once; running ones may finish).
pub async fn cancel(
    _admin: AdminCaller,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let wanted = id.into_inner();
    let key = wanted.clone();
    let canceled = state
        .store
        .call(move |c| {
            let Some(owner) = store::owner_of_batch(c, &key)? else {
                return Ok(None);
            };
            Ok(store::cancel(c, &owner, &key, now_ms())?.map(|b| (owner, b)))
        })
        .await
        .map_err(store_failed)?;
    let Some((owner, batch)) = canceled else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("no message batch {wanted:?}"),
            DIALECT,
        ));
    };
    state.batch_runner.wake();
    Ok(HttpResponse::Ok().json(batch_json(&state, &owner, &batch)))
}
