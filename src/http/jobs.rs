//! The job-running routes, generic over the dialect: authorize and read the
//! body, parse it into a job, submit it to the dispatcher, and answer with
//! the dialect's JSON body or stream.

use std::time::Duration;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use tokio::sync::mpsc::UnboundedReceiver;

use super::auth::ClientKey;
use super::disconnect::Client;
use super::error::{ApiError, ErrorKind};
use super::{access, audit, body, limits, sse, stream_metrics, AccessNote, AppState, RequestId};
use crate::api::{Codec, Context, Dialect, Parsed};
use crate::dispatch::messages::Submit;
use crate::error::JobError;
use crate::job::{Completion, Job, JobEvent, JobSpec};
use crate::keys::Caller;

/// `POST` to a job-running route of dialect `C` (`/v1/messages`,
/// `/v1/chat/completions`, `/v1/responses`).
pub async fn create<C: Codec>(
    req: HttpRequest,
    key: ClientKey,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_limited(&req, payload, &state, C::DIALECT).await?;
    let parsed = C::parse(&body, &context(&req, &state, &key))?;
    if state.ledger.settings().record_content {
        audit::body(&req, &body);
    }
    respond::<C>(req, key, state, parsed).await
}

/// Runs a parsed request and answers with its body or stream.
pub async fn respond<C: Codec>(
    req: HttpRequest,
    key: ClientKey,
    state: web::Data<AppState>,
    mut parsed: Parsed<C::Meta>,
) -> Result<HttpResponse, ApiError> {
    check_model(&key, &parsed.spec.model, C::DIALECT)?;
    // Held until the response is done: the key's place among its
    // concurrent jobs (`max_concurrent`).
    let admitted = limits::admit(&req, &state, &key, true, C::DIALECT)?;
    parsed.spec.streamed = parsed.stream;
    let placed = crate::job::Placed::default();
    audit::job(&req, &parsed.spec.model, parsed.stream, &placed);
    let id = request_id(&req);
    let mut events =
        submit_placed(id, &state, parsed.spec, key.0.clone(), C::DIALECT, placed).await?;
    let client = Client::of(&req, &state.dispatcher);
    if parsed.stream {
        let keepalive = state.settings().server.keepalive();
        let first = first_events(&mut events, keepalive, &client, C::DIALECT).await?;
        // Innermost, so it sees what the codec says to keep.
        let encoder = crate::stored::Keeping::new(C::stream(parsed.meta), state.stores());
        let encoder = stream_metrics::observe_stream(&state, &req, C::DIALECT, encoder);
        let encoder = access::note_stream(&req, encoder);
        let encoder = audit::note_stream(&req, encoder);
        let encoder = limits::Holding::new(encoder, admitted);
        Ok(sse::response(first, events, encoder, keepalive, client))
    } else {
        let answer = collect(events, &client, C::DIALECT, |e| audit::observe(&req, e)).await?;
        state.metrics.completed(&req, C::DIALECT, &answer.usage);
        AccessNote::record(&req, answer.usage);
        let mut body = C::body(&parsed.meta, &answer);
        if let Some(kept) = C::kept(&parsed.meta, &body) {
            if !state.stores().keep_async(kept).await {
                body["store"] = serde_json::Value::Bool(false);
            }
        }
        drop(admitted);
        Ok(HttpResponse::Ok().json(body))
    }
}

/// 403 unless the caller's key may use `model` (the model the CLI is asked
/// for), naming the models it may use.
pub fn check_model(caller: &Caller, model: &str, dialect: Dialect) -> Result<(), ApiError> {
    if caller.allows_model(model) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::PermissionDenied,
        format!(
            "key `{}` may not use model `{model}`; it may use: {}",
            caller.name,
            caller.models.join(", ")
        ),
        dialect,
    )
    .with_param("model"))
}

/// What the request's headers, its caller and the settings in force add to
/// its body.
pub fn context(req: &HttpRequest, state: &AppState, caller: &Caller) -> Context {
    let opted_out = req
        .headers()
        .get(AGENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim(), "off" | "false" | "0" | "no"));
    let settings = state.settings();
    Context {
        default_model: settings.claude.default_model.clone(),
        agent_allowed: settings.agent.enabled && caller.agent && !opted_out,
        session: session_pin(req),
        scope: caller.scope.clone(),
        stored: Default::default(),
        connection_local: false,
        node: settings.server.node_id().to_string(),
    }
}

