//! The agent workers' sandbox (`agent.sandbox = "bwrap"`): each agent
//! worker's CLI runs under bubblewrap, seeing the system directories and the
//! CLI's own install read-only, its workspace read-write at [`WORKSPACE`],
//! a private Claude config directory, a private `/tmp` and home, and nothing
//! else of the host. It gets a PID namespace of its own (whatever the job's
//! tools start dies with it, and none of them can see a process outside),
//! an environment built from [`ENV_ALLOWED`] and `[claude.env]`, and its
//! upstream credential through a pipe instead of the environment (see
//! [`FD_CREDENTIALS`]). The CLI shares the host's network (it needs the
//! upstream); every Bash command runs without network and without
//! capabilities (see [`BASH_PREFIX`]), and as root the sandbox gets a user
//! namespace of its own (see [`AS_ROOT`]).
// std::time::Instant here: a blocking probe of bwrap at start-up, outside the runtime.
#![allow(clippy::disallowed_types)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::permission::Workspace;
use super::process::SpawnSpec;

/// Where a sandboxed worker's workspace appears (its working directory).
pub const WORKSPACE: &str = "/workspace";
/// The sandboxed worker's home, a private tmpfs.
const HOME: &str = "/home/agent";
/// Its Claude config directory, bound from a private host directory.
const CONFIG_DIR: &str = "/home/agent/.claude";
/// Where [`BASH_PREFIX`] is mounted (read-only) in every sandbox.
const BASH_PREFIX_PATH: &str = "/claude-pool/bash-in-own-pid-namespace";
/// Shell start-up files of the sandbox's home, mounted as read-only empty
/// files: the CLI's outer shell, which runs in the worker's PID namespace,
/// must not run what a tool wrote there.
const SHELL_STARTUP: &[&str] = &[".bash_profile", ".bash_login", ".profile", ".bashrc"];

/// The CLI's `CLAUDE_CODE_SHELL_PREFIX`: it runs every Bash tool command as
/// `PREFIX 'COMMAND'`. This one gives the command a PID namespace of its own
/// inside the worker's, so the command sees no process but its own (not the
/// CLI: not its memory, environment or command line), and whatever it
/// leaves behind dies when it ends; a network namespace of its own with
/// nothing but a loopback, so it reaches neither this daemon's API nor
/// anything else; and no capabilities. `{bwrap}` is replaced.
const BASH_PREFIX: &str = "#!/bin/sh
# claude-pool: one Bash tool command in PID and network namespaces of its own, without capabilities.
exec {bwrap} --dev-bind / / --unshare-pid --unshare-net --cap-drop ALL --proc /proc --die-with-parent -- /bin/bash -c \"$1\"
";

/// For a daemon running as root: the sandbox gets a user namespace of its
/// own (bubblewrap run by root otherwise keeps every capability on the
/// host, `CAP_DAC_READ_SEARCH` included, which opens any host file by its
/// handle). Inside, root keeps only what the per-command bubblewrap of
/// [`BASH_PREFIX`] needs to make its namespaces, and only over the
/// sandbox's own namespaces; the commands themselves run with none. (Run by
/// any other user, bubblewrap makes a user namespace anyway and the CLI has
/// no capabilities at all.)
const AS_ROOT: &[&str] = &[
    "--unshare-user",
    "--uid",
    "0",
    "--gid",
    "0",
    "--cap-drop",
    "ALL",
    "--cap-add",
    "CAP_SYS_ADMIN",
    "--cap-add",
    "CAP_NET_ADMIN",
];

/// Variables of the daemon's environment a sandboxed worker keeps; all
/// others are dropped (`[claude.env]` adds more).
pub const ENV_ALLOWED: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Credentials the CLI reads from a file descriptor instead of the
/// environment (it reads `/proc/self/fd/N` once and keeps the value): the
/// variable as configured, and the one naming the descriptor.
pub const FD_CREDENTIALS: &[(&str, &str)] = &[
    ("ANTHROPIC_API_KEY", "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR"),
    (
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
    ),
];

/// System directories mounted read-only (symlinks, as on merged-/usr
/// systems, are recreated as symlinks).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What of `/etc` a worker sees: name resolution, users, TLS roots, the
/// dynamic linker, time zone, `alternatives` (Debian's command symlinks).
/// Not the rest, which holds the daemon's own configuration.
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "resolv.conf",
    "ssl",
    "timezone",
];

