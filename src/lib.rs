//! claude-pool: the Anthropic Messages API, OpenAI Chat Completions and the
//! OpenAI Responses API served by a supervised pool of long-lived Claude Code CLI processes, so
//! that no request pays the CLI's cold start.
//!
//! # Layout
//! - [`config`]: settings from TOML and `CLAUDE_POOL__…` environment, one
//!   file a section, and their validation.
//! - [`http`]: actix-web routes (one job handler generic over the
//!   dialect), SSE framing, the access log, `/metrics`, and the HTTP status
//!   of every error.
//! - [`api`]: the dialects, each an [`api::Codec`] in a folder of its own:
//!   request types, request body to job, answer to response body or stream
//!   frames; and their error shapes.
//! - [`prompt`]: a client's conversation rendered for a fresh CLI turn.
//! - [`accounts`]: several Claude accounts' rate limits and standing (what
//!   an account is, `[[accounts]]`, is a section of [`config`]).
//! - [`affinity`]: recognising a request that continues a live conversation.
//! - [`batches`]: message batches, kept in the store and run on spare capacity.
//! - [`job`], [`error`]: the domain between HTTP and workers, and the
//!   assembly of a job's events into a finished answer.
//! - [`dispatch`]: the dispatcher actor — admission, queue, pool.
//! - [`worker`]: worker actors, each feeding a pure session (the
//!   conversation's state machine: inputs and a clock in, effects out), the
//!   CLI process and its line protocol, typed both ways.
//! - [`notify`]: systemd readiness, stopping and watchdog notifications.
//! - [`reload`]: what a configuration reload (SIGHUP) may change.
//! - [`store`]: the durable SQLite store shared by features that keep state.
//! - [`stored`]: what the Responses API keeps between requests (stored
//!   responses, conversations), and how the routes reach it off their
//!   threads: the codec in [`api`] only reads what they looked up.
//! - [`ledger`]: the usage ledger and audit log (a row per request, hourly
//!   rollups, per-key usage windows for limits), written behind requests.
//! - [`node`]: this node's id, carried by every id the daemon hands out.
//! - [`keys`]: named client keys and admin keys, who a request acts for
//!   ([`keys::Caller`]), and the per-key limits checked at admission.
//! - [`private_fs`]: directories and files only the daemon's user may use.
//!
//! Imports point down the data path of a request: [`http`] uses [`api`],
//! [`stored`], [`dispatch`] and [`batches`]; [`api`] uses [`job`],
//! [`prompt`] and [`affinity`], and no I/O module ([`store`], [`stored`],
//! [`batches`]: a test checks it); [`dispatch`] uses [`worker`] and
//! [`accounts`]; [`worker`] uses [`job`] and [`accounts`], and reports back
//! through a `Recipient`, so it never names the dispatcher. [`config`],
//! [`job`], [`error`], [`keys`], [`node`] and [`private_fs`] are at the
//! bottom: none of them imports [`http`], [`api`], [`dispatch`] or
//! [`worker`] ([`keys`] uses only [`config`] and [`store`]).
// One clock (clippy.toml): std::time::Instant only where a module says why.
#![deny(clippy::disallowed_types)]

pub mod accounts;
pub mod affinity;
pub mod api;
pub mod batches;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod http;
pub mod ids;
pub mod job;
pub mod keys;
pub mod keys_cli;
#[cfg(test)]
mod layering;
pub mod ledger;
pub mod node;
pub mod notify;
pub mod private_fs;
pub mod prompt;
pub mod reload;
pub mod store;
pub mod stored;
pub mod worker;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use actix::{Actor, Addr};
use actix_web::web;

use config::Settings;
use dispatch::messages::{Drain, GetHealth, Reconfigure, StopAll};
use dispatch::Dispatcher;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("refusing to listen on {0} without API keys: set server.api_keys or [[keys]] (or server.allow_unauthenticated = true to really serve anyone)")]
    UnauthenticatedPublicListener(std::net::SocketAddr),
    #[error("refusing agent mode without client keys: its tools run code on this host, and without keys anyone who reaches the port (a web page, another local user, a job's own tools calling the daemon) runs jobs; set server.api_keys, server.api_keys_file or [[keys]]")]
    AgentWithoutKeys,
    #[error("refusing server.cors_allowed_origins without client keys: any page of those origins opened in a browser that reaches this daemon could use it; set server.api_keys, server.api_keys_file or [[keys]] (or server.allow_keyless_cors = true to really allow it)")]
    KeylessCors,
    #[error("claude.command `{0}` is not an executable file (nor found on PATH)")]
    CommandNotFound(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("keys: {0}")]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Sandbox(#[from] worker::sandbox::SandboxError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// Refuses settings that would expose the pool without authentication:
/// a public listener, agent mode or CORS origins with no client keys.
/// Checked at start and on every reload (keys may be removed by one).
pub fn check_exposure(settings: &Settings, addr: std::net::SocketAddr) -> Result<(), StartError> {
    let server = &settings.server;
    let public = !addr.ip().is_loopback();
    if public && !settings.requires_keys() && !server.allow_unauthenticated {
        return Err(StartError::UnauthenticatedPublicListener(addr));
    }
    if settings.agent.enabled && !settings.requires_keys() {
        return Err(StartError::AgentWithoutKeys);
    }
    if !server.cors_allowed_origins.is_empty()
        && !settings.requires_keys()
        && !server.allow_keyless_cors
    {
        return Err(StartError::KeylessCors);
    }
    Ok(())
}

/// Runs the daemon on `listener` until `shutdown` resolves, then drains:
/// no new jobs, in-flight jobs get `shutdown_grace_secs` to finish, workers
/// are stopped, and the function returns once they have exited.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let (_, no_reloads) = tokio::sync::watch::channel(Arc::new(settings.clone()));
    run_with_reload(settings, listener, shutdown, no_reloads).await
}

