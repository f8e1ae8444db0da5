//! The Responses API's own routes: `POST /v1/responses` (the generic job
//! route, or a background run), `GET` (polled, or streamed with
//! `?stream=true&starting_after=N`) and `DELETE /v1/responses/{id}`,
//! `POST /v1/responses/{id}/cancel`, and `GET
//! /v1/responses/{id}/input_items`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::ClientKey;
use super::error::{ApiError, ErrorKind};
use super::{background, body, jobs, limits, AppState};
use crate::api::responses::kept::StoredResponse;
use crate::api::responses::output::ResponseMeta;
use crate::api::responses::stream::replay;
use crate::api::responses::Responses;
use crate::api::responses::ResponsesRequest;
use crate::api::{Codec, Context, Dialect, Parsed};
use crate::job::Job;
use crate::stored::{Keeping, Stores};

const DIALECT: Dialect = Dialect::Responses;

/// The stored response `id` of the caller, or 404 as OpenAI says it.
async fn find(key: &ClientKey, state: &AppState, id: &str) -> Result<StoredResponse, ApiError> {
    let found = state.stores().get(&key.scope, id).await?;
    found.ok_or_else(|| not_found(id))
}

/// A request body parsed into its job, the stored state it names
/// (`previous_response_id`, `conversation`, `item_reference`) looked up in
/// `stores` first, off the HTTP thread: the codec itself does no I/O.
pub async fn parse(
    body: &[u8],
    mut ctx: Context,
    stores: &Stores,
) -> Result<Parsed<ResponseMeta>, ApiError> {
    let request = ResponsesRequest::parse(body).map_err(|e| ApiError::invalid(e.0, DIALECT))?;
    ctx.stored = stores.look_up(&ctx.scope, request.references()).await?;
    Responses::translate(request, &ctx)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Response with id '{id}' not found."),
        DIALECT,
    )
}

/// `POST /v1/responses`: a background response is started and answered
/// at once; any other runs as a job of the request.
pub async fn create(
    req: HttpRequest,
    key: ClientKey,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_limited(&req, payload, &state, DIALECT).await?;
    let parsed = parse(&body, jobs::context(&req, &state, &key), &state.stores()).await?;
    if !parsed.meta.background {
        return jobs::respond::<Responses>(req, key, state, parsed).await;
    }
    jobs::check_model(&key, &parsed.spec.model, DIALECT)?;
    // A background run counts as a request of its key; it runs on spare
    // capacity, outside max_concurrent (as batches do).
    limits::admit(&req, &state, &key, false, DIALECT)?;
    let Parsed {
        mut spec,
        stream,
        meta,
    } = parsed;
    // Nobody waits on the turn: one ending in tool calls is answered, not
    // parked (the client continues it with previous_response_id).
    spec.background = true;
    // Its events are read as they come (polled status, streamed retrieval),
    // as a stream's are: the worker forwards them at once rather than
    // holding each upstream call until it completes, so the run shows
    // `in_progress` while it runs (a call cut mid-way then ends it failed).
    spec.streamed = true;
    let settings = state.settings();
    let encoder = Keeping::new(Responses::stream(meta.clone()), state.stores());
    let run = state
        .runs
        .start(
            &meta.id,
            &spec.scope,
            encoder.inner().queued(),
            settings.responses.max_background,
        )
        .map_err(|background::TooMany(max)| {
            ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "{max} background responses are unfinished (responses.max_background); \
                     try again when one has finished"
                ),
                DIALECT,
            )
        })?;
    let (job, events) = Job::new(jobs::request_id(&req), spec);
    let job = job.with_caller(key.0.clone());
    actix_rt::spawn(background::drive(
        run.clone(),
        job,
        events,
        encoder,
        state.dispatcher.clone(),
        state.draining(),
    ));
    if stream {
        return Ok(background::stream(run, None, settings.server.keepalive()));
    }
    Ok(HttpResponse::Ok().json(run.snapshot()))
}

/// `POST /v1/responses/input_tokens`: the body of a response request
/// (`previous_response_id` and `conversation` included), answered with a
/// local estimate of its input tokens (see `api::count_tokens`): the pool
/// has no tokenizer and spends no model turn on counting.
pub async fn input_tokens(
    req: HttpRequest,
    key: ClientKey,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_limited(&req, payload, &state, DIALECT).await?;
    let parsed = parse(&body, jobs::context(&req, &state, &key), &state.stores()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "object": "response.input_tokens",
        "input_tokens": crate::api::count_tokens::estimate_spec(&parsed.spec),
    })))
}

