//! Agent mode contained, with the real CLI: what a job's tools try against
//! the host (reading outside the workspace, another worker's files, the
//! upstream credential; escaping through a symlink; leaving processes
//! behind) fails, and what a job is for (Bash, Read, Write, Edit in the
//! workspace, files kept between a worker's jobs, and only those) works. The fake upstream
//! makes the model call the CLI's own tools with `[[call:NAME:JSON]]`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

fn agent_daemon(upstream: &FakeUpstream, root: &Path, pool: usize, extra: &str) -> Daemon {
    let toml = format!(
        "agent.enabled = true\nagent.workspace_root = {}\n{extra}",
        serde_json::to_string(&root.display().to_string()).unwrap()
    );
    let cfg = DaemonConfig::real(pool).with_toml(&toml);
    Daemon::start(cfg.with_client_key("sk-agent-client"), upstream)
}

/// The text of the reply to a prompt holding tool-call markers. The fake
/// model answers a tool round with `Tool results: <texts>`.
fn ask(daemon: &Daemon, text: &str) -> String {
    let res = daemon.post(&message_body(text));
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().unwrap();
    reply["content"][0]["text"].as_str().unwrap().to_string()
}

fn call(tool: &str, input: Value) -> String {
    format!("[[call:{tool}:{input}]]")
}

fn bash(command: &str) -> String {
    call("Bash", json!({"command": command, "description": "run"}))
}

/// `path` as a shell word the CLI's own analysis of Bash commands does not
/// recognise as a path (it asks the daemon about paths it recognises): the
/// sandbox, not that analysis, must stop what follows.
fn hidden(path: &str) -> String {
    let (head, tail) = path.split_at(path.len() / 2);
    format!("\"$(printf %s '{head}')$(printf %s '{tail}')\"")
}

/// A file outside every workspace, holding a unique secret.
fn secret_file(dir: &Path, name: &str) -> (String, String) {
    let secret = format!("SECRET-{name}-{}", std::process::id());
    let path = dir.join(name);
    std::fs::write(&path, &secret).unwrap();
    (path.display().to_string(), secret)
}

#[test]
fn bash_and_read_see_nothing_of_the_host_outside_the_workspace() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (path, secret) = secret_file(outside.path(), "outside.txt");
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    let daemon_dir = daemon.dir.path().display().to_string();
    let text = ask(
        &daemon,
        &format!(
            "look {} {} {}",
            bash(&format!(
                "cat {}; ls -a {} /root /home; echo listed",
                hidden(&path),
                hidden(&daemon_dir)
            )),
            call("Read", json!({"file_path": path})),
            call("Read", json!({"file_path": "/etc/shadow"})),
        ),
    );
    assert!(text.contains("listed"), "the command ran: {text}");
    assert!(!text.contains(&secret), "a file outside was read: {text}");
    assert!(
        !text.contains("claude-config"),
        "the daemon's folder was listed: {text}"
    );
    assert!(
        text.contains("outside this agent's workspace"),
        "Read is refused by the daemon too: {text}"
    );
}

#[test]
fn another_workers_workspace_is_out_of_reach() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 2, "");
    let mut secrets = Vec::new();
    for id in 1..=2 {
        let ws = root.path().join(format!("worker-{id}"));
        assert!(ws.is_dir(), "worker-{id} has its workspace");
        secrets.push(secret_file(&ws, &format!("mine-{id}.txt")));
    }
    let host_paths: Vec<&str> = secrets.iter().map(|(p, _)| p.as_str()).collect();
    let hidden_paths: Vec<String> = host_paths.iter().map(|p| hidden(p)).collect();
    let command = format!(
        "cat {} {} {}; echo; echo own:; cat mine-*.txt",
        hidden_paths.join(" "),
        hidden("../worker-1/mine-1.txt"),
        hidden("../worker-2/mine-2.txt"),
    );
    let reads: String = host_paths
        .iter()
        .map(|p| call("Read", json!({ "file_path": p })))
        .collect();
    let text = ask(&daemon, &format!("peek {} {reads}", bash(&command)));
    let Some((before, own)) = text.split_once("own:") else {
        panic!("the command did not run: {text}");
    };
    let seen: Vec<&String> = secrets
        .iter()
        .map(|(_, s)| s)
        .filter(|s| before.contains(s.as_str()))
        .collect();
    assert!(seen.is_empty(), "workspaces read by other paths: {text}");
    let own_seen = secrets
        .iter()
        .filter(|(_, s)| own.contains(s.as_str()))
        .count();
    assert_eq!(own_seen, 1, "exactly its own file, relatively: {text}");
}

