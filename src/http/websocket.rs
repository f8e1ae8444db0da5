//! The Responses API over a WebSocket (`GET /v1/responses` with an
//! upgrade), as OpenAI's WebSocket mode and Codex (`supports_websockets`)
//! speak it: each turn is a `response.create` message (the body of `POST
//! /v1/responses` with a `type`; `stream` is implied, `background` refused),
//! answered with the same events as the SSE stream, one text message each.
//!
//! One socket is one conversation. Its turns carry a session pin of their
//! own (as `x-claude-pool-session` would), so every turn goes to the worker
//! holding the socket's conversation and continues the live CLI process; the
//! socket keeps its latest response in memory, stored or not, so the next
//! turn may send `previous_response_id` and only its new items. Turns are
//! serialised: a `response.create` while one runs gets an `error` event and
//! the running one carries on.
//!
//! Idle: the socket holds no worker of its own. The worker stays bound to
//! its conversation as after any turn, and the pool lets it go after
//! `pool.affinity_idle_secs` (or sooner, for a request that needs room);
//! the socket's next turn then starts a fresh worker from the rendered
//! history, which the client does not see. Keep-alive: the daemon pings
//! every `server.keepalive_secs` and closes a socket that has sent nothing
//! (not even a pong) for three intervals. Drain (shutdown): an idle socket
//! is closed at once with 1001 (going away); a running turn finishes first
//! (within `server.shutdown_grace_secs`), then the socket is closed the same
//! way; the client reconnects, to another node behind a load balancer.
//!
//! Each turn leaves its own row in the usage ledger (see
//! [`super::websocket_ledger`]).

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use super::auth::ClientKey;
use super::error::{ApiError, ErrorKind};
use super::websocket_ledger::{self, SocketLedger};
use super::{jobs, limits, AppState};
use crate::api::responses::stream::ResponseStream;
use crate::api::responses::Responses;
use crate::api::{Codec, Context, Dialect, EventEncoder, Frame};
use crate::error::JobError;
use crate::job::{JobEvent, Placed};
use crate::keys::{Admitted, Caller};
use crate::ledger::Trail;
use crate::stored::connection::ConnectionStore;
use crate::stored::{Keeping, Stores};

const DIALECT: Dialect = Dialect::Responses;
/// A socket that sent nothing for this many keep-alive intervals is closed.
const SILENT_INTERVALS: u32 = 3;

/// Whether `req` asks for a WebSocket upgrade.
pub fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `GET /v1/responses`: the upgrade. The key is checked as for any request;
/// a browser page (an `Origin` not in `server.cors_allowed_origins`) is
/// refused, since browsers let any site open a WebSocket to localhost.
pub async fn upgrade(
    req: HttpRequest,
    key: ClientKey,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.settings();
    if !is_upgrade(&req) {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            "GET /v1/responses is the WebSocket transport: send an upgrade, or POST to create a response",
            DIALECT,
        ));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| {
            settings
                .server
                .cors_allowed_origins
                .iter()
                .any(|a| a == o || a == "*")
        });
        if !allowed {
            return Err(ApiError::new(
                ErrorKind::HostNotAllowed,
                "WebSocket from a browser origin not in server.cors_allowed_origins",
                DIALECT,
            ));
        }
    }
    let (response, session, messages) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::invalid(format!("WebSocket handshake: {e}"), DIALECT))?;
    let messages = messages
        .max_frame_size(settings.server.max_body_bytes)
        .aggregate_continuations()
        .max_continuation_size(settings.server.max_body_bytes);
    let mut ctx = jobs::context(&req, &state, &key);
    let ledger = SocketLedger::of(&req, &state, &key);
    let socket = crate::ids::of_node("ws_", &ctx.node);
    let connection = Arc::new(ConnectionStore::new(state.responses.clone()));
    ctx.connection_local = true;
    let conversation = SocketConversation {
        pin: ctx.session.is_none().then(|| socket.clone()),
        stores: Stores {
            responses: Some(connection.clone()),
            conversations: state.conversations.clone(),
        },
        connection,
    };
    log::info!("[{}] WebSocket {socket} opened", jobs::request_id(&req));
    actix_rt::spawn(serve(
        state.into_inner(),
        key.0,
        ctx,
        conversation,
        Socket { id: socket, ledger },
        session,
        Box::pin(messages),
    ));
    Ok(response)
}

