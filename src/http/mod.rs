//! The actix-web front end: routes, request ids, access log, and the server.

pub mod access;
pub mod account_metrics;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod background;
pub mod batch_objects;
pub mod batches;
pub mod body;
pub mod conversations;
pub mod cors;
pub mod count_tokens;
pub mod dashboard;
pub mod disconnect;
pub mod error;
pub mod health;
pub mod host;
pub mod jobs;
pub mod ledger_metrics;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod responses;
pub mod root;
pub mod routes;
pub mod sse;
pub mod store_metrics;
pub mod stream_metrics;
pub mod usage;
pub mod websocket;
pub mod websocket_ledger;

use std::net::TcpListener;
use std::sync::Arc;

use actix::Addr;
use actix_web::dev::{Server, Service};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::ConnectionType;
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpServer};

use crate::config::{Settings, SharedSettings};
use crate::dispatch::Dispatcher;
use crate::keys::{KeyRing, Limiter};
use crate::store::Store;
use crate::stored::responses::ResponseStore;
use crate::stored::write_behind::ConversationsBehind;
use crate::stored::Stores;
pub use access::{AccessNote, RequestId};

/// Shared by all handlers.
pub struct AppState {
    pub dispatcher: Addr<Dispatcher>,
    /// The settings in force, the one copy the daemon shares: a reload
    /// (SIGHUP) publishes a new version; read through
    /// [`AppState::settings`].
    settings: SharedSettings,
    /// This daemon's Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// The durable store (`store.path`), shared by every feature
    /// that keeps state across restarts.
    pub store: Store,
    /// Woken when a batch is created or canceled.
    pub batch_runner: crate::batches::RunnerHandle,
    /// Stored responses of the Responses API (in `store`).
    pub responses: Option<Arc<dyn ResponseStore>>,
    /// Conversations of the Responses API (in `store`), their items
    /// added behind the request.
    pub conversations: Option<Arc<ConversationsBehind>>,
    /// Background responses running or lately finished.
    pub runs: background::Runs,
    /// Becomes true when the daemon starts draining (shutdown): background
    /// work and WebSockets wind down.
    draining: tokio::sync::watch::Sender<bool>,
    /// The usage ledger and audit log: a row per request.
    pub ledger: crate::ledger::Ledger,
    /// Every client and admin key (config and store), read by the
    /// `auth::ClientKey` and `auth::AdminCaller` extractors.
    pub keys: Arc<KeyRing>,
    /// Per-key limits checked at admission (`limits::admit`); the ledger
    /// hands it token usage (`Limiter::set_usage`).
    pub limiter: Arc<Limiter>,
    /// What the admins' event stream (`/admin/events`) carries.
    pub events: dashboard::Hub,
}

impl AppState {
    pub fn new(
        dispatcher: Addr<Dispatcher>,
        settings: SharedSettings,
        store: Store,
        batch_runner: crate::batches::RunnerHandle,
    ) -> Self {
        let state = Self {
            dispatcher,
            metrics: metrics::Metrics::new(),
            store,
            batch_runner,
            responses: None,
            conversations: None,
            runs: background::Runs::default(),
            draining: tokio::sync::watch::channel(false).0,
            ledger: crate::ledger::Ledger::default(),
            keys: Arc::new(KeyRing::from_settings(settings.get())),
            limiter: Arc::default(),
            events: dashboard::Hub::default(),
            settings,
        };
        state.events.watch(&state.ledger);
        state
    }

    /// Takes its keys from `keys` (with the store's).
    pub fn with_keys(mut self, keys: Arc<KeyRing>) -> Self {
        self.keys = keys;
        self
    }

    /// The daemon has begun draining (see [`AppState::draining`]).
    pub fn begin_drain(&self) {
        self.draining.send_replace(true);
    }

    /// Whether the daemon drains now.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Whether the daemon drains, now and as it changes.
    pub fn draining(&self) -> tokio::sync::watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Records requests in `ledger`.
    pub fn with_ledger(mut self, ledger: crate::ledger::Ledger) -> Self {
        self.events.watch(&ledger);
        self.ledger = ledger;
        self
    }

    /// Serves stored responses from `responses`.
    pub fn with_responses(mut self, responses: Arc<dyn ResponseStore>) -> Self {
        self.responses = Some(responses);
        self
    }

    /// Serves conversations from `conversations`.
    pub fn with_conversations(mut self, conversations: Arc<ConversationsBehind>) -> Self {
        self.conversations = Some(conversations);
        self
    }

    /// The stores of the Responses API's stored state.
    pub fn stores(&self) -> Stores {
        Stores {
            responses: self.responses.clone(),
            conversations: self.conversations.clone(),
        }
    }

    /// The settings in force now. A request keeps the ones it started with.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.get()
    }

    /// The shared settings, which a reload publishes to.
    pub fn shared_settings(&self) -> &SharedSettings {
        &self.settings
    }
}

/// Binds the app to `listener` and returns the (not yet awaited) server.
pub fn server(state: web::Data<AppState>, listener: TcpListener) -> std::io::Result<Server> {
    let settings = state.settings();
    let cors_origins = settings.server.cors_allowed_origins.clone();
    let workers = match settings.server.http_workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    // Every response names the node that answered (for the load balancer's
    // logs and the clients' bug reports); node ids are header-safe.
    let node = HeaderValue::from_str(settings.server.node_id()).ok();
    let server = HttpServer::new(move || {
        let observed = state.clone();
        let node = node.clone();
        App::new()
            .app_data(state.clone())
            .wrap_fn(move |req, srv| {
                let access = access::Access::begin(&req);
                audit::begin(&req);
                let state = observed.clone();
                let fut = srv.call(req);
                let node = node.clone();
                async move {
                    let mut res = fut.await?;
                    limits::add_headers(&mut res);
                    if let Some(node) = node {
                        let name = HeaderName::from_static(crate::node::HEADER);
                        res.headers_mut().insert(name, node);
                    }
                    if state.is_draining() {
                        // No connection is kept for reuse once the node
                        // drains: a balancer's next request opens a new one,
                        // refused outright once the listener closes, rather
                        // than racing the close on an idle kept-alive one
                        // (an empty response, which only a replaying retry
                        // rescues).
                        res.response_mut()
                            .head_mut()
                            .set_connection_type(ConnectionType::Close);
                    }
                    let observed = state.metrics.on_response(&res);
                    let recorded = audit::on_response(&state, &res);
                    Ok(access.finish(res, move || {
                        observed();
                        if let Some(record) = recorded {
                            record();
                        }
                    }))
                }
            })
            // Outermost, so that preflights are answered before anything else.
            .wrap(Condition::new(
                !cors_origins.is_empty(),
                cors::middleware(&cors_origins),
            ))
            .configure(routes::register)
            .default_service(web::to(routes::not_found))
    })
    .on_connect(disconnect::remember_socket)
    // A stream's frames are small writes in quick succession: with Nagle's
    // algorithm each waited for the client's delayed ACK (40 ms on Linux),
    // most of a streamed turn's time (benches/turn_stages.rs).
    .tcp_nodelay(true)
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_grace_secs + 5)
    .listen(listener)?
    .run();
    Ok(server)
}