fn symlink_then_read(sandbox: &str) {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (path, secret) = secret_file(outside.path(), "linked.txt");
    let daemon = agent_daemon(&upstream, root.path(), 1, sandbox);
    let text = ask(
        &daemon,
        &format!(
            "link {}",
            bash(&format!("ln -s {} link.txt && echo linked", hidden(&path)))
        ),
    );
    assert!(text.contains("linked"), "{text}");
    let link = root.path().join("worker-1/link.txt");
    assert!(link.symlink_metadata().is_ok(), "the link exists");
    let text = ask(
        &daemon,
        &format!("read {}", call("Read", json!({"file_path": "link.txt"}))),
    );
    assert!(!text.contains(&secret), "read through a symlink: {text}");
    assert!(text.contains("outside this agent's workspace"), "{text}");
}

#[test]
fn a_symlink_made_with_bash_does_not_lead_read_out() {
    symlink_then_read("");
}

#[test]
fn without_the_sandbox_the_path_check_still_follows_symlinks() {
    symlink_then_read("agent.sandbox = \"none\"");
}

#[test]
fn bash_cannot_print_the_upstream_credential() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    // Filtered, so that the output stays short enough to come back inline.
    let command = "env | grep -e KEY -e TOKEN -e HOME=; echo ENVIRON:; \
                   cat /proc/[0-9]*/environ | tr '\\0' '\\n' | grep -e KEY -e TOKEN -e HOME= | sort -u; \
                   echo CMDLINE:; cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -o -e 'sk-tes[t]' -e permission-mode | sort -u";
    let text = ask(&daemon, &format!("leak {}", bash(command)));
    assert!(
        text.contains("ENVIRON:") && text.contains("HOME=/home/agent"),
        "environments were listed: {text}"
    );
    assert!(
        text.contains("permission-mode"),
        "command lines were listed: {text}"
    );
    assert!(!text.contains("sk-test"), "the credential leaked: {text}");
    // The CLI had it all along: every upstream call carried it.
    let calls = upstream.message_calls();
    assert!(calls.len() >= 2);
    assert!(calls
        .iter()
        .all(|c| c.api_key.as_deref() == Some("sk-test")));
}

/// Scans the readable memory of every process it can see for the test's
/// upstream key (built at run time, so that the script holds no copy).
const MEMORY_SCAN: &str = r#"import os
needle = b"sk-tes" + b"t"
found, scanned = [], 0
for pid in [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
    try:
        maps = open("/proc/%s/maps" % pid).read().splitlines()
        mem = open("/proc/%s/mem" % pid, "rb", 0)
    except OSError:
        continue
    scanned += 1
    for line in maps:
        lo, hi = [int(x, 16) for x in line.split()[0].split("-")]
        if "r" not in line.split()[1] or hi - lo > 1 << 28:
            continue
        try:
            mem.seek(lo)
            if needle in mem.read(hi - lo):
                found.append(pid)
        except (OSError, ValueError, OverflowError):
            pass
print("scanned", scanned, "found", sorted(set(found)))
"#;

#[test]
fn bash_cannot_read_the_credential_from_the_clis_memory() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    std::fs::write(root.path().join("worker-1/scan.py"), MEMORY_SCAN).unwrap();
    let text = ask(&daemon, &format!("scan {}", bash("python3 scan.py")));
    assert!(text.contains("scanned"), "the scan ran: {text}");
    assert!(
        text.contains("found []"),
        "the key was found in memory: {text}"
    );
    assert!(upstream
        .message_calls()
        .iter()
        .all(|c| c.api_key.as_deref() == Some("sk-test")));
}