/// Admits a job; on success returns the receiver of its events.
pub async fn submit(
    req: &HttpRequest,
    state: &AppState,
    spec: JobSpec,
    key: &ClientKey,
    dialect: Dialect,
) -> Result<UnboundedReceiver<JobEvent>, ApiError> {
    submit_as(request_id(req), state, spec, key.0.clone(), dialect).await
}

/// The request id the access log gave `req`.
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// [`submit`] under the log id `id` (a WebSocket's turns have no request
/// of their own).
pub async fn submit_as(
    id: String,
    state: &AppState,
    spec: JobSpec,
    caller: std::sync::Arc<Caller>,
    dialect: Dialect,
) -> Result<UnboundedReceiver<JobEvent>, ApiError> {
    submit_placed(
        id,
        state,
        spec,
        caller,
        dialect,
        crate::job::Placed::default(),
    )
    .await
}

/// [`submit_as`], noting where the job runs in `placed` (usage ledger).
pub async fn submit_placed(
    id: String,
    state: &AppState,
    spec: JobSpec,
    caller: std::sync::Arc<Caller>,
    dialect: Dialect,
    placed: crate::job::Placed,
) -> Result<UnboundedReceiver<JobEvent>, ApiError> {
    let (mut job, events) = Job::new(id, spec);
    job.placed = placed;
    let job = job.with_caller(caller);
    match state.dispatcher.send(Submit(job)).await {
        Ok(Ok(())) => Ok(events),
        Ok(Err(error)) => Err(ApiError::from_job(error, dialect)),
        Err(_) => Err(ApiError::from_job(JobError::ShuttingDown, dialect)),
    }
}

/// Header with which a request opts out of agent mode (`off`).
pub const AGENT_HEADER: &str = "x-claude-pool-agent";

/// Header with which a client pins a conversation to a session id: its
/// turns go to the worker holding the session, whatever history they carry.
pub const SESSION_HEADER: &str = "x-claude-pool-session";

fn session_pin(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
}

/// The error a departed client's request ends with (nobody reads it).
fn departed_error(dialect: Dialect) -> ApiError {
    ApiError::new(ErrorKind::Api, "client disconnected", dialect)
}

/// Waits for the whole answer (non-streaming responses), showing each
/// event to `observe` (the usage ledger's note). Gives up,
/// withdrawing the job, as soon as the client has disconnected.
pub async fn collect(
    mut events: UnboundedReceiver<JobEvent>,
    client: &Client,
    dialect: Dialect,
    mut observe: impl FnMut(&JobEvent),
) -> Result<Completion, ApiError> {
    let departed = client.departed();
    tokio::pin!(departed);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                observe(&event);
                // The worker put the whole answer into the last event.
                if let Some(outcome) = event.into_outcome() {
                    return outcome.map_err(|e| ApiError::from_job(e, dialect));
                }
            }
            _ = &mut departed => {
                client.withdraw(&mut events);
                return Err(departed_error(dialect));
            }
        }
    }
    Err(ApiError::from_job(
        JobError::WorkerCrashed("the worker stopped without finishing the response".into()),
        dialect,
    ))
}

/// For streams: waits up to `patience` for the first event, so that a job
/// failing early (upstream 400, 429, …) still gets a real HTTP status.
/// Returns the events to open the stream with (none if it took longer).
/// A client that leaves meanwhile (its job queued, say) withdraws the job.
pub async fn first_events(
    events: &mut UnboundedReceiver<JobEvent>,
    patience: Duration,
    client: &Client,
    dialect: Dialect,
) -> Result<Vec<JobEvent>, ApiError> {
    let first = tokio::select! {
        first = tokio::time::timeout(patience, events.recv()) => first,
        _ = client.departed() => {
            client.withdraw(events);
            return Err(departed_error(dialect));
        }
    };
    match first {
        Ok(Some(JobEvent::Failed(error))) => Err(ApiError::from_job(error, dialect)),
        Ok(Some(event)) => Ok(vec![event]),
        Ok(None) => Err(ApiError::from_job(
            JobError::WorkerCrashed("the worker stopped before answering".into()),
            dialect,
        )),
        Err(_) => Ok(Vec::new()),
    }
}
