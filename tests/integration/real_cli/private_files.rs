//! The directories and files the daemon makes are its user's alone, whatever
//! the umask: made with names no one can guess (no directory another user
//! prepared for an upcoming pid is taken over), mode 0700 and 0600, and the
//! temporary ones gone when the daemon stops. A directory another user owns
//! or may write is refused.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

/// A config for the executable: agent mode on with its sandbox, the store
/// at `store`, `extra` appended to `[agent]`.
fn config(dir: &Path, upstream: &FakeUpstream, store: &Path, agent_extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_keys = [\"k-private-files\"]\n\
         [pool]\nsize = 1\nboot_timeout_secs = 20\n\
         [claude]\ncommand = {:?}\nconfig_dir = {:?}\n\
         [claude.env]\nANTHROPIC_BASE_URL = {:?}\nANTHROPIC_API_KEY = \"sk-test\"\n\
         [agent]\nenabled = true\n{agent_extra}\n\
         [batches]\nstore_path = {:?}\n",
        real_cli(),
        dir.join("claude-config").display().to_string(),
        upstream.url,
        store.display().to_string(),
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// The daemon's command with umask 000: whatever it makes is private only
/// if it makes it so.
fn permissive(config: &Path, tmp: &Path) -> std::process::Command {
    let mut cmd = DaemonProcess::command(config);
    cmd.env("TMPDIR", tmp);
    // SAFETY: umask is async-signal-safe and touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    cmd
}

/// Entries of `dir` whose name starts with `claude-pool`.
fn run_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("claude-pool"))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

#[test]
fn with_a_permissive_umask_everything_made_is_private_and_temporary_dirs_go() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let state = dir.path().join("state");
    let store = state.join("store.sqlite3");
    let config = config(dir.path(), &upstream, &store, "");
    let mut daemon =
        DaemonProcess::start_command(permissive(&config, &tmp), dir.path().join("daemon.log"));
    daemon.wait_health("a ready worker", |h| h["workers"]["ready"] == 1);
    let pid = daemon.child.id().to_string();

    let made = run_dirs(&tmp);
    assert_eq!(
        made.len(),
        2,
        "the agents' root and the working dir: {made:?}"
    );
    for made in &made {
        let name = made.file_name().unwrap().to_string_lossy().to_string();
        assert!(!name.contains(&pid), "a guessable name: {name}");
        assert_eq!(mode(made), 0o700, "{name}");
    }
    let agents = made
        .iter()
        .find(|d| d.display().to_string().contains("agents"))
        .expect("the agents' root");
    for private in ["worker-1", "worker-1.claude"] {
        assert_eq!(mode(&agents.join(private)), 0o700, "{private}");
    }
    assert_eq!(mode(&agents.join(".bash-prefix")), 0o555);
    assert_eq!(mode(&dir.path().join("claude-config")), 0o700);
    assert_eq!(mode(&state), 0o700);
    for file in ["store.sqlite3", "store.sqlite3-wal", "store.sqlite3-shm"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }

    daemon.signal(libc::SIGTERM);
    let exit = daemon.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}: {}", daemon.log_text());
    assert_eq!(run_dirs(&tmp), Vec::<PathBuf>::new(), "left behind");
}

/// Runs the daemon with `workspace_root` and returns its log, expecting it
/// not to start.
fn refused(workspace_root: &Path) -> String {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "workspace_root = {:?}",
        workspace_root.display().to_string()
    );
    let config = config(dir.path(), &upstream, &dir.path().join("s.sqlite3"), &extra);
    let log_path = dir.path().join("daemon.log");
    let mut child = DaemonProcess::command(&config)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.is_some_and(|s| !s.success()), "it started: {log}");
    assert!(
        !workspace_root.join(".bash-prefix").exists(),
        "it wrote into the directory"
    );
    log
}

#[test]
fn a_workspace_root_others_may_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = refused(&shared);
    assert!(log.contains("other users may write it"), "{log}");
}

#[test]
fn a_workspace_root_of_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    // SAFETY: geteuid has no preconditions.
    let theirs = match unsafe { libc::geteuid() } {
        0 => {
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            theirs
        }
        // Not root: root's own directory.
        _ => PathBuf::from("/"),
    };
    let log = refused(&theirs);
    assert!(log.contains("not by this daemon's user"), "{log}");
}
