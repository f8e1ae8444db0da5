//! One `claude` child process: spawned in a process group of its own, stdin
//! fed by a writer task, stdout read line by line and stderr drained into
//! the log (see [`lines`](super::lines)), and reaped by a task that also
//! carries out termination.

use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use futures_util::stream::{BoxStream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::lines::{drain_stderr, read_lines, MAX_LINE_BYTES};
use super::protocol::CliLine;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// How long the CLI gets to exit after SIGTERM before SIGKILL.
const SIGTERM_GRACE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct SpawnSpec {
    pub command: String,
    pub args: Vec<String>,
    /// Added to (or overriding) the daemon's own environment.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment instead of the daemon's.
    pub clear_env: bool,
    /// Variables of the daemon's environment the process must not inherit.
    pub env_remove: Vec<String>,
    /// Values handed over through pipes, not the environment: (variable,
    /// value); the process gets the value on a file descriptor (3, 4, …)
    /// whose number the variable names.
    pub secrets: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// An agent worker's workspace, for the file tools' path check.
    pub workspace: Option<super::permission::Workspace>,
    /// Directories removed once the process has exited (the worker's own
    /// files, e.g. its private Claude config directory).
    pub remove_on_exit: Vec<PathBuf>,
    /// `command` is bubblewrap running the CLI in a PID namespace.
    pub sandboxed: bool,
    /// Prefix of the stderr log lines, e.g. the worker's name.
    pub log_name: String,
    /// A value unique to this process, placed in its environment as
    /// [`TAG_VAR`]. Descendants inherit it, which finds them even after they
    /// left the process group (the CLI's Bash tool starts its own sessions).
    pub tag: String,
}

/// Environment variable carrying [`SpawnSpec::tag`].
pub const TAG_VAR: &str = "CLAUDE_POOL_WORKER";

/// Handle on a running CLI. Dropping it kills the process group.
pub struct CliProcess {
    ids: Rc<ProcessIds>,
    tag: String,
    stdin: Option<mpsc::UnboundedSender<String>>,
    terminate: Option<oneshot::Sender<Duration>>,
}

/// The process's output: its stdout lines and, once it has exited, how.
pub struct CliOutput {
    pub lines: BoxStream<'static, CliLine>,
    pub exit: oneshot::Receiver<String>,
}

/// Starts the CLI. Fails if the executable cannot be run at all.
pub fn spawn(spec: &SpawnSpec) -> std::io::Result<(CliProcess, CliOutput)> {
    let mut command = Command::new(&spec.command);
    if spec.clear_env {
        command.env_clear();
    }
    let secrets = secret_pipes(&spec.secrets)?;
    for (i, (variable, _)) in spec.secrets.iter().enumerate() {
        command.env(variable, (SECRET_FD + i as i32).to_string());
    }
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(TAG_VAR, &spec.tag)
        .current_dir(&spec.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so termination reaches everything it started
        // in that group and a terminal's ^C does not reach it directly.
        .process_group(0)
        .kill_on_drop(true);
    for key in &spec.env_remove {
        command.env_remove(key);
    }
    // Last, so that nothing configured can undo them.
    command.envs(super::spawn::ENFORCED_ENV.iter().copied());
    // The secrets' read ends are moved to descriptors 3, 4, … (dup2 clears
    // close-on-exec on the copy; the originals, all above those, close).
    let secret_fds: Vec<i32> = secrets.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (prctl, dup2) on memory it owns.
    // If the daemon dies without stopping its workers (SIGKILL, a crash),
    // the kernel kills them too instead of leaving them orphaned. (The
    // parent "thread" is the actix system thread, which lives as long as
    // the daemon.)
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            for (i, fd) in secret_fds.iter().enumerate() {
                if libc::dup2(*fd, SECRET_FD + i as i32) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    drop(secrets);
    let pid = child.id().unwrap_or_default();

    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    tokio::spawn(write_stdin(stdin, stdin_rx));
    tokio::spawn(drain_stderr(stderr, spec.log_name.clone()));

    let (terminate_tx, terminate_rx) = oneshot::channel();
    let (overflow_tx, overflow_rx) = oneshot::channel();
    let (exit_tx, exit_rx) = oneshot::channel();
    let stop = Stop {
        terminate: terminate_rx,
        overflow: overflow_rx,
    };
    let tag = spec.tag.clone();
    let remove = spec.remove_on_exit.clone();
    tokio::spawn(reap(child, pid, tag, remove, stop, exit_tx));

    let process = CliProcess {
        ids: Rc::new(ProcessIds {
            pid,
            sandboxed_cli: spec.sandboxed.then(|| Cell::new(None)),
        }),
        tag: spec.tag.clone(),
        stdin: Some(stdin_tx),
        terminate: Some(terminate_tx),
    };
    let output = CliOutput {
        lines: read_lines(stdout, MAX_LINE_BYTES, overflow_tx).boxed(),
        exit: exit_rx,
    };
    Ok((process, output))
}

/// The first descriptor number secrets are handed over on.
const SECRET_FD: i32 = 3;

/// One pipe per secret, the value written and the write end closed; the
/// read ends are returned, numbered above every descriptor the child gets
/// them on, and close-on-exec.
fn secret_pipes(secrets: &[(String, String)]) -> std::io::Result<Vec<OwnedFd>> {
    let mut read_ends = Vec::new();
    for (_, value) in secrets {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors it creates, owned below.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned once.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A credential is far below the pipe's 64 KiB buffer: no blocking.
        std::io::Write::write_all(&mut std::fs::File::from(write), value.as_bytes())?;
        let floor = SECRET_FD + secrets.len() as i32;
        // SAFETY: F_DUPFD_CLOEXEC duplicates a valid descriptor.
        let high = unsafe { libc::fcntl(read.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
        if high == -1 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `high` was just created and is owned once.
        read_ends.push(unsafe { OwnedFd::from_raw_fd(high) });
    }
    Ok(read_ends)
}

/// Which process a worker's CLI is; shared with the worker's session, which
/// reads its pid and memory.
#[derive(Debug)]
pub struct ProcessIds {
    /// The spawned process (in a sandbox, bubblewrap).
    pid: u32,
    /// In a sandbox: the CLI's own host pid, once found.
    sandboxed_cli: Option<Cell<Option<u32>>>,
}

impl ProcessIds {
    /// The CLI's pid (inside a sandbox, its host pid once it runs; until
    /// then bubblewrap's).
    pub fn pid(&self) -> u32 {
        let Some(cli) = &self.sandboxed_cli else {
            return self.pid;
        };
        if cli.get().is_none() {
            cli.set(super::sandbox::cli_pid(self.pid));
        }
        cli.get().unwrap_or(self.pid)
    }

    /// Resident memory of the CLI, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.pid())
    }
}

impl CliProcess {
    /// The process's ids, to share.
    pub fn ids(&self) -> Rc<ProcessIds> {
        self.ids.clone()
    }

    /// SIGKILLs every process the CLI's tools started that is still alive
    /// (the CLI itself stays); returns how many. In a sandbox that is every
    /// other process of its PID namespace; otherwise every process carrying
    /// the CLI's tag in its environment.
    pub fn kill_leftovers(&self) -> usize {
        let pid = self.ids.pid;
        match self.ids.sandboxed_cli {
            Some(_) => super::sandbox::kill_leftovers(pid),
            None => kill_tagged(&self.tag, Some(pid)),
        }
    }

    /// Queues one line for the CLI's stdin. False once stdin is closed.
    pub fn send(&self, line: String) -> bool {
        match &self.stdin {
            Some(tx) => tx.send(line).is_ok(),
            None => false,
        }
    }

    /// Stops the process: stdin EOF, `grace` for it to exit on its own, then
    /// SIGTERM and finally SIGKILL to its process group. Idempotent.
    pub fn terminate(&mut self, grace: Duration) {
        self.stdin = None;
        if let Some(tx) = self.terminate.take() {
            let _ = tx.send(grace);
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        self.terminate(Duration::ZERO);
    }
}

/// Resident set size of a process in bytes (Linux /proc), if it exists.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

async fn write_stdin(
    mut stdin: tokio::process::ChildStdin,
    mut lines: mpsc::UnboundedReceiver<String>,
) {
    while let Some(line) = lines.recv().await {
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
    // The sender side was dropped: closing stdin tells the CLI to finish.
}

/// What may end a process before it exits by itself.
struct Stop {
    /// [`CliProcess::terminate`]: the grace before signals.
    terminate: oneshot::Receiver<Duration>,
    /// The stdout reader gave up on the process (why).
    overflow: oneshot::Receiver<String>,
}

async fn reap(
    mut child: Child,
    pid: u32,
    tag: String,
    remove_on_exit: Vec<PathBuf>,
    stop: Stop,
    exit: oneshot::Sender<String>,
) {
    let Stop {
        terminate,
        overflow,
    } = stop;
    // The reader drops its sender at an ordinary EOF: not a reason to stop.
    let overflow = async {
        match overflow.await {
            Ok(why) => why,
            Err(_) => std::future::pending().await,
        }
    };
    let mut why = None;
    let status = tokio::select! {
        status = child.wait() => status,
        reason = overflow => {
            signal_group(pid, libc::SIGKILL);
            why = Some(reason);
            child.wait().await
        }
        grace = terminate => {
            let grace = grace.unwrap_or(Duration::ZERO);
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    signal_group(pid, libc::SIGTERM);
                    match tokio::time::timeout(SIGTERM_GRACE, child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            signal_group(pid, libc::SIGKILL);
                            child.wait().await
                        }
                    }
                }
            }
        }
    };
    // Anything the CLI left behind goes with it: its group, and every
    // process that inherited its tag.
    signal_group(pid, libc::SIGKILL);
    let killed = kill_tagged(&tag, None);
    if killed > 0 {
        log::info!("killed {killed} leftover descendant process(es) of pid {pid}");
    }
    for dir in &remove_on_exit {
        // Read-only subdirectories a tool made are removed too.
        match crate::private_fs::remove_tree(dir) {
            Ok(()) => log::debug!("removed {}", dir.display()),
            Err(e) => log::warn!("cannot remove {}: {e}", dir.display()),
        }
    }
    let mut description = match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("wait failed: {e}"),
    };
    if let Some(why) = why {
        description = format!("{why}, {description}");
    }
    let _ = exit.send(description);
}

/// SIGKILLs every process whose environment holds `TAG_VAR=tag`, but
/// `except`; returns how many. Only processes of the daemon's own user are readable, which are
/// the only ones it could have started.
pub fn kill_tagged(tag: &str, except: Option<u32>) -> usize {
    if tag.is_empty() {
        return 0;
    }
    let needle = format!("{TAG_VAR}={tag}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if except == Some(pid as u32) {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            // SAFETY: kill only sends a signal to the process just found.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    killed
}

fn signal_group(pid: u32, signal: libc::c_int) {
    if pid > 1 {
        // SAFETY: killpg only sends a signal; the group id is the child's
        // pid because it was spawned with process_group(0).
        unsafe {
            libc::killpg(pid as libc::pid_t, signal);
        }
    }
}
