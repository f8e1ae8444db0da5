//! `claude-pool keys create|list|revoke`: the admin API's key calls from
//! the command line, for operators who script them. It talks to the
//! running daemon (`--url`, else the configuration's `server.listen`) with
//! the admin key from `CLAUDE_POOL_ADMIN_KEY` or `--admin-key-file` —
//! never an argument, which any user could read in `ps`.

mod admin_http;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::config::{is_key_name, Settings, KEY_NAME_RULE};
use admin_http::{call, DaemonUrl};

/// Where the admin key comes from when `--admin-key-file` is not given.
pub const ADMIN_KEY_ENV: &str = "CLAUDE_POOL_ADMIN_KEY";

/// `claude-pool keys …`
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// The daemon, `http://HOST:PORT`. Default: `server.listen` of the
    /// configuration (`--config`, else the built-in default), on loopback
    /// if it listens on every address.
    #[arg(long, global = true)]
    url: Option<String>,
    /// A file holding the admin key (`server.admin_keys`). Without it, the
    /// key comes from the environment variable CLAUDE_POOL_ADMIN_KEY.
    #[arg(long, global = true, value_name = "PATH")]
    admin_key_file: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Make a client key; prints its secret, which is shown this once.
    Create(CreateArgs),
    /// Every client key: name, source, prefix, last use, limits (never a secret).
    List,
    /// Revoke a key made through the admin API: its next request is 401.
    Revoke {
        /// The key's name.
        name: String,
    },
}

/// The fields of `POST /admin/keys`; unset ones take the daemon's defaults.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The key's name: 1 to 64 of A-Z a-z 0-9 . _ -
    name: String,
    /// Jobs running or queued at once (0: no limit).
    #[arg(long, value_name = "N")]
    max_concurrent: Option<u64>,
    /// Requests admitted per minute (0: no limit).
    #[arg(long, value_name = "N")]
    requests_per_minute: Option<u64>,
    /// Weighted tokens in any 5 hours (0: no limit).
    #[arg(long = "tokens-5h", value_name = "N")]
    tokens_5h: Option<u64>,
    /// Weighted tokens in any 24 hours (0: no limit).
    #[arg(long, value_name = "N")]
    tokens_per_day: Option<u64>,
    /// Weighted tokens in any 7 days (0: no limit).
    #[arg(long, value_name = "N")]
    tokens_per_week: Option<u64>,
    /// Weighted tokens in any 30 days (0: no limit).
    #[arg(long, value_name = "N")]
    tokens_per_month: Option<u64>,
    /// Its share of the pool when keys compete (fair share).
    #[arg(long, value_name = "N")]
    weight: Option<u32>,
    /// A model it may use (repeat for more; none: every model).
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// An account it may run on (repeat for more; none: every account).
    #[arg(long = "account", value_name = "NAME")]
    accounts: Vec<String>,
    /// It may use the agent mode.
    #[arg(long)]
    agent: bool,
    /// When it stops working, RFC 3339 (2026-12-31T23:59:59Z).
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
}

impl CreateArgs {
    /// The `POST /admin/keys` body.
    fn body(&self) -> Value {
        let mut limits = Map::new();
        for (field, value) in [
            ("max_concurrent", self.max_concurrent),
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_5h", self.tokens_5h),
            ("tokens_day", self.tokens_per_day),
            ("tokens_week", self.tokens_per_week),
            ("tokens_month", self.tokens_per_month),
        ] {
            if let Some(value) = value {
                limits.insert(field.into(), json!(value));
            }
        }
        let mut body = json!({"name": self.name, "limits": limits});
        if let Some(weight) = self.weight {
            body["weight"] = json!(weight);
        }
        if !self.models.is_empty() {
            body["models"] = json!(self.models);
        }
        if !self.accounts.is_empty() {
            body["accounts"] = json!(self.accounts);
        }
        if self.agent {
            body["agent"] = json!(true);
        }
        if let Some(at) = &self.expires_at {
            body["expires_at"] = json!(at);
        }
        body
    }
}

/// Why a command failed: the message, and the exit status (2: how it was
/// called, 1: what the daemon answered or that it could not be reached).
struct Failure(String, u8);