/// Asks the kernel to open a directory by its file handle, which needs
/// `CAP_DAC_READ_SEARCH` on the host: with it, a handle made up for another
/// inode (the file system's root) opens files outside every mount.
const BY_HANDLE_PROBE: &str = r#"import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Handle(ctypes.Structure):
    _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("h", ctypes.c_ubyte * 128)]
handle, mount_id = Handle(), ctypes.c_int()
handle.bytes = 128
if libc.name_to_handle_at(-100, sys.argv[1].encode(), ctypes.byref(handle), ctypes.byref(mount_id), 0):
    print("no handle:", os.strerror(ctypes.get_errno()))
fd = libc.open_by_handle_at(os.open(sys.argv[1], os.O_RDONLY), ctypes.byref(handle), os.O_RDONLY)
print("BY-HANDLE", "OPENED" if fd >= 0 else "REFUSED " + os.strerror(ctypes.get_errno()))
"#;

#[test]
fn bash_runs_without_capabilities() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    std::fs::write(root.path().join("worker-1/probe.py"), BY_HANDLE_PROBE).unwrap();
    let command = "grep -e CapEff -e CapPrm /proc/self/status; python3 probe.py /workspace";
    let text = ask(&daemon, &format!("caps {}", bash(command)));
    assert!(text.contains("BY-HANDLE"), "the probe ran: {text}");
    assert!(
        text.contains("CapEff:\t0000000000000000") && text.contains("CapPrm:\t0000000000000000"),
        "capabilities: {text}"
    );
    assert!(text.contains("BY-HANDLE REFUSED"), "{text}");
}

#[test]
fn bash_cannot_reach_the_daemon_or_the_network() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    // The daemon's API, and the fake upstream the CLI itself talks to.
    let fetch = |url: String| {
        format!(
            "python3 -c 'import sys,urllib.request as u; print(sys.argv[1], u.urlopen(sys.argv[1], timeout=5).status)' {url} 2>&1 | tail -1"
        )
    };
    let command = format!(
        "{}; {}; echo fetched",
        fetch(daemon.url("/health")),
        fetch(format!("{}/v1/models", upstream.url))
    );
    let text = ask(&daemon, &format!("call home {}", bash(&command)));
    assert!(text.contains("fetched"), "the command ran: {text}");
    assert!(!text.contains(" 200"), "a request got through: {text}");
    assert!(text.matches("Connection refused").count() == 2, "{text}");
}

/// The text of the reply to `text` sent with the client key `key`.
fn ask_as(daemon: &Daemon, key: &str, text: &str) -> String {
    let res = client()
        .post(daemon.url("/v1/messages"))
        .header("x-api-key", key)
        .json(&message_body(text))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().unwrap();
    reply["content"][0]["text"].as_str().unwrap().to_string()
}

#[test]
fn what_one_key_leaves_on_a_worker_never_reaches_another_keys_job() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let toml = format!(
        "agent.enabled = true\nagent.workspace_root = {:?}\nserver.api_keys = [\"key-a\", \"key-b\"]",
        root.path().display().to_string()
    );
    let daemon = Daemon::start(DaemonConfig::real(1).with_toml(&toml), &upstream);
    // Tenant A plants a DEBUG trap in the shell snapshot every later Bash
    // command sources, and files in /tmp, the home and the workspace.
    let (tmp, home) = (hidden("/tmp"), hidden("/home/agent"));
    let plant = format!(
        "for f in {home}/.claude/shell-snapshots/snapshot-bash-*.sh; do \
         echo \"trap 'echo PLANTED-TRAP-RAN' DEBUG\" >> \"$f\"; done; \
         echo x > {tmp}/planted-tmp; echo x > {home}/planted-home; echo x > planted-ws; echo planted"
    );
    let text = ask_as(&daemon, "key-a", &format!("plant {}", bash(&plant)));
    assert!(text.contains("planted"), "{text}");
    let look = &format!("ls -A {tmp} {home} .; echo looked");
    // A's own next job runs on the same worker: the plant took.
    let text = ask_as(&daemon, "key-a", &format!("look {}", bash(look)));
    assert!(
        text.contains("PLANTED-TRAP-RAN") && text.contains("planted-ws"),
        "{text}"
    );
    let text = ask_as(&daemon, "key-b", &format!("look {}", bash(look)));
    assert!(text.contains("looked"), "{text}");
    assert!(
        !text.contains("PLANTED") && !text.contains("planted-"),
        "key B met what key A left: {text}"
    );
}

