//! Nothing of the host is within a job's reach: files outside the workspace,
//! another worker's files, symlinks out, the upstream credential (on disk and
//! in the CLI's memory), capabilities, the daemon and the network, writes
//! outside.

use super::*;

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