/// The socket's own conversation: its latest response, and the session pin
/// its turns carry while they continue it (none when the client pinned a
/// session of its own with `x-claude-pool-session`).
struct SocketConversation {
    pin: Option<String>,
    connection: Arc<ConnectionStore>,
    /// The connection's store in front of the daemon's, and conversations.
    stores: Stores,
}

impl SocketConversation {
    /// The context of a turn continuing `previous` (its
    /// `previous_response_id`). Only a turn that continues the socket's
    /// conversation exactly — the first turn without a previous response,
    /// or one continuing the socket's latest — carries the pin, which sends
    /// it to the worker holding that conversation whatever its input says.
    /// Any other (full history resent mid-socket, a fork from an older
    /// response) goes by its content, as over HTTP.
    fn context(&self, base: &Context, previous: Option<&str>) -> Context {
        let latest = self.connection.latest_id();
        let continues = latest.as_deref() == previous;
        let mut ctx = base.clone();
        if continues && ctx.session.is_none() {
            ctx.session = self.pin.clone();
        }
        ctx
    }
}

/// The socket's id, and what its turns' ledger rows share.
struct Socket {
    id: String,
    ledger: SocketLedger,
}

/// A turn running on the socket.
struct Turn {
    events: UnboundedReceiver<JobEvent>,
    encoder: Keeping<ResponseStream>,
    /// The turn's place among its key's concurrent jobs, given back when
    /// the turn ends.
    _admitted: Option<Admitted>,
    /// Its ledger row on the way (taken when recorded).
    trail: Option<Trail>,
}

type Messages = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<AggregatedMessage, actix_ws::ProtocolError>>>,
>;