/// [`run`], taking reloaded settings from `reload` while it runs: each new
/// value is compared with the settings in force, its reloadable keys are
/// applied (see [`reload`]), and the others are logged as needing a restart.
pub async fn run_with_reload(
    mut settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    reload: tokio::sync::watch::Receiver<Arc<Settings>>,
) -> Result<(), StartError> {
    settings.read_api_keys_file()?;
    settings.read_account_env_files()?;
    let addr = listener.local_addr().map_err(|source| StartError::Io {
        context: "listener address".into(),
        source,
    })?;
    check_exposure(&settings, addr)?;
    if !addr.ip().is_loopback()
        && !settings.requires_keys()
        && settings.server.allowed_hosts.is_empty()
    {
        log::warn!(
            "serving {addr} without API keys: requests are answered only when addressed to \
             localhost, 127.0.0.1 or [::1]; list the names clients use in server.allowed_hosts"
        );
    }
    let Some(cli) = worker::spawn::find_executable(&settings.claude.command) else {
        return Err(StartError::CommandNotFound(settings.claude.command.clone()));
    };
    let working_dir =
        worker::spawn::prepare_working_dir(&settings).map_err(|source| StartError::Io {
            context: "creating the workers' directories".into(),
            source,
        })?;
    let store_path = store::resolve_path(
        settings.store.path.as_deref(),
        std::env::var("STATE_DIRECTORY").ok().as_deref(),
    );
    let store = store::Store::open(&store_path)?;
    store.install::<batches::store::BatchSchema>()?;
    let ledger = ledger::Ledger::start(store.clone(), settings.ledger.clone())?;
    log::info!("store: {}", store_path.display());
    // The one copy of the settings every part reads; reloads publish to it.
    let shared = config::SharedSettings::new(settings);
    let settings = shared.get();
    let keys = Arc::new(keys::KeyRing::open(settings.clone(), Some(store.clone()))?);
    let spawn = worker::spawn::spawn_spec(&settings, working_dir.path());
    let agent_root = match settings.agent.enabled {
        true => Some(
            worker::spawn::prepare_workspace_root(&settings).map_err(|source| StartError::Io {
                context: "creating the agent workspace root".into(),
                source,
            })?,
        ),
        false => None,
    };
    let agent_spawn = match &agent_root {
        Some(root) => Some(agent_recipe(&settings, &cli, root.path())?),
        None => None,
    };
    let spare = Arc::new(tokio::sync::Notify::new());
    let dispatcher = Dispatcher::new(shared.clone(), spawn)
        .with_agent(agent_spawn)
        .with_spare_signal(spare.clone())
        .start();
    // Each batch request runs as its batch's key and leaves a ledger row.
    let runner = batches::Runner::new(store.clone(), dispatcher.clone(), shared.clone(), spare)
        .with_keys(keys.clone())
        .with_ledger(ledger.clone());

    let responses = {
        use stored::{responses::SqliteResponses, write_behind::WriteBehind};
        let max = settings.responses.max_stored;
        let sqlite = Arc::new(SqliteResponses::new(
            store.clone(),
            max,
            settings.responses.ttl(),
        )?);
        Arc::new(match max {
            0 => WriteBehind::in_line(sqlite),
            _ => WriteBehind::new(
                sqlite,
                store.health().clone(),
                settings.responses.max_unwritten_bytes(),
            ),
        })
    };
    let conversations = Arc::new(stored::write_behind::ConversationsBehind::new(
        Arc::new(stored::conversations::SqliteConversations::new(
            store.clone(),
        )?),
        store.health().clone(),
        settings.responses.max_unwritten_bytes(),
    ));
    let state = web::Data::new(
        http::AppState::new(dispatcher.clone(), shared, store.clone(), runner.handle())
            .with_responses(responses.clone())
            .with_conversations(conversations.clone())
            .with_ledger(ledger.clone())
            .with_keys(keys),
    );
    // Token budgets are read from the ledger's windows.
    state.limiter.set_usage(Arc::new(ledger.clone()));
    let tokens = state.metrics.token_counter();
    let drain_state = state.clone();
    let batch_runner = runner
        .counting_tokens(move |usage| tokens.count(usage))
        .start();
    let reload_task = actix_rt::spawn(apply_reloads(reload, state.clone(), addr));
    let server = http::server(state, listener).map_err(|source| StartError::Io {
        context: format!("serving on {addr}"),
        source,
    })?;
    let handle = server.handle();
    let server_task = actix_rt::spawn(server);
    log::info!(
        "claude-pool {} listening on http://{addr} with {} workers",
        env!("CARGO_PKG_VERSION"),
        settings.pool.size
    );
    let ready_task = actix_rt::spawn(notify_when_ready(dispatcher.clone()));
    let watchdog_task = notify::watchdog_interval()
        .map(|every| actix_rt::spawn(feed_watchdog(dispatcher.clone(), every)));

    shutdown.await;
    ready_task.abort();
    reload_task.abort();
    notify::notify("STOPPING=1");
    log::info!("shutdown requested: draining");
    batch_runner.stop();
    drain_state.begin_drain();
    let _ = dispatcher.send(Drain).await;
    let drained = ledger.clone();
    let _ = web::block(move || drained.flush(Duration::from_secs(5))).await;
    // The listener stays open while in-flight jobs finish: /health answers
    // 503 and new jobs are refused with 503, so a load balancer takes this
    // node out and retries the refused requests on another one, rather than
    // meeting a port that closed under it. Turns parked on a caller's tool
    // calls are in flight too: their results are still admitted (see
    // `Submit`), so the drain waits for them as for any job.
    wait_for(&dispatcher, settings.server.shutdown_grace(), |h| {
        h.workers.busy == 0
    })
    .await;
    let stopped = handle.stop(true);
    let _ = dispatcher.send(StopAll).await;
    wait_for(&dispatcher, Duration::from_secs(10), |h| {
        h.workers.total == 0
    })
    .await;
    stopped.await;
    let _ = server_task.await;
    // Stored responses and conversations' items still on their way to disk
    // (see write_behind); a failing store gets the grace to take them.
    let grace = settings.server.shutdown_grace();
    let (responses_left, conversations_left) = tokio::join!(
        web::block(move || responses.flush(grace)),
        web::block(move || conversations.flush(grace)),
    );
    match responses_left {
        Ok(0) => {}
        Ok(n) => {
            log::error!("{n} stored responses could not be written (the store fails) and are lost")
        }
        Err(e) => log::error!("flushing stored responses: {e}"),
    }
    match conversations_left {
        Ok(0) => {}
        Ok(n) => log::error!("{n} additions to conversations could not be written and are lost"),
        Err(e) => log::error!("flushing conversations: {e}"),
    }
    // Ledger rows of the last requests (see ledger).
    let _ = web::block(move || ledger.close()).await;
    // Checkpoints the WAL into the file: a stopped daemon leaves one file.
    if let Err(e) = store.close() {
        log::warn!("closing the store: {e}");
    }
    // The workers are gone: the directories made for this run go too.
    drop(agent_root);
    drop(working_dir);
    if let Some(task) = watchdog_task {
        task.abort();
    }
    log::info!("stopped");
    Ok(())
}

