//! The `claude-pool` daemon: arguments, logging, settings, signals → `run`;
//! or, with `keys …`, a client of the running daemon's admin API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use claude_pool::config::Settings;

/// Serves the Anthropic Messages API through a pool of Claude Code CLI workers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file. Environment variables CLAUDE_POOL__SECTION__KEY
    /// override it; without it, built-in defaults apply.
    #[arg(long, env = "CLAUDE_POOL_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Without one, the daemon runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list and revoke client keys through the running daemon's
    /// admin API (admin key: CLAUDE_POOL_ADMIN_KEY or --admin-key-file).
    Keys(claude_pool::keys_cli::KeysArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Keys(keys)) = args.command {
        return claude_pool::keys_cli::run(keys, args.config.as_deref());
    }
    // RUST_LOG, if set, filters per module; server.log_level caps the whole
    // (and, unlike RUST_LOG, changes on reload).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("trace"))
        .format_timestamp_millis()
        .init();
    log::set_max_level(log::LevelFilter::Info);
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("claude-pool: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(level) = settings.server.log_filter() {
        log::set_max_level(level);
    }
    let addr = match settings.listen_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("claude-pool: server.listen: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = claude_pool::check_exposure(&settings, addr) {
        eprintln!("claude-pool: {e}");
        return ExitCode::from(2);
    }
    let listener = match std::net::TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("claude-pool: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let (reload_tx, reload_rx) = tokio::sync::watch::channel(Arc::new(settings.clone()));
    let shutdown = match handle_signals(args.config.clone(), reload_tx) {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("claude-pool: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let result = actix_rt::System::new().block_on(claude_pool::run_with_reload(
        settings,
        listener,
        async move {
            let _ = shutdown.await;
        },
        reload_rx,
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claude-pool: {e}");
            ExitCode::from(1)
        }
    }
}

/// Takes signals on a thread of their own (signal-hook). The returned
/// receiver resolves on the first SIGTERM or SIGINT. SIGHUP loads the
/// configuration again (same file, same environment) and hands it to the
/// daemon through `reload`; a configuration that does not load is logged
/// and the running one kept.
fn handle_signals(
    config: Option<PathBuf>,
    reload: tokio::sync::watch::Sender<Arc<Settings>>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut tx = Some(tx);
            for signal in signals.forever() {
                match signal {
                    SIGHUP => reload_settings(config.as_deref(), &reload),
                    _ => {
                        log::info!("signal {signal} received");
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        })?;
    Ok(rx)
}

/// SIGHUP: loads the settings as at startup and sends them to the daemon.
fn reload_settings(config: Option<&Path>, reload: &tokio::sync::watch::Sender<Arc<Settings>>) {
    let from = config.map_or_else(|| "the environment".into(), |p| p.display().to_string());
    match Settings::load(config) {
        Ok(settings) => {
            log::info!("SIGHUP: configuration loaded from {from}");
            reload.send_replace(Arc::new(settings));
        }
        Err(e) => log::error!("SIGHUP: configuration not reloaded, the running one stays: {e}"),
    }
}
