//! What one job leaves behind: nothing that reaches another key's job, a
//! bounded private `/tmp` and home, no process outliving the job.

use super::*;

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