/// Agent mode's recipe: the workspace root, and the sandbox checked to work
/// here (or the warning that there is none).
fn agent_recipe(
    settings: &Settings,
    cli: &std::path::Path,
    root: &std::path::Path,
) -> Result<worker::spawn::AgentRecipe, StartError> {
    use config::AgentSandbox;
    let root = root.to_path_buf();
    let tools = settings.agent.tools.join(", ");
    let sandbox = match settings.agent.sandbox {
        AgentSandbox::Bwrap => {
            let sandbox =
                worker::sandbox::Sandbox::prepare(cli, &root, settings.agent.tmpfs_size_mb)?;
            log::warn!(
                "agent mode is ON: requests without tools run Claude Code's tools ({tools}), each worker in a bubblewrap sandbox with its workspace under {} (Bash commands without network)",
                root.display()
            );
            Some(sandbox)
        }
        AgentSandbox::None => {
            log::warn!(
                "agent mode is ON WITHOUT A SANDBOX (agent.sandbox = \"none\"): Claude Code's tools ({tools}) run as this daemon's user with its view of the host and its credentials; workspaces under {}",
                root.display()
            );
            None
        }
    };
    Ok(worker::spawn::AgentRecipe {
        spec: worker::spawn::agent_spawn_spec(settings, &root),
        shared_config: sandbox
            .is_none()
            .then(|| worker::spawn::shared_config_dir(settings))
            .flatten(),
        root,
        sandbox,
    })
}

