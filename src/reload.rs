//! What a configuration reload (SIGHUP) may change in a running daemon.
//!
//! Limits, timeouts, keys, allowed hosts, the pool's size, `[[accounts]]`
//! and the log level apply at once.
//! Everything else — the listener, the HTTP threads, the workers' command
//! line and environment (`[claude]`, `[agent]`), CORS — is fixed when the
//! daemon starts: a reload keeps the running value and names the key, which
//! applies after a restart. Keys not listed here are restart-only, so a new
//! setting is safe by default.

use serde_json::Value;

use crate::config::Settings;

/// Settings a running daemon takes over on reload, as `section.key`.
pub const RELOADABLE: &[&str] = &[
    "server.api_keys",
    "server.api_keys_file",
    "server.admin_keys",
    "server.admin_keys_file",
    "server.allow_unauthenticated",
    "server.request_timeout_secs",
    "server.max_body_bytes",
    "server.keepalive_secs",
    "server.health_requires_key",
    "server.metrics_public",
    "server.allowed_hosts",
    "server.log_level",
    "server.public_url",
    "pool.size",
    "pool.max_queue",
    "pool.queue_timeout_secs",
    "pool.max_jobs_per_worker",
    "pool.max_worker_rss_mb",
    "pool.boot_timeout_secs",
    "pool.turn_idle_timeout_secs",
    "pool.restart_backoff_ms",
    "pool.restart_backoff_max_ms",
    "pool.crash_loop_failures",
    "pool.crash_loop_window_secs",
    "pool.affinity",
    "pool.affinity_idle_secs",
    "pool.blank_spares",
    "pool.spare_refill_idle_secs",
    "claude.models",
    "tools.park_timeout_secs",
    "tools.max_parked_per_key",
    "batches.max_requests",
    "batches.max_workers",
    "batches.retention_days",
    "limits.max_concurrent",
    "limits.requests_per_minute",
    "limits.tokens_5h",
    "limits.tokens_day",
    "limits.tokens_week",
    "limits.tokens_month",
    "limits.request_window_secs",
];

/// The outcome of comparing reloaded settings with those in force.
#[derive(Debug)]
pub struct Reload {
    /// What to run with from now on: the reloaded settings, except that
    /// restart-only keys keep their running values.
    pub settings: Settings,
    /// Reloadable keys whose values changed (names only: keys are secret).
    pub applied: Vec<String>,
    /// Restart-only keys whose values changed; not applied.
    pub restart_needed: Vec<String>,
}

/// Compares `new` with `current` key by key.
pub fn prepare(current: &Settings, new: &Settings) -> Result<Reload, String> {
    let as_json = |s: &Settings| serde_json::to_value(s).map_err(|e| e.to_string());
    let current_json = as_json(current)?;
    let mut merged = as_json(new)?;
    let mut applied = Vec::new();
    let mut restart_needed = Vec::new();
    if let Value::Object(sections) = &mut merged {
        for (section, keys) in sections.iter_mut() {
            let Value::Object(keys) = keys else { continue };
            for (key, value) in keys.iter_mut() {
                let running = &current_json[section.as_str()][key.as_str()];
                if value == running {
                    continue;
                }
                let name = format!("{section}.{key}");
                if RELOADABLE.contains(&name.as_str()) {
                    applied.push(name);
                } else {
                    *value = running.clone();
                    restart_needed.push(name);
                }
            }
        }
    }
    applied.sort();
    restart_needed.sort();
    let mut settings: Settings = serde_json::from_value(merged).map_err(|e| e.to_string())?;
    // Accounts are added, removed and resized on reload (their env files
    // re-read), whole: a changed account is a new account of the same name.
    settings.accounts = new.accounts.clone();
    if new.accounts != current.accounts {
        applied.push("accounts".into());
    }
    // Named keys are reloaded whole (the key ring checks them against the
    // keys of the store before they apply).
    settings.keys = new.keys.clone();
    if new.keys != current.keys {
        applied.push("keys".into());
    }
    // Read from the key files, so not part of the JSON.
    settings.server.file_admin_keys = new.server.file_admin_keys.clone();
    settings.server.file_keys = new.server.file_keys.clone();
    if new.server.file_keys != current.server.file_keys
        && !applied.iter().any(|k| k == "server.api_keys_file")
    {
        applied.push("server.api_keys_file (its keys)".into());
    }
    Ok(Reload {
        settings,
        applied,
        restart_needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Settings {
        Settings::from_toml(toml).unwrap()
    }

    #[test]
    fn reloadable_keys_apply_and_the_others_wait_for_a_restart() {
        let current = settings("[server]\napi_keys = [\"k1\"]\n[pool]\nsize = 1\n");
        let new = settings(
            "[server]\napi_keys = [\"k2\"]\nlisten = \"127.0.0.1:9999\"\n\
             [pool]\nsize = 3\nqueue_timeout_secs = 5\n\
             [claude]\ncommand = \"/opt/claude\"\n[claude.env]\nX = \"1\"\n",
        );
        let reload = prepare(&current, &new).unwrap();
        assert_eq!(reload.settings.server.api_keys, ["k2"]);
        assert_eq!(reload.settings.pool.size, 3);
        assert_eq!(reload.settings.pool.queue_timeout_secs, 5);
        assert_eq!(reload.settings.server.listen, current.server.listen);
        assert_eq!(reload.settings.claude.command, current.claude.command);
        assert!(reload.settings.claude.env.is_empty());
        assert_eq!(
            reload.applied,
            ["pool.queue_timeout_secs", "pool.size", "server.api_keys"]
        );
        assert_eq!(
            reload.restart_needed,
            ["claude.command", "claude.env", "server.listen"]
        );
    }

    #[test]
    fn an_unchanged_configuration_changes_nothing() {
        let current = settings("[pool]\nsize = 1\n");
        let reload = prepare(&current, &current.clone()).unwrap();
        assert!(reload.applied.is_empty() && reload.restart_needed.is_empty());
    }

    #[test]
    fn keys_read_from_the_file_are_carried_over() {
        let current = settings("");
        let mut new = settings("");
        new.server.file_keys = vec!["from-file".into()];
        let reload = prepare(&current, &new).unwrap();
        assert_eq!(reload.settings.server.file_keys, ["from-file"]);
        assert_eq!(reload.applied, ["server.api_keys_file (its keys)"]);
    }

    #[test]
    fn accounts_are_reloaded_whole_with_their_env_files() {
        let current = settings("[[accounts]]\nname = \"a\"\n");
        let mut new = settings("[[accounts]]\nname = \"a\"\n[[accounts]]\nname = \"b\"\n");
        new.accounts[1]
            .file_env
            .insert("ANTHROPIC_API_KEY".into(), "sk-b".into());
        let reload = prepare(&current, &new).unwrap();
        assert_eq!(reload.applied, ["accounts"]);
        assert_eq!(reload.settings.accounts, new.accounts);
        assert_eq!(
            reload.settings.accounts[1].file_env["ANTHROPIC_API_KEY"],
            "sk-b"
        );
    }

    #[test]
    fn every_reloadable_key_exists() {
        let defaults = serde_json::to_value(Settings::default()).unwrap();
        for name in RELOADABLE {
            let (section, key) = name.split_once('.').unwrap();
            assert!(defaults[section].get(key).is_some(), "{name}");
        }
    }
}
