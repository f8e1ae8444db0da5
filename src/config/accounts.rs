//! `[[accounts]]`: several Claude accounts in one pool, each a login or API
//! key with workers of its own, and the plan the pool runs them by
//! ([`AccountPlan`]). What their workers' CLI reports about rate limits, and
//! the standing the dispatcher routes by, are in `accounts`.
//!
//! Without `[[accounts]]` the pool has one implicit account, `default`,
//! made of `[claude]` alone, so existing configurations behave as before.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Settings};

/// The name of the implicit account of a configuration without `[[accounts]]`.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Variables that carry credentials. Workers of a configured account never
/// inherit them from the daemon's own environment: each account's workers
/// use exactly the credentials given for it (or its `config_dir` login).
pub const CREDENTIAL_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
];

/// One `[[accounts]]` entry: a Claude subscription login or API key with
/// workers of its own.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// Shown in `/health`, `/metrics` and logs.
    pub name: String,
    /// This account's workers; unset: `pool.size` split evenly.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Environment for this account's workers, over `[claude.env]`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A file of `NAME=value` lines for this account's workers (credentials
    /// kept out of the config file), read at start and on reload.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    /// The `CLAUDE_CONFIG_DIR` of this account's workers (a `claude login`
    /// stored there); unset: `claude.config_dir`.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
    /// May take new work while drawing on overage ("extra usage") even when
    /// another account still has plan headroom.
    #[serde(default)]
    pub allow_overage: bool,
    /// What `env_file` holds; never part of the file or the environment.
    #[serde(skip)]
    pub file_env: BTreeMap<String, String>,
}

/// Credentials stay out of debug output: only variable names are shown.
impl std::fmt::Debug for AccountSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSettings")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("env_file", &self.env_file)
            .field("config_dir", &self.config_dir)
            .field("allow_overage", &self.allow_overage)
            .finish()
    }
}

/// An account as the pool runs it.
#[derive(Clone, PartialEq)]
pub struct AccountPlan {
    pub name: String,
    /// How many workers it gets.
    pub workers: usize,
    /// Added to its workers' environment, after the pool-wide variables.
    pub env: Vec<(String, String)>,
    /// Credential variables its workers must not inherit from the daemon.
    pub env_remove: Vec<String>,
    pub config_dir: Option<PathBuf>,
    pub allow_overage: bool,
    /// The implicit `default` account: its workers keep their plain names.
    pub implicit: bool,
}

impl std::fmt::Debug for AccountPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountPlan")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The accounts the pool runs: the configured ones, or the implicit
    /// `default` account of `pool.size` workers.
    pub fn account_plans(&self) -> Vec<AccountPlan> {
        if self.accounts.is_empty() {
            return vec![AccountPlan {
                name: DEFAULT_ACCOUNT.into(),
                workers: self.pool.size,
                env: Vec::new(),
                env_remove: Vec::new(),
                config_dir: None,
                allow_overage: true,
                implicit: true,
            }];
        }
        let n = self.accounts.len();
        self.accounts
            .iter()
            .enumerate()
            .map(|(i, account)| {
                let share = self.pool.size / n + usize::from(i < self.pool.size % n);
                let mut env: Vec<(String, String)> = account
                    .file_env
                    .iter()
                    .chain(&account.env)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if let Some(dir) = &account.config_dir {
                    env.push(("CLAUDE_CONFIG_DIR".into(), dir.display().to_string()));
                }
                let given = |var: &str| {
                    env.iter().any(|(k, _)| k == var) || self.claude.env.contains_key(var)
                };
                let env_remove = CREDENTIAL_VARS
                    .iter()
                    .filter(|var| !given(var))
                    .map(|var| var.to_string())
                    .collect();
                AccountPlan {
                    name: account.name.clone(),
                    workers: account.workers.unwrap_or(share.max(1)),
                    env,
                    env_remove,
                    config_dir: account.config_dir.clone(),
                    allow_overage: account.allow_overage,
                    implicit: false,
                }
            })
            .collect()
    }

    /// Reads every account's `env_file` into its `file_env`.
    pub fn read_account_env_files(&mut self) -> Result<(), ConfigError> {
        for account in &mut self.accounts {
            account.file_env.clear();
            let Some(path) = &account.env_file else {
                continue;
            };
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                key: "accounts.env_file",
                message: format!(
                    "account `{}`: cannot read {}: {e}",
                    account.name,
                    path.display()
                ),
            })?;
            account.file_env = parse_env_file(&text).map_err(|line| ConfigError::Invalid {
                key: "accounts.env_file",
                message: format!(
                    "account `{}`: {} line {line} is not NAME=value",
                    account.name,
                    path.display()
                ),
            })?;
        }
        Ok(())
    }

    /// Checks `[[accounts]]`: named, uniquely, each with at least one worker.
    pub(crate) fn validate_accounts(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        let mut seen = std::collections::BTreeSet::new();
        for account in &self.accounts {
            let name = account.name.as_str();
            let well_formed = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !well_formed {
                return invalid(
                    "accounts.name",
                    format!("`{name}`: use 1-64 letters, digits, `-`, `_` or `.`"),
                );
            }
            if !seen.insert(name) {
                return invalid("accounts.name", format!("`{name}` appears twice"));
            }
            if account.workers == Some(0) {
                return invalid(
                    "accounts.workers",
                    format!("account `{name}`: must be at least 1"),
                );
            }
        }
        if self.accounts.len() > self.pool.size && self.accounts.iter().any(|a| a.workers.is_none())
        {
            // Each account still gets one worker; said here so it is no surprise.
            log::info!(
                "{} accounts share pool.size = {}: each gets at least one worker",
                self.accounts.len(),
                self.pool.size
            );
        }
        Ok(())
    }
}

