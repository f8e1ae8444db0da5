//! Each turn on a Responses WebSocket leaves its own row in the usage
//! ledger, as a `POST /v1/responses` would: the upgrade's row (status 101)
//! says only that the socket opened, and one socket may carry hours of
//! turns. A turn's row has the socket's key, client address and user
//! agent, `WS` as its method, `<socket id>/<turn>` as its request id, and
//! the turn's model, placement, status, tokens and timings. Rows go to the
//! ledger's totals too, so turns count in the per-key `/metrics`.
//!
//! A turn refused before it ran (bad message, a model the key may not use,
//! a limit) leaves a row with its error; a turn the client left by closing
//! the socket ends with status 499 (client closed request).

use actix_web::HttpRequest;

use super::audit;
use super::error::ApiError;
use super::AppState;
use crate::api::Dialect;
use crate::job::{JobEvent, Placed};
use crate::keys::Caller;
use crate::ledger::{Record, Trail};

/// The ledger's method for a WebSocket turn.
pub const METHOD: &str = "WS";
/// Status of a turn whose client closed the socket before it ended.
pub const CLIENT_CLOSED: u16 = 499;

/// What every turn's row of one socket shares.
#[derive(Debug, Clone)]
pub struct SocketLedger {
    /// What every row of the socket starts from.
    base: Record,
    record_content: bool,
}

impl SocketLedger {
    /// The rows of the socket `req` upgraded, opened by `caller`.
    pub fn of(req: &HttpRequest, state: &AppState, caller: &Caller) -> Self {
        let settings = state.settings();
        let user_agent = req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(512).collect());
        Self {
            base: Record {
                key: caller.name.clone(),
                method: METHOD.into(),
                route: req.path().chars().take(512).collect(),
                dialect: Some("responses".into()),
                node: settings.server.node_id().to_string(),
                stream: true,
                client_addr: audit::client_addr(req, &settings).map(|ip| ip.to_string()),
                user_agent,
                ..Record::default()
            },
            record_content: state.ledger.settings().record_content,
        }
    }

    /// The trail of turn `id` asking for `model`, run as the job that
    /// reports where it runs in `placed`; `message` is what the client sent
    /// (kept only with `ledger.record_content`).
    pub fn turn(&self, id: &str, model: &str, placed: Placed, message: &[u8]) -> Trail {
        let row = Record {
            request_id: id.to_string(),
            model_asked: Some(model.to_string()),
            ..self.base.clone()
        };
        let content = self
            .record_content
            .then(|| String::from_utf8_lossy(message).into_owned());
        Trail::start(row, placed, content)
    }

    /// The row of turn `id`, refused with `error` before it ran.
    pub fn refused(&self, id: &str, error: &ApiError) -> Record {
        let trail = Trail::start(
            Record {
                request_id: id.to_string(),
                ..self.base.clone()
            },
            Placed::default(),
            None,
        );
        trail.finish(
            error.status().as_u16(),
            Some(error.anthropic_type().to_string()),
        )
    }
}

/// The row of a turn that ended with `last` (its terminal event), or whose
/// client left (`None`).
pub fn ended(trail: Trail, last: Option<&JobEvent>) -> Record {
    match last {
        Some(JobEvent::Failed(error)) => {
            let error = ApiError::from_job(error.clone(), Dialect::Responses);
            trail.finish(
                error.status().as_u16(),
                Some(error.anthropic_type().to_string()),
            )
        }
        Some(_) => trail.finish(200, None),
        None => trail.finish(CLIENT_CLOSED, None),
    }
}