#[test]
fn the_private_tmp_and_home_are_bounded() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "agent.tmpfs_size_mb = 4");
    let fill = |dir: &str| {
        format!(
            "head -c 3M /dev/zero > {0}/a && echo {dir}-3M-ok; \
             head -c 3M /dev/zero > {0}/b || echo {dir}-full",
            hidden(dir)
        )
    };
    let text = ask(
        &daemon,
        &format!(
            "fill {}",
            bash(&format!("{}; {}", fill("/tmp"), fill("/home/agent")))
        ),
    );
    for dir in ["/tmp", "/home/agent"] {
        assert!(text.contains(&format!("{dir}-3M-ok")), "{text}");
        assert!(text.contains(&format!("{dir}-full")), "{text}");
    }
    assert!(text.contains("No space left on device"), "{text}");
}

#[test]
fn detached_processes_die_with_the_job() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    // The third hides in PID and user namespaces of its own.
    let command = "(setsid nohup sleep 871.5 >/dev/null 2>&1 &); \
                   env -i setsid sleep 872.5 >/dev/null 2>&1 & \
                   (unshare -U -p -f setsid sleep 873.5 >/dev/null 2>&1 &); \
                   sleep 0.5; cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -o 'sleep 87[123].5' | sort -u";
    let text = ask(&daemon, &format!("detach {}", bash(command)));
    let sleepers = ["sleep 871.5", "sleep 872.5", "sleep 873.5"];
    assert!(
        sleepers.iter().all(|s| text.contains(s)),
        "all were running during the job: {text}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<u32> = sleepers
            .iter()
            .flat_map(|n| processes_with_cmdline(n))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "survived the job: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The worker itself survived the sweep and takes the next job.
    let text = ask(&daemon, &format!("again {}", bash("echo still-here")));
    assert!(text.contains("still-here"), "{text}");
}

#[test]
fn writes_outside_the_workspace_are_denied() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let by_write = outside.path().join("by-write.txt");
    let by_bash = outside.path().join("by-bash.txt");
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    let text = ask(
        &daemon,
        &format!(
            "escape {} {}",
            call("Write", json!({"file_path": by_write, "content": "x"})),
            bash(&format!(
                "echo x > {}; echo tried",
                hidden(&by_bash.display().to_string())
            )),
        ),
    );
    assert!(text.contains("tried"), "{text}");
    assert!(text.contains("outside this agent's workspace"), "{text}");
    assert!(!by_write.exists() && !by_bash.exists(), "written outside");
}

#[test]
fn the_tools_work_in_the_workspace_and_files_stay_with_the_worker() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    let host = root.path().join("worker-1/notes.txt");
    let write = call(
        "Write",
        json!({"file_path": "/workspace/notes.txt", "content": "alpha beta\n"}),
    );
    ask(&daemon, &format!("write {write}"));
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "alpha beta\n");
    // Later jobs of the same worker find the file: Read it, Edit it (Edit
    // needs a Read in the same conversation first), then Bash sees the edit.
    let read = call("Read", json!({"file_path": "notes.txt"}));
    let edit = call(
        "Edit",
        json!({"file_path": "/workspace/notes.txt", "old_string": "beta", "new_string": "gamma"}),
    );
    let text = ask(&daemon, &format!("read {read}"));
    assert!(text.contains("alpha beta"), "{text}");
    ask(&daemon, &format!("read {read} and edit {edit}"));
    let text = ask(&daemon, &format!("show {}", bash("cat notes.txt; pwd")));
    assert!(
        text.contains("alpha gamma") && text.contains("/workspace"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "alpha gamma\n");
}