/// Runs `claude-pool keys …`; `config` is the `--config` given, if any.
pub fn run(args: KeysArgs, config: Option<&Path>) -> ExitCode {
    match execute(args, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, status)) => {
            eprintln!("claude-pool keys: {message}");
            ExitCode::from(status)
        }
    }
}

fn execute(args: KeysArgs, config: Option<&Path>) -> Result<(), Failure> {
    let usage = |m: String| Failure(m, 2);
    let url = match &args.url {
        Some(url) => url.clone(),
        None => default_url(config).map_err(usage)?,
    };
    let url = DaemonUrl::parse(&url).map_err(usage)?;
    let admin_key = admin_key(args.admin_key_file.as_deref()).map_err(usage)?;
    let request = |method: &str, path: &str, body: Option<&Value>| {
        let answer = call(&url, &admin_key, method, path, body).map_err(|e| Failure(e, 1))?;
        let value: Value = serde_json::from_slice(&answer.body).unwrap_or_else(
            |_| json!({"error": {"message": String::from_utf8_lossy(&answer.body).trim()}}),
        );
        if !(200..300).contains(&answer.status) {
            let message = value["error"]["message"].as_str().unwrap_or("no message");
            return Err(Failure(format!("{} {message}", answer.status), 1));
        }
        Ok(value)
    };
    match &args.action {
        Action::Create(create) => {
            check_name(&create.name).map_err(usage)?;
            let key = request("POST", "/admin/keys", Some(&create.body()))?;
            if args.json {
                println!("{key:#}");
            } else {
                println!("{}", key["secret"].as_str().unwrap_or_default());
            }
            eprintln!(
                "key `{}` created; its secret is shown this once and will not be shown again",
                create.name
            );
        }
        Action::List => {
            let keys = request("GET", "/admin/keys", None)?;
            if args.json {
                println!("{keys:#}");
            } else {
                print!("{}", key_table(&keys));
            }
        }
        Action::Revoke { name } => {
            check_name(name).map_err(usage)?;
            let answer = request("DELETE", &format!("/admin/keys/{name}"), None)?;
            if args.json {
                println!("{answer:#}");
            } else {
                println!("key `{name}` revoked");
            }
        }
    }
    Ok(())
}

/// A name the daemon could hold (and safe in a URL path as it is).
fn check_name(name: &str) -> Result<(), String> {
    if is_key_name(name) {
        Ok(())
    } else {
        Err(format!("{name:?}: a key name is {KEY_NAME_RULE}"))
    }
}

/// `http://` and the configuration's listen address, on loopback when it
/// is every address (`0.0.0.0`, `::`).
fn default_url(config: Option<&Path>) -> Result<String, String> {
    let settings = Settings::load(config).map_err(|e| e.to_string())?;
    let mut addr = settings
        .listen_addr()
        .map_err(|e| format!("server.listen: {e}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}

/// The admin key, from `--admin-key-file` or the environment.
fn admin_key(file: Option<&Path>) -> Result<String, String> {
    let key = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--admin-key-file {}: {e}", path.display()))?,
        None => std::env::var(ADMIN_KEY_ENV).unwrap_or_default(),
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(format!(
            "no admin key: set {ADMIN_KEY_ENV} or pass --admin-key-file PATH \
             (a key of server.admin_keys)"
        ));
    }
    if key.contains(['\r', '\n']) {
        return Err("the admin key is one line".into());
    }
    Ok(key.to_string())
}

/// `GET /admin/keys` as a table, one key a line.
fn key_table(keys: &Value) -> String {
    let rows: Vec<[String; 6]> = keys["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
            let limits: Vec<String> = k["effective_limits"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| !v.is_null())
                .map(|(name, v)| format!("{name}={v}"))
                .collect();
            let limits = if limits.is_empty() {
                "none".to_string()
            } else {
                limits.join(",")
            };
            [
                text(&k["name"]),
                text(&k["source"]),
                text(&k["prefix"]),
                text(&k["last_used_at"]),
                k["usage_24h"]["requests"].to_string(),
                limits,
            ]
        })
        .collect();
    let header = [
        "NAME",
        "SOURCE",
        "PREFIX",
        "LAST USED",
        "REQUESTS 24H",
        "LIMITS",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
