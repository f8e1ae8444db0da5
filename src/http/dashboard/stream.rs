//! `GET /admin/events`: the admins' server-sent-event stream (see `hub`),
//! and `POST /admin/events/ticket`, which trades the admin key (in a
//! header) for a one-time ticket that opens it from a browser's
//! `EventSource` (see `tickets`). Scripts may open the stream with the
//! admin key in a header instead.
//!
//! Each event carries an `id:` of `<boot>-<n>`, and the stream opens with
//! a `retry:` and a `hello` event naming the boot, so a page that
//! reconnects after a restart sees the daemon changed and reloads what it
//! shows. A comment every [`KEEPALIVE`] keeps proxies from closing an idle
//! stream; the stream ends when the daemon drains.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::super::auth::AdminCaller;
use super::super::error::{ApiError, ErrorKind};
use super::super::AppState;
use super::hub::Event;
use super::{sampler, tickets};
use crate::api::Dialect;

/// A comment this often while nothing else is sent.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// What a browser waits before reconnecting, ms.
const RETRY_MS: u64 = 2000;

/// `POST /admin/events/ticket` → `{ticket, expires_in}`.
pub async fn ticket(_admin: AdminCaller, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Created().json(json!({
        "ticket": state.events.tickets().issue(),
        "expires_in": tickets::TTL.as_secs(),
    }))
}

#[derive(Deserialize)]
pub struct StreamParams {
    ticket: Option<String>,
}

/// `GET /admin/events?ticket=…` (or with the admin key in a header).
pub async fn events(
    req: HttpRequest,
    params: web::Query<StreamParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    match &params.ticket {
        Some(ticket) if state.events.tickets().redeem(ticket) => {}
        Some(_) => {
            return Err(ApiError::new(
                ErrorKind::Authentication,
                "this events ticket is unknown, used or expired: get a new one (POST /admin/events/ticket)",
                Dialect::Anthropic,
            ))
        }
        None => {
            AdminCaller::from_request(&req, &mut Payload::None).await?;
        }
    }
    let receiver = state.events.subscribe();
    sampler::ensure_running(&state);
    let hello = format!(
        "retry: {RETRY_MS}\nid: {boot}-0\nevent: hello\ndata: {}\n\n",
        json!({"boot": state.events.boot()}),
        boot = state.events.boot()
    );
    let open = Open {
        receiver,
        boot: state.events.boot().to_string(),
        draining: state.draining(),
        first: Some(hello),
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream::unfold(open, next_frame)))
}

struct Open {
    receiver: broadcast::Receiver<Event>,
    boot: String,
    draining: watch::Receiver<bool>,
    first: Option<String>,
}

async fn next_frame(mut open: Open) -> Option<(Result<Bytes, actix_web::Error>, Open)> {
    if let Some(first) = open.first.take() {
        return Some((Ok(Bytes::from(first)), open));
    }
    if *open.draining.borrow() {
        return None;
    }
    let frame = tokio::select! {
        received = open.receiver.recv() => match received {
            Ok(event) => format!(
                "id: {}-{}\nevent: {}\ndata: {}\n\n",
                open.boot, event.id, event.kind, event.data
            ),
            // Too slow: the missed events are gone; the page reloads.
            Err(RecvError::Lagged(skipped)) => {
                format!("event: lagged\ndata: {}\n\n", json!({"skipped": skipped}))
            }
            Err(RecvError::Closed) => return None,
        },
        _ = tokio::time::sleep(KEEPALIVE) => ": keep-alive\n\n".to_string(),
        _ = open.draining.changed() => return None,
    };
    Some((Ok(Bytes::from(frame)), open))
}