/// Why the sandbox cannot be used; the daemon does not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("agent.sandbox = \"bwrap\" needs bubblewrap, which is not installed: install it (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`), or set agent.sandbox = \"none\" to run agent tools unconfined")]
    Missing,
    #[error("agent.sandbox = \"bwrap\": bubblewrap cannot create its sandbox here ({0}). It needs unprivileged user namespaces (sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone = 1 where that exists; on Ubuntu 24.04+ an AppArmor profile allowing bwrap), and a /proc it may mount (under systemd: ProtectKernelTunables=no, ProtectKernelLogs=no, RestrictNamespaces=user mnt pid net, RestrictAddressFamilies with AF_NETLINK and SystemCallFilter=@mount, as in the shipped unit)")]
    Unusable(String),
}

/// A checked bubblewrap and the CLI it runs.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// The host file holding [`BASH_PREFIX`].
    bash_prefix: PathBuf,
    /// The CLI's executable, symlinks resolved.
    cli: PathBuf,
    /// The CLI's install, mounted read-only at the same path.
    cli_install: PathBuf,
    /// The size of each of the private `/tmp` and home, bytes.
    tmpfs_bytes: u64,
}

impl Sandbox {
    /// Finds `bwrap`, writes the Bash prefix into `root` (the workspace
    /// root), and checks that the sandbox this daemon would use can run `cli`
    /// (`--version`) and a Bash command through the prefix.
    /// `/tmp` and the home get `tmpfs_mb` MiB each.
    pub fn prepare(cli: &Path, root: &Path, tmpfs_mb: u64) -> Result<Self, SandboxError> {
        use std::os::unix::fs::PermissionsExt;
        let unusable = |e: std::io::Error| SandboxError::Unusable(e.to_string());
        let bwrap = super::spawn::find_executable("bwrap").ok_or(SandboxError::Missing)?;
        let cli = cli
            .canonicalize()
            .map_err(|e| SandboxError::Unusable(format!("{}: {e}", cli.display())))?;
        let bash_prefix = root.join(".bash-prefix");
        let script = BASH_PREFIX.replace("{bwrap}", &bwrap.display().to_string());
        // Replaced, not rewritten: the one a previous run left is read-only.
        match std::fs::remove_file(&bash_prefix) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(unusable(e)),
            _ => std::fs::write(&bash_prefix, script).map_err(unusable)?,
        }
        std::fs::set_permissions(&bash_prefix, std::fs::Permissions::from_mode(0o555))
            .map_err(unusable)?;
        let sandbox = Self {
            bwrap,
            bash_prefix,
            cli_install: install_dir(&cli),
            cli,
            tmpfs_bytes: tmpfs_mb.saturating_mul(1 << 20),
        };
        let scratch = root.join(".sandbox-check");
        std::fs::create_dir_all(&scratch).map_err(unusable)?;
        let cli = sandbox.cli.display().to_string();
        let probed = sandbox
            .probe(&scratch, &[&cli, "--version"])
            .and_then(|()| sandbox.probe(&scratch, &[BASH_PREFIX_PATH, "test -d /proc/1"]));
        let _ = std::fs::remove_dir_all(&scratch);
        probed.map(|()| sandbox)
    }

    /// A sandbox that was never checked, for unit tests of the recipes.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            bwrap: "/usr/bin/bwrap".into(),
            bash_prefix: "/srv/ws/.bash-prefix".into(),
            cli: "/opt/claude/bin/claude".into(),
            cli_install: "/opt/claude".into(),
            tmpfs_bytes: 1 << 20,
        }
    }

    /// Runs `command` in a sandbox like a worker's.
    fn probe(&self, scratch: &Path, command: &[&str]) -> Result<(), SandboxError> {
        let mut args = self.mounts(scratch, scratch);
        args.push("--".into());
        args.extend(command.iter().map(|s| s.to_string()));
        let mut child = Command::new(&self.bwrap)
            .args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SandboxError::Unusable(format!("cannot run bwrap: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SandboxError::Unusable("no answer within 30 s".into()));
                }
            }
        };
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        Err(SandboxError::Unusable(format!(
            "{status}: {}",
            stderr.trim()
        )))
    }

    /// The bwrap options up to the command: mounts, namespaces, directory.
    fn mounts(&self, workspace: &Path, config: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "--die-with-parent",
            "--unshare-pid",
            "--new-session",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
        ]
        .map(String::from)
        .to_vec();
        // In memory and kept for the worker's life: bounded, so a job
        // cannot fill the host's memory through them.
        for dir in ["/tmp", HOME] {
            let size = self.tmpfs_bytes.to_string();
            args.extend(["--size".into(), size, "--tmpfs".into(), dir.into()]);
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            args.extend(AS_ROOT.iter().map(|s| s.to_string()));
        }
        for dir in SYSTEM_DIRS {
            match std::fs::read_link(dir) {
                Ok(target) => args.extend([
                    "--symlink".into(),
                    target.display().to_string(),
                    dir.to_string(),
                ]),
                Err(_) if Path::new(dir).is_dir() => {
                    args.extend(["--ro-bind".into(), dir.to_string(), dir.to_string()])
                }
                Err(_) => {}
            }
        }
        for entry in ETC_ENTRIES {
            let path = format!("/etc/{entry}");
            args.extend(["--ro-bind-try".into(), path.clone(), path]);
        }
        for dir in [&self.cli_install, &self.bwrap] {
            if !SYSTEM_DIRS.iter().any(|d| dir.starts_with(d)) {
                let dir = dir.display().to_string();
                args.extend(["--ro-bind".into(), dir.clone(), dir]);
            }
        }
        args.extend([
            "--ro-bind".into(),
            self.bash_prefix.display().to_string(),
            BASH_PREFIX_PATH.into(),
        ]);
        for file in SHELL_STARTUP {
            args.extend([
                "--ro-bind".into(),
                "/dev/null".into(),
                format!("{HOME}/{file}"),
            ]);
        }
        args.extend([
            "--bind".into(),
            config.display().to_string(),
            CONFIG_DIR.into(),
            "--bind".into(),
            workspace.display().to_string(),
            WORKSPACE.into(),
            "--chdir".into(),
            WORKSPACE.into(),
            "--remount-ro".into(),
            "/".into(),
        ]);
        args
    }

    /// `spec` (an agent worker's recipe) run in the sandbox, with
    /// `workspace` and `config` (private host directories) mounted.
    pub fn wrap(&self, spec: &SpawnSpec, workspace: &Path, config: &Path) -> SpawnSpec {
        let mut args = self.mounts(workspace, config);
        args.push("--".into());
        args.push(self.cli.display().to_string());
        args.extend(spec.args.iter().cloned());

        let daemon_env = std::env::vars().filter(|(k, _)| ENV_ALLOWED.contains(&k.as_str()));
        let mut env: Vec<(String, String)> = daemon_env.chain(spec.env.iter().cloned()).collect();
        env.extend(
            [
                ("HOME", HOME),
                ("TMPDIR", "/tmp"),
                ("CLAUDE_CONFIG_DIR", CONFIG_DIR),
                ("CLAUDE_CODE_SHELL_PREFIX", BASH_PREFIX_PATH),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut secrets = Vec::new();
        for (variable, fd_variable) in FD_CREDENTIALS {
            // `[claude.env]` wins over the daemon's environment.
            let value = spec
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == variable)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(variable).ok());
            env.retain(|(k, _)| k != variable);
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                secrets.push((fd_variable.to_string(), value));
            }
        }
        SpawnSpec {
            command: self.bwrap.display().to_string(),
            args,
            env,
            clear_env: true,
            secrets,
            env_remove: Vec::new(),
            cwd: workspace.to_path_buf(),
            workspace: Some(Workspace {
                seen_as: PathBuf::from(WORKSPACE),
                host: workspace.to_path_buf(),
            }),
            remove_on_exit: vec![config.to_path_buf()],
            sandboxed: true,
            ..spec.clone()
        }
    }
}