#[test]
fn a_new_daemon_run_starts_with_empty_workspaces() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let workspace = root.path().join("worker-1");
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    let write = call(
        "Write",
        json!({"file_path": "/workspace/notes.txt", "content": "first run\n"}),
    );
    ask(&daemon, &format!("write {write}"));
    assert!(workspace.join("notes.txt").exists());
    daemon.stop().expect("clean stop");
    assert!(!workspace.exists(), "the workspace went with its worker");

    // As a daemon killed without cleaning up would leave it.
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("left.txt"), "earlier caller").unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "");
    let text = ask(
        &daemon,
        &format!("list {}", bash("ls -A /workspace; echo END")),
    );
    assert!(text.contains("END"), "{text}");
    assert!(!text.contains("left.txt"), "{text}");
    assert_eq!(std::fs::read_dir(&workspace).unwrap().count(), 0);
}

#[test]
fn tool_output_files_stay_with_the_worker_and_go_with_it() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let daemon = agent_daemon(&upstream, root.path(), 1, "pool.max_jobs_per_worker = 2");
    let private = root.path().join("worker-1.claude");
    assert!(private.is_dir(), "worker-1 has a private config directory");
    ask(&daemon, &format!("big {}", bash("seq 1 200000")));
    let saved = files_under(&private, "tool-results");
    assert!(
        !saved.is_empty(),
        "the large output was saved with the worker"
    );
    let shared = Path::new(&daemon.config_dir()).join("projects");
    assert!(
        files_under(&shared, "tool-results").is_empty(),
        "nothing in the shared config directory"
    );
    // The second job retires worker-1; its files go with it.
    ask(&daemon, "done");
    let deadline = Instant::now() + Duration::from_secs(30);
    while private.exists() {
        assert!(Instant::now() < deadline, "worker-1's files stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_the_sandbox_tool_output_files_go_with_the_worker_too() {
    let upstream = FakeUpstream::start();
    let root = tempfile::tempdir().unwrap();
    let extra = "pool.max_jobs_per_worker = 2\nagent.sandbox = \"none\"";
    let daemon = agent_daemon(&upstream, root.path(), 1, extra);
    ask(&daemon, &format!("big {}", bash("seq 1 200000")));
    let projects = Path::new(&daemon.config_dir()).join("projects");
    let saved = files_under(&projects, "tool-results");
    assert!(!saved.is_empty(), "the CLI saved the large output");
    let slug: String = root
        .path()
        .join("worker-1")
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let folder = projects.join(slug);
    assert!(saved.iter().all(|f| f.starts_with(&folder)), "{saved:?}");
    ask(&daemon, "done");
    let deadline = Instant::now() + Duration::from_secs(30);
    while folder.exists() {
        assert!(Instant::now() < deadline, "worker-1's tool output stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Files below `dir` whose path contains `part`.
fn files_under(dir: &Path, part: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.display().to_string().contains(part) {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn without_bubblewrap_agent_mode_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let toml = format!(
        "[server]\napi_keys = [\"k\"]\n[claude]\ncommand = {:?}\n\
         [agent]\nenabled = true\nworkspace_root = {:?}\n",
        real_cli(),
        dir.path().join("ws").display().to_string()
    );
    std::fs::write(&config, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claude-pool"))
        .arg("--config")
        .arg(&config)
        .env("PATH", dir.path())
        .env_remove("CLAUDE_POOL_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("apt-get install bubblewrap") && stderr.contains("agent.sandbox"),
        "{stderr}"
    );
}

/// A daemon run as root gets a different sandbox from one run by any other
/// user (see `AS_ROOT` in `src/worker/sandbox.rs`), so the checks above
/// must hold for both. Run as root, this runs them all again as `nobody`;
/// run as anyone else, they have just run unprivileged.
#[test]
fn every_check_holds_for_an_unprivileged_daemon_too() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    // nobody may not write the directory the tests were started in.
    let cwd = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        cwd.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // This module's tests only (the binary holds every integration test):
    // their names start with the module path below the crate's.
    let this_module = format!("{}::", module_path!().split_once("::").unwrap().1);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            &this_module,
            "--test-threads=1",
            "--skip",
            "every_check_holds_for",
        ])
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("setpriv (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok"),
        "as nobody:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran = stdout.matches("... ok").count();
    assert!(ran >= 10, "the checks ran as nobody: {stdout}");
}