/// `NAME=value` lines (an optional `export ` prefix, optional quotes around
/// the value); `#` comments and blank lines skipped. `Err` holds the number
/// of the first line that is neither.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, usize> {
    let mut env = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(i + 1);
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(i + 1);
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        env.insert(name.to_string(), unquoted.to_string());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Settings {
        Settings::from_toml(toml).unwrap()
    }

    #[test]
    fn without_accounts_there_is_one_implicit_default_account() {
        let plans = settings("[pool]\nsize = 3\n").account_plans();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].name, "default");
        assert_eq!(plans[0].workers, 3);
        assert!(plans[0].implicit && plans[0].env.is_empty() && plans[0].env_remove.is_empty());
    }

    #[test]
    fn accounts_split_the_pool_and_carry_their_own_credentials() {
        let s = settings(
            "[pool]\nsize = 5\n[claude.env]\nANTHROPIC_BASE_URL = \"http://127.0.0.1:1\"\n\
             [[accounts]]\nname = \"a\"\nenv = { ANTHROPIC_API_KEY = \"sk-a\" }\n\
             [[accounts]]\nname = \"b\"\nconfig_dir = \"/srv/b\"\n\
             [[accounts]]\nname = \"c\"\nworkers = 4\nallow_overage = true\n",
        );
        let plans = s.account_plans();
        let workers: Vec<usize> = plans.iter().map(|p| p.workers).collect();
        assert_eq!(workers, [2, 2, 4]);
        assert_eq!(plans[0].env, [("ANTHROPIC_API_KEY".into(), "sk-a".into())]);
        assert!(!plans[0]
            .env_remove
            .contains(&"ANTHROPIC_API_KEY".to_string()));
        assert!(plans[0]
            .env_remove
            .contains(&"CLAUDE_CODE_OAUTH_TOKEN".to_string()));
        assert_eq!(
            plans[1].env,
            [("CLAUDE_CONFIG_DIR".into(), "/srv/b".into())]
        );
        assert_eq!(plans[1].env_remove.len(), CREDENTIAL_VARS.len());
        assert!(!plans[0].allow_overage && plans[2].allow_overage);
        assert!(!format!("{:?} {:?}", s.accounts, plans).contains("sk-a"));
    }

    #[test]
    fn account_mistakes_are_named() {
        for (toml, key) in [
            (
                "[[accounts]]\nname = \"a\"\n[[accounts]]\nname = \"a\"\n",
                "accounts.name",
            ),
            ("[[accounts]]\nname = \"a b\"\n", "accounts.name"),
            (
                "[[accounts]]\nname = \"a\"\nworkers = 0\n",
                "accounts.workers",
            ),
            ("[[accounts]]\nname = \"a\"\nenvs = {}\n", "envs"),
        ] {
            let err = Settings::from_toml(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn env_files_hold_name_value_lines() {
        let env = parse_env_file("# team b\n\nexport A=1\nB = \"two words\"\nC='x=y'\n").unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x=y");
        assert_eq!(parse_env_file("A=1\njust words\n"), Err(2));
        let mut s = settings("[[accounts]]\nname = \"b\"\nenv_file = \"/nonexistent/b.env\"\n");
        let err = s.read_account_env_files().unwrap_err().to_string();
        assert!(err.contains("accounts.env_file") && err.contains("/nonexistent/b.env"));
    }
}