/// The directory holding a CLI install: the npm package of the executable
/// (the nearest ancestor with a `package.json`), else its own directory.
fn install_dir(cli: &Path) -> PathBuf {
    cli.ancestors()
        .skip(1)
        .take(3)
        .find(|dir| dir.join("package.json").is_file())
        .or_else(|| cli.parent())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// The host pids of every process below the sandbox's init (bubblewrap's
/// pid 1 inside), by parent links: processes the CLI started, their
/// orphans (which the init adopts) and processes in PID namespaces a tool
/// nested inside. Empty for an unsandboxed process.
fn descendants_of_init(bwrap_pid: u32) -> Vec<u32> {
    let Some(init) = first_child(bwrap_pid) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent(pid)?)))
        .collect();
    let mut found = vec![init];
    let mut next = 0;
    while next < found.len() {
        let of = found[next];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == of)
                .map(|(pid, _)| *pid),
        );
        next += 1;
    }
    found.remove(0);
    found
}

/// The first child of `pid` (bwrap's init inside the namespace).
fn first_child(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// A process's parent pid (from `/proc/PID/stat`, after the command name).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A process's pid in its own (innermost) PID namespace.
fn inner_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Pid 1 inside is bwrap's init; the first process it starts, pid 2, is
/// the CLI.
const CLI_INNER_PID: u32 = 2;

/// The CLI's host pid in the sandbox started as `bwrap_pid`.
pub fn cli_pid(bwrap_pid: u32) -> Option<u32> {
    let init = first_child(bwrap_pid)?;
    descendants_of_init(bwrap_pid)
        .into_iter()
        .find(|pid| parent(*pid) == Some(init) && inner_pid(*pid) == Some(CLI_INNER_PID))
}

/// SIGKILLs every process of the sandbox but its init and the CLI: what
/// the job's tools left, whatever they did to their session, process group,
/// environment or PID namespace. Returns how many.
pub fn kill_leftovers(bwrap_pid: u32) -> usize {
    let cli = cli_pid(bwrap_pid);
    descendants_of_init(bwrap_pid)
        .into_iter()
        .filter(|pid| Some(*pid) != cli)
        // SAFETY: kill only sends a signal to a process just found.
        .filter(|pid| unsafe { libc::kill(*pid as i32, libc::SIGKILL) } == 0)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_npm_install_is_mounted_as_its_package() {
        let root = tempfile::tempdir().unwrap();
        let package = root.path().join("node_modules/@anthropic-ai/claude-code");
        std::fs::create_dir_all(package.join("bin")).unwrap();
        std::fs::write(package.join("package.json"), "{}").unwrap();
        assert_eq!(install_dir(&package.join("bin/claude.exe")), package);
        let lone = root.path().join("versions/2.1.197");
        assert_eq!(install_dir(&lone), root.path().join("versions"));
    }

    #[test]
    fn credentials_leave_the_environment_for_descriptors() {
        let sandbox = Sandbox::for_tests();
        let spec = SpawnSpec {
            env: vec![
                ("ANTHROPIC_API_KEY".into(), "sk-secret".into()),
                ("ANTHROPIC_BASE_URL".into(), "http://127.0.0.1:1".into()),
                ("CLAUDE_CONFIG_DIR".into(), "/var/lib/x".into()),
            ],
            ..SpawnSpec::default()
        };
        let wrapped = sandbox.wrap(&spec, Path::new("/srv/ws/worker-1"), Path::new("/srv/c1"));
        assert!(wrapped.clear_env);
        assert!(wrapped.env.iter().all(|(_, v)| !v.contains("sk-secret")));
        assert!(wrapped.args.iter().all(|a| !a.contains("sk-secret")));
        assert_eq!(
            wrapped.secrets,
            vec![(
                "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR".to_string(),
                "sk-secret".to_string()
            )]
        );
        let last = |key: &str| {
            wrapped
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(last("CLAUDE_CONFIG_DIR").as_deref(), Some(CONFIG_DIR));
        assert_eq!(
            last("ANTHROPIC_BASE_URL").as_deref(),
            Some("http://127.0.0.1:1")
        );
        let joined = wrapped.args.join(" ");
        assert!(
            joined.contains("--bind /srv/ws/worker-1 /workspace"),
            "{joined}"
        );
        assert!(
            joined.contains("--ro-bind /opt/claude /opt/claude"),
            "{joined}"
        );
        assert!(joined.contains("--unshare-pid"));
        assert!(!joined.contains("/etc/claude-pool"));
        assert_eq!(wrapped.remove_on_exit, vec![PathBuf::from("/srv/c1")]);
    }
}
