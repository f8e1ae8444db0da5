//! How a worker's `claude` is started: the lean command line and environment
//! of docs/cli-protocol.md §9.1 (no built-in tools, no settings or
//! CLAUDE.md from disk, no session files, bounded upstream retries).

use std::path::{Path, PathBuf};

use super::permission::Workspace;
use super::process::SpawnSpec;
use super::sandbox::Sandbox;
use crate::config::Settings;
use crate::private_fs::{remove_tree, RunDir};

/// The flags that keep a `claude` process lean: stream-json output, no
/// session files, no settings, CLAUDE.md or MCP servers from disk, no
/// built-in tools. Public so that the latency bench starts its cold
/// `claude -p` runs the way workers start.
pub const LEAN_FLAGS: &[&str] = &[
    "--output-format",
    "stream-json",
    "--verbose",
    "--no-session-persistence",
    "--setting-sources",
    "",
    "--strict-mcp-config",
    "--tools",
    "",
];

/// Command-line flags every worker gets, before `claude.extra_args`.
fn base_args(default_model: &str) -> Vec<String> {
    let mut args = vec!["--input-format", "stream-json"];
    args.extend(LEAN_FLAGS);
    args.extend([
        "--include-partial-messages",
        // Tool permission checks come to the daemon as `can_use_tool`; it
        // allows exactly the current job's tool server.
        "--permission-prompt-tool",
        "stdio",
        "--model",
        default_model,
    ]);
    args.into_iter().map(String::from).collect()
}

