//! The `claude-pool` daemon: arguments, logging, settings, signals → `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use claude_pool::config::Settings;

/// Serves the Anthropic Messages API through a pool of Claude Code CLI workers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file. Environment variables CLAUDE_POOL__SECTION__KEY
    /// override it; without it, built-in defaults apply.
    #[arg(long, env = "CLAUDE_POOL_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let args = Args::parse();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("claude-pool: {e}");
            return ExitCode::from(2);
        }
    };
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
    let shutdown = match shutdown_signal() {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("claude-pool: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let result =
        actix_rt::System::new().block_on(claude_pool::run(settings, listener, async move {
            let _ = shutdown.await;
        }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claude-pool: {e}");
            ExitCode::from(1)
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT. Signals are taken on a thread
/// of their own (signal-hook) and handed over through a channel.
fn shutdown_signal() -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut tx = Some(tx);
            for signal in signals.forever() {
                match signal {
                    SIGHUP => log::warn!("SIGHUP: configuration reload is not supported yet; restart to apply changes"),
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