/// `GET /v1/responses/{id}` query: stream the response's events, from
/// after `starting_after`.
#[derive(Debug, Deserialize)]
struct Retrieve {
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    starting_after: Option<u64>,
}

pub(super) async fn get(
    req: HttpRequest,
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<Retrieve>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid(format!("invalid query string: {e}"), DIALECT))?;
    let streamed = query.stream == Some(true);
    if let Some(run) = running(&key, &state, &id) {
        if streamed {
            let keepalive = state.settings().server.keepalive();
            return Ok(background::stream(run, query.starting_after, keepalive));
        }
        return Ok(HttpResponse::Ok().json(run.snapshot()));
    }
    let stored = find(&key, &state, &id).await?;
    if streamed {
        let frames = replay(&stored.response);
        return Ok(background::stream_frames(frames, query.starting_after));
    }
    Ok(HttpResponse::Ok().json(stored.response))
}

/// The caller's background run `id`, if it is running or finished lately.
fn running(key: &ClientKey, state: &AppState, id: &str) -> Option<std::sync::Arc<background::Run>> {
    state.runs.get(&key.scope, id)
}

/// `POST /v1/responses/{id}/cancel`: a running background response is
/// interrupted and answered `cancelled` (again if it already was); any
/// other finished response cannot be cancelled.
pub(super) async fn cancel(
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let response = match running(&key, &state, &id) {
        Some(run) => {
            run.request_cancel();
            run.finished().await;
            run.snapshot()
        }
        None => find(&key, &state, &id).await?.response,
    };
    match response["status"].as_str() {
        Some("cancelled") => Ok(HttpResponse::Ok().json(response)),
        _ if response["background"] != true => Err(ApiError::invalid(
            "Only responses created with background=true can be cancelled.",
            DIALECT,
        )),
        _ => Err(ApiError::invalid(
            "Cannot cancel a completed response.",
            DIALECT,
        )),
    }
}

pub(super) async fn delete(
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // Off the HTTP thread: a delete waits for a write of the same
    // response in progress (see `stored::write_behind`).
    let deleted = state.stores().delete(&key.scope, &id).await?;
    if !deleted {
        return Err(not_found(&id));
    }
    Ok(HttpResponse::Ok().json(json!({"id": *id, "object": "response.deleted", "deleted": true})))
}

/// `input_items` paging: `limit` (1–100, default 20), `order` (`desc` by
/// default, as OpenAI), `after` an item id.
#[derive(Debug, Deserialize)]
pub(super) struct Page {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

pub(super) async fn input_items(
    req: HttpRequest,
    key: ClientKey,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let stored = find(&key, &state, &id).await?;
    let page = web::Query::<Page>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid(format!("invalid query string: {e}"), DIALECT))?;
    Ok(HttpResponse::Ok().json(list_page(stored.input, &page)?))
}

pub(super) fn list_page(mut items: Vec<Value>, page: &Page) -> Result<Value, ApiError> {
    let limit = page.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "limit: must be between 1 and 100",
            DIALECT,
        ));
    }
    match page.order.as_deref() {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                format!("order: must be `asc` or `desc`, not `{other}`"),
                DIALECT,
            ))
        }
    }
    let start = match &page.after {
        Some(after) => items
            .iter()
            .position(|i| i["id"] == after.as_str())
            .map_or(items.len(), |p| p + 1),
        None => 0,
    };
    let rest = &items[start.min(items.len())..];
    let data: Vec<Value> = rest.iter().take(limit).cloned().collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "first_id": data.first().map(|i| i["id"].clone()),
        "last_id": data.last().map(|i| i["id"].clone()),
        "has_more": rest.len() > limit,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_items_page_newest_first_by_default() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("i{i}")})).collect();
        let page = |limit, order: Option<&str>, after: Option<&str>| {
            list_page(
                items.clone(),
                &Page {
                    limit,
                    order: order.map(str::to_string),
                    after: after.map(str::to_string),
                },
            )
            .unwrap()
        };
        let first = page(Some(2), None, None);
        assert_eq!(first["data"], json!([{"id": "i4"}, {"id": "i3"}]));
        assert_eq!(first["has_more"], true);
        let next = page(Some(2), None, Some("i3"));
        assert_eq!(next["first_id"], "i2");
        let asc = page(None, Some("asc"), None);
        assert_eq!(asc["data"].as_array().unwrap().len(), 5);
        assert_eq!(asc["first_id"], "i0");
        assert_eq!(asc["has_more"], false);
    }
}