/// The daemon's own systemd variables, which workers must not inherit: a
/// worker could otherwise notify (or feed the watchdog) for the daemon.
const INHERITED_NOT: &[&str] = &["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Variables every worker gets whatever `[claude.env]`, an account's `env`
/// or the daemon's environment say: [`process::spawn`](super::process::spawn)
/// sets them last.
///
/// `CLAUDE_CODE_DISABLE_ATTACHMENTS=1`: the CLI otherwise expands
/// `@path` in a user message into an implicit Read of that host file (no
/// permission asked, tools off or not) and `@server:uri` into an MCP
/// resource read, which would let any caller read every file the daemon
/// can. It also drops the CLI's other per-turn reminders (todo, plan mode,
/// changed files, …), none of which a pool worker uses; today's date is not
/// one of them (it is user context), see docs/cli-protocol.md §11.
pub const ENFORCED_ENV: &[(&str, &str)] = &[("CLAUDE_CODE_DISABLE_ATTACHMENTS", "1")];

/// The spawn recipe for workers under `settings`, run in `working_dir`.
pub fn spawn_spec(settings: &Settings, working_dir: &Path) -> SpawnSpec {
    let claude = &settings.claude;
    let mut args = base_args(&claude.default_model);
    args.extend(claude.extra_args.iter().cloned());

    // Quiet, bounded defaults first; `[claude.env]` may override any of them.
    let mut env: Vec<(String, String)> = vec![
        ("DISABLE_TELEMETRY".into(), "1".into()),
        ("DISABLE_ERROR_REPORTING".into(), "1".into()),
        ("DISABLE_AUTOUPDATER".into(), "1".into()),
        (
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
            "1".into(),
        ),
        (
            "CLAUDE_CODE_MAX_RETRIES".into(),
            claude.max_retries.to_string(),
        ),
        ("API_TIMEOUT_MS".into(), claude.api_timeout_ms.to_string()),
    ];
    if let Some(dir) = &claude.config_dir {
        env.push(("CLAUDE_CONFIG_DIR".into(), dir.display().to_string()));
    }
    env.extend(claude.env.iter().map(|(k, v)| (k.clone(), v.clone())));

    SpawnSpec {
        command: claude.command.clone(),
        args,
        env,
        env_remove: INHERITED_NOT.iter().map(|s| s.to_string()).collect(),
        cwd: working_dir.to_path_buf(),
        ..SpawnSpec::default()
    }
}

/// The recipe for agent workers: the plain one with the configured built-in
/// tools, permission mode and turn limit. [`AgentRecipe`] gives each agent
/// worker its own directories.
pub fn agent_spawn_spec(settings: &Settings, workspace_root: &Path) -> SpawnSpec {
    let agent = &settings.agent;
    let mut spec = spawn_spec(settings, workspace_root);
    if let Some(i) = spec.args.iter().position(|a| a == "--tools") {
        spec.args[i + 1] = agent.tools.join(",");
    }
    spec.args.extend([
        "--permission-mode".to_string(),
        agent.permission_mode.clone(),
        "--max-turns".to_string(),
        agent.max_turns.to_string(),
    ]);
    if !agent.disallowed_tools.is_empty() {
        spec.args.push("--disallowedTools".into());
        spec.args.push(agent.disallowed_tools.join(","));
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if agent.permission_mode == "bypassPermissions" && root {
        log::warn!("agent mode: bypassPermissions as root; setting IS_SANDBOX=1 for agent workers");
        spec.env.push(("IS_SANDBOX".into(), "1".into()));
    }
    spec
}

/// How agent workers are started: the agent recipe, the workspace root,
/// and the sandbox (absent with `agent.sandbox = "none"`).
#[derive(Debug, Clone)]
pub struct AgentRecipe {
    pub spec: SpawnSpec,
    pub root: PathBuf,
    pub sandbox: Option<Sandbox>,
    /// Unsandboxed: the Claude config directory the workers share, whose
    /// `projects/<workspace>` folder (tool output files) goes with a worker.
    pub shared_config: Option<PathBuf>,
}

impl AgentRecipe {
    /// The spec of agent worker `name`: its workspace `root/name`; in the
    /// sandbox also a private Claude config directory `root/name.claude`.
    /// Both start empty and are removed when the worker exits.
    pub fn for_worker(&self, name: &str) -> std::io::Result<SpawnSpec> {
        // Fresh: a directory of the same name left by a daemon that died
        // without removing it (worker numbers start again at 1 in every
        // run) must not hand its files to a new worker and its callers.
        let workspace = self.root.join(name);
        fresh_dir(&workspace)?;
        let mut spec = match &self.sandbox {
            Some(sandbox) => {
                let config = self.root.join(format!("{name}.claude"));
                fresh_dir(&config)?;
                sandbox.wrap(&self.spec, &workspace, &config)
            }
            None => {
                let mut spec = self.spec.clone();
                spec.cwd = workspace.clone();
                spec.workspace = Some(Workspace {
                    seen_as: workspace.clone(),
                    host: workspace.clone(),
                });
                if let Some(config) = &self.shared_config {
                    spec.remove_on_exit
                        .push(config.join("projects").join(project_slug(&workspace)));
                }
                spec
            }
        };
        spec.remove_on_exit.push(workspace);
        Ok(spec)
    }
}

/// Makes `dir` an empty private directory, removing whatever is there.
fn fresh_dir(dir: &Path) -> std::io::Result<()> {
    remove_tree(dir)?;
    crate::private_fs::create_dir(dir)
}

/// The CLI's name for a working directory under `projects/`: every
/// character but ASCII letters and digits becomes `-` (verified for paths
/// up to 200 characters; longer ones get a hash suffix not reproduced here).
fn project_slug(dir: &Path) -> String {
    dir.display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The Claude config directory workers use when none is configured.
pub fn shared_config_dir(settings: &Settings) -> Option<PathBuf> {
    // The precedence of `spawn_spec`: `[claude.env]`, `claude.config_dir`,
    // the daemon's environment, the CLI's default.
    settings
        .claude
        .env
        .get("CLAUDE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| settings.claude.config_dir.clone())
        .or_else(|| std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude")))
}

/// The agent workspace root: the configured one (made private if missing,
/// refused if another user owns it or may write it), or a new private
/// directory with an unguessable name, removed when the returned value is
/// dropped.
pub fn prepare_workspace_root(settings: &Settings) -> std::io::Result<RunDir> {
    RunDir::configured_or_temporary(settings.agent.workspace_root.as_deref(), "agents")
}

/// Where workers run: as [`prepare_workspace_root`], for
/// `claude.working_dir`; `claude.config_dir` is made private if missing.
pub fn prepare_working_dir(settings: &Settings) -> std::io::Result<RunDir> {
    let dir = RunDir::configured_or_temporary(settings.claude.working_dir.as_deref(), "work")?;
    if let Some(config_dir) = &settings.claude.config_dir {
        crate::private_fs::ensure_dir(config_dir)?;
    }
    Ok(dir)
}

/// Checks that `command` names an executable file, directly or on PATH, so
/// that a wrong `claude.command` fails at startup rather than per worker.
pub fn find_executable(command: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if command.contains('/') {
        let path = PathBuf::from(command);
        return is_executable(&path).then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(command))
        .find(|p| is_executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_spawn_lean_and_env_overrides_defaults() {
        let settings = Settings::from_toml(
            "[claude]\nmax_retries = 1\nextra_args = [\"--x\"]\n[claude.env]\nDISABLE_TELEMETRY = \"0\"\n",
        )
        .unwrap();
        let spec = spawn_spec(&settings, Path::new("/tmp"));
        let tools = spec.args.iter().position(|a| a == "--tools").unwrap();
        assert_eq!(spec.args[tools + 1], "");
        assert_eq!(spec.args.last().unwrap(), "--x");
        let last_telemetry = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "DISABLE_TELEMETRY")
            .unwrap();
        assert_eq!(last_telemetry.1, "0");
        assert!(spec
            .env
            .contains(&("CLAUDE_CODE_MAX_RETRIES".into(), "1".into())));
        assert!(spec.env_remove.iter().any(|k| k == "NOTIFY_SOCKET"));
    }

    #[test]
    fn a_sandboxed_worker_starts_with_an_empty_private_config_dir() {
        let root = tempfile::tempdir().unwrap();
        let stale = root.path().join("worker-1.claude/projects/x");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("tool-output.txt"), "old").unwrap();
        let recipe = AgentRecipe {
            spec: SpawnSpec::default(),
            root: root.path().to_path_buf(),
            sandbox: Some(Sandbox::for_tests()),
            shared_config: None,
        };
        let spec = recipe.for_worker("worker-1").unwrap();
        let config = root.path().join("worker-1.claude");
        assert!(config.is_dir() && std::fs::read_dir(&config).unwrap().next().is_none());
        let workspace = root.path().join("worker-1");
        assert!(workspace.is_dir());
        assert_eq!(spec.remove_on_exit, vec![config, workspace]);
    }

    #[test]
    fn a_worker_starts_with_an_empty_workspace_that_goes_with_it() {
        let root = tempfile::tempdir().unwrap();
        // Left by an earlier daemon run, including a directory a tool made
        // read-only.
        let stale = root.path().join("worker-1/src/locked");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("secret.txt"), "earlier caller").unwrap();
        std::fs::write(root.path().join("worker-1/notes.txt"), "old").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o500)).unwrap();
        for sandbox in [Some(Sandbox::for_tests()), None] {
            let recipe = AgentRecipe {
                spec: SpawnSpec::default(),
                root: root.path().to_path_buf(),
                sandbox,
                shared_config: None,
            };
            let spec = recipe.for_worker("worker-1").unwrap();
            let workspace = root.path().join("worker-1");
            assert_eq!(std::fs::read_dir(&workspace).unwrap().count(), 0);
            assert!(spec.remove_on_exit.contains(&workspace));
            std::fs::write(workspace.join("notes.txt"), "this run").unwrap();
        }
    }

    #[test]
    fn executables_are_found_on_path_or_by_path() {
        assert!(find_executable("sh").is_some());
        assert!(find_executable("/bin/sh").is_some());
        assert!(find_executable("definitely-not-a-command-xyz").is_none());
        let plain = std::env::temp_dir().join(format!("claude-pool-plain-{}", std::process::id()));
        std::fs::write(&plain, "x").unwrap();
        assert!(find_executable(plain.to_str().unwrap()).is_none());
        std::fs::remove_file(plain).unwrap();
    }
}