/// Applies each reloaded configuration: reloadable keys go to the HTTP
/// layer and the dispatcher (which passes them on to its workers and
/// resizes the pool); changed restart-only keys are logged. A configuration
/// that would expose the pool without keys is refused whole.
async fn apply_reloads(
    mut reload: tokio::sync::watch::Receiver<Arc<Settings>>,
    state: web::Data<http::AppState>,
    addr: std::net::SocketAddr,
) {
    while reload.changed().await.is_ok() {
        notify::reloading();
        apply_reload(&reload.borrow_and_update().clone(), &state, addr);
        notify::notify("READY=1");
    }
}

/// Applies one reloaded configuration, or logs why it is refused.
fn apply_reload(new: &Settings, state: &web::Data<http::AppState>, addr: std::net::SocketAddr) {
    let plan = match reload::prepare(&state.settings(), new) {
        Ok(plan) => plan,
        Err(e) => {
            log::error!("reload: not applied: {e}");
            return;
        }
    };
    if let Err(e) = check_exposure(&plan.settings, addr) {
        log::error!("reload: not applied, the running configuration stays: {e}");
        return;
    }
    let settings = Arc::new(plan.settings.clone());
    // First, so that keys clashing with those of the store refuse the whole
    // reload; from here on the new keys are in force.
    if let Err(e) = state.keys.reconfigure(settings) {
        log::error!("reload: not applied, the running configuration stays: {e}");
        return;
    }
    for key in &plan.restart_needed {
        log::warn!("reload: {key} changed; it applies only after a restart");
    }
    if let Some(level) = plan.settings.server.log_filter() {
        log::set_max_level(level);
    }
    // Published once: every reader (requests, the batch runner, the
    // dispatcher, each worker) reads this version from now on.
    let version = state.shared_settings().publish(plan.settings);
    state.batch_runner.wake();
    state.dispatcher.do_send(Reconfigure);
    if plan.applied.is_empty() {
        log::info!("reload: no reloadable setting changed (version {version})");
    } else {
        log::info!(
            "reload: applied {} (version {version})",
            plan.applied.join(", ")
        );
    }
}

/// Polls the pool's health until `done` holds or `limit` passes.
async fn wait_for(
    dispatcher: &Addr<Dispatcher>,
    limit: Duration,
    done: impl Fn(&dispatch::health::Health) -> bool,
) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match dispatcher.send(GetHealth).await {
            Ok(health) if !done(&health) => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => return,
        }
    }
}

/// Sends systemd `READY=1` once the pool has its first ready worker (the
/// listener is bound before `run` starts). Never ready means no READY=1:
/// the unit's start timeout then reports the failure.
async fn notify_when_ready(dispatcher: Addr<Dispatcher>) {
    loop {
        match dispatcher.send(GetHealth).await {
            Ok(health) if health.workers.ready + health.workers.busy > 0 => {
                notify::notify("READY=1");
                return;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => return,
        }
    }
}

/// Sends systemd `WATCHDOG=1` every `every`, as long as the dispatcher
/// answers: a wedged dispatcher stops the pings and systemd restarts us.
async fn feed_watchdog(dispatcher: Addr<Dispatcher>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        if let Ok(Ok(_)) = tokio::time::timeout(every, dispatcher.send(GetHealth)).await {
            notify::notify("WATCHDOG=1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str, file_keys: &[&str]) -> Result<(), String> {
        let mut settings = Settings::from_toml(toml).unwrap();
        settings.server.file_keys = file_keys.iter().map(|k| k.to_string()).collect();
        let loopback = "127.0.0.1:8787".parse().unwrap();
        check_exposure(&settings, loopback).map_err(|e| e.to_string())
    }

    #[test]
    fn agent_mode_needs_client_keys_from_either_source() {
        let agent = "[agent]\nenabled = true\n";
        let err = check(agent, &[]).unwrap_err();
        assert!(
            err.contains("agent mode") && err.contains("server.api_keys"),
            "{err}"
        );
        check(&format!("{agent}[server]\napi_keys = [\"k\"]\n"), &[]).unwrap();
        check(agent, &["from-file"]).unwrap();
    }

    #[test]
    fn cors_without_keys_needs_an_acknowledgement() {
        let cors = "[server]\ncors_allowed_origins = [\"*\"]\n";
        let err = check(cors, &[]).unwrap_err();
        assert!(err.contains("server.allow_keyless_cors"), "{err}");
        check(&format!("{cors}allow_keyless_cors = true\n"), &[]).unwrap();
        check(&format!("{cors}api_keys = [\"k\"]\n"), &[]).unwrap();
        check(cors, &["from-file"]).unwrap();
        check("", &[]).unwrap();
    }
}