/// The socket's life: turns one at a time, pings, and the close.
async fn serve(
    state: Arc<AppState>,
    caller: Arc<Caller>,
    ctx: Context,
    conversation: SocketConversation,
    socket: Socket,
    mut session: Session,
    mut messages: Messages,
) {
    let keepalive = state.settings().server.keepalive();
    let mut draining = state.draining();
    let mut turn: Option<Turn> = None;
    let mut ping = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    let mut heard = Instant::now();
    let mut turns = 0u64;
    let reason = loop {
        if *draining.borrow() && turn.is_none() {
            break Some(going_away("the server is draining; reconnect"));
        }
        tokio::select! {
            message = messages.next() => {
                heard = Instant::now();
                match message {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        let reply = match turn {
                            Some(_) => Err(in_flight()),
                            None => {
                                turns += 1;
                                let id = format!("{}/{turns}", socket.id);
                                start(&state, &caller, &ctx, &conversation, &socket.ledger, &id, text.as_bytes())
                                    .await
                                    .map_err(|error| {
                                        state.ledger.record(socket.ledger.refused(&id, &error));
                                        error_event(&error)
                                    })
                            }
                        };
                        match reply {
                            Ok(started) => turn = Some(started),
                            Err(error) => {
                                if session.text(error.to_string()).await.is_err() {
                                    break None;
                                }
                            }
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        let error = error_event(&ApiError::invalid(
                            "binary messages are not supported: send response.create as text",
                            DIALECT,
                        ));
                        if session.text(error.to_string()).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    // Closed by the client, or broken: a running turn's
                    // receiver is dropped with `turn`, which interrupts it.
                    Some(Ok(AggregatedMessage::Close(_))) | Some(Err(_)) | None => break None,
                }
            }
            event = next_event(&mut turn) => {
                let Some(running) = turn.as_mut() else { continue };
                if let JobEvent::Finished(completion) = &event {
                    state.metrics.token_counter().count(&completion.usage);
                }
                let terminal = event.is_terminal();
                if let Some(trail) = running.trail.as_mut() {
                    trail.observe(&event);
                }
                if terminal {
                    if let Some(trail) = running.trail.take() {
                        state.ledger.record(websocket_ledger::ended(trail, Some(&event)));
                    }
                }
                let frames = running.encoder.encode(event);
                if send_frames(&mut session, frames).await.is_err() {
                    break None;
                }
                if terminal {
                    turn = None;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > keepalive * SILENT_INTERVALS {
                    break Some(CloseReason {
                        code: CloseCode::Policy,
                        description: Some("no message or pong for three keep-alive intervals".into()),
                    });
                }
                if session.ping(b"").await.is_err() {
                    break None;
                }
            }
            _ = draining.changed() => {}
        }
    };
    // A turn the client left by closing the socket.
    if let Some(trail) = turn.and_then(|t| t.trail) {
        state.ledger.record(websocket_ledger::ended(trail, None));
    }
    log::info!("WebSocket {} closed after {turns} turns", socket.id);
    let _ = session.close(reason).await;
}

fn going_away(why: &str) -> CloseReason {
    CloseReason {
        code: CloseCode::Away,
        description: Some(why.into()),
    }
}

/// The running turn's next event; never, without one.
async fn next_event(turn: &mut Option<Turn>) -> JobEvent {
    match turn {
        Some(running) => running.events.recv().await.unwrap_or_else(|| {
            JobEvent::Failed(JobError::WorkerCrashed(
                "the worker stopped without finishing the response".into(),
            ))
        }),
        None => std::future::pending().await,
    }
}

async fn send_frames(session: &mut Session, frames: Vec<Frame>) -> Result<(), actix_ws::Closed> {
    for frame in frames {
        if let Frame::Event(_, data) = frame {
            session.text(data.to_string()).await?;
        }
    }
    Ok(())
}

/// Parses a `response.create` message and submits its job, as `caller`
/// (its models and limits checked as for a request), as turn `log_id`
/// with its row in `ledger` on the way.
async fn start(
    state: &AppState,
    caller: &Arc<Caller>,
    base: &Context,
    conversation: &SocketConversation,
    ledger: &SocketLedger,
    log_id: &str,
    text: &[u8],
) -> Result<Turn, ApiError> {
    let (body, fields) = request_body(text)?;
    let ctx = conversation.context(base, fields["previous_response_id"].as_str());
    let parsed = super::responses::parse(&body, ctx, &conversation.stores).await?;
    let placed = Placed::default();
    let trail = ledger.turn(log_id, &parsed.spec.model, placed.clone(), text);
    if fields["generate"] == false {
        return Ok(prewarmed(parsed.meta, &conversation.stores, trail));
    }
    jobs::check_model(caller, &parsed.spec.model, DIALECT)?;
    let admitted = limits::check(state, caller, true, DIALECT).0?;
    let events = jobs::submit_placed(
        log_id.to_string(),
        state,
        parsed.spec,
        caller.clone(),
        DIALECT,
        placed,
    )
    .await?;
    Ok(Turn {
        events,
        encoder: Keeping::new(Responses::stream(parsed.meta), conversation.stores.clone()),
        _admitted: Some(admitted),
        trail: Some(trail),
    })
}

/// `generate: false` (Codex's prewarm of a new socket): the response is
/// made and kept, so a later turn may continue it, but no model turn runs;
/// it completes at once with no output (its ledger row has no tokens).
fn prewarmed(
    meta: crate::api::responses::output::ResponseMeta,
    stores: &Stores,
    trail: Trail,
) -> Turn {
    let (events, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = events.send(JobEvent::Finished(crate::job::Completion {
        stop_reason: Some(crate::job::StopReason::EndTurn),
        stop_sequence: None,
        ..Default::default()
    }));
    Turn {
        events: rx,
        encoder: Keeping::new(Responses::stream(meta), stores.clone()),
        _admitted: None,
        trail: Some(trail),
    }
}

/// The `POST /v1/responses` body a `response.create` message carries, as
/// bytes and as JSON.
fn request_body(text: &[u8]) -> Result<(Vec<u8>, Value), ApiError> {
    let invalid = |m: String| ApiError::invalid(m, DIALECT);
    let mut message: Value =
        serde_json::from_slice(text).map_err(|e| invalid(format!("invalid JSON message: {e}")))?;
    let Some(fields) = message.as_object_mut() else {
        return Err(invalid("a message must be a JSON object".into()));
    };
    match fields.remove("type").as_ref().and_then(Value::as_str) {
        Some("response.create") => {}
        Some(other) => {
            return Err(invalid(format!(
                "unsupported event type `{other}`; send response.create"
            )))
        }
        None => return Err(invalid("type: missing; send response.create".into())),
    }
    if fields.remove("background") == Some(Value::Bool(true)) {
        return Err(
            invalid("background: not supported over WebSocket; use POST".into())
                .with_param("background"),
        );
    }
    fields.insert("stream".into(), Value::Bool(true));
    Ok((message.to_string().into_bytes(), message))
}

/// A `response.create` sent while a response runs on the socket.
fn in_flight() -> Value {
    let mut event = error_event(&ApiError::invalid(
        "A response is already in progress on this connection: wait for its \
         response.completed (or another final event) before the next response.create.",
        DIALECT,
    ));
    event["error"]["code"] = json!("response_already_in_flight");
    event
}

/// An error as a WebSocket event: `{"type":"error","status",
/// "error":{"type","code","message","param"}}`.
fn error_event(error: &ApiError) -> Value {
    let mut body = error.body()["error"].clone();
    if error.param == Some("previous_response_id") {
        body["code"] = json!("previous_response_not_found");
    }
    json!({"type": "error", "status": error.status().as_u16(), "error": body})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_create_message_is_a_streamed_request_body() {
        let (bytes, body) =
            request_body(br#"{"type":"response.create","input":"hi","stream":false}"#).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), body);
        assert_eq!(body, json!({"input": "hi", "stream": true}));
        let e = request_body(br#"{"type":"response.cancel"}"#).unwrap_err();
        assert!(e.message.contains("response.cancel"), "{}", e.message);
        let e = request_body(br#"{"type":"response.create","background":true}"#).unwrap_err();
        assert_eq!(error_event(&e)["error"]["param"], "background");
        assert!(request_body(b"[1]").is_err());
        assert!(request_body(b"{").is_err());
    }

    #[test]
    fn only_turns_that_continue_the_socket_carry_its_pin() {
        let connection = Arc::new(ConnectionStore::new(None));
        let socket = SocketConversation {
            pin: Some("ws_1".into()),
            connection: connection.clone(),
            stores: Stores::default(),
        };
        let base = Context::default();
        assert_eq!(socket.context(&base, None).session.as_deref(), Some("ws_1"));
        assert_eq!(socket.context(&base, Some("resp_x")).session, None);
        use crate::stored::responses::{ResponseStore, StoredResponse};
        connection
            .put(&StoredResponse {
                id: "resp_a".into(),
                scope: String::new(),
                response: json!({"store": false}),
                input: Vec::new(),
                context: Vec::new(),
            })
            .unwrap();
        assert_eq!(
            socket.context(&base, Some("resp_a")).session.as_deref(),
            Some("ws_1")
        );
        assert_eq!(socket.context(&base, None).session, None, "history resent");
        assert_eq!(
            socket.context(&base, Some("resp_old")).session,
            None,
            "a fork"
        );
        let pinned = Context {
            session: Some("client".into()),
            ..Context::default()
        };
        assert_eq!(
            socket.context(&pinned, Some("resp_old")).session.as_deref(),
            Some("client"),
            "the client's own pin stands"
        );
    }

    #[test]
    fn errors_are_events_with_a_status() {
        let e = ApiError::invalid("Previous response with id 'x' not found.", DIALECT)
            .with_param("previous_response_id");
        let event = error_event(&e);
        assert_eq!(event["type"], "error");
        assert_eq!(event["status"], 400);
        assert_eq!(event["error"]["code"], "previous_response_not_found");
        assert_eq!(event["error"]["type"], "invalid_request_error");
        assert_eq!(in_flight()["error"]["code"], "response_already_in_flight");
    }
}
