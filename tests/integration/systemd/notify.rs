//! The daemon binary's sd_notify messages: READY, WATCHDOG and STOPPING on a
//! path socket, and the abstract-socket form.

use super::*;

/// The daemon binary with `config`, notifying to `socket`, logging to `log`.
fn start_daemon(config: &Path, socket: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_claude-pool"))
        .arg("--config")
        .arg(config)
        // The store's default file goes to the working directory.
        .current_dir(config.parent().expect("the config is in a directory"))
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .env_remove("CLAUDE_POOL_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the daemon binary starts")
}

/// Receives notifications until one equals `wanted` or `limit` passes;
/// returns everything received.
fn receive_until(socket: &UnixDatagram, wanted: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.lines().any(|line| line == wanted);
                received.push(message);
                if done {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    received
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// The `http://host:port` the daemon logged it listens on.
fn listening_url(log: &Path, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let text = read_log(log);
        if let Some(rest) = text.split("listening on ").nth(1) {
            return rest.split_whitespace().next().map(str::to_string);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn daemon_notifies_ready_watchdog_and_stopping_then_exits_0() {
    let dir = TempDir::new().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let config = write_fake_config(dir.path());
    let log = dir.path().join("daemon.log");
    let mut daemon = start_daemon(&config, &socket_path, &log);
    let pid = daemon.id() as libc::pid_t;
    let fail = |daemon: &mut Child, what: String| -> ! {
        let _ = daemon.kill();
        let _ = daemon.wait();
        panic!("{what}\n--- daemon log ---\n{}", read_log(&log));
    };

    let received = receive_until(&socket, "READY=1", Duration::from_secs(30));
    if !received.iter().any(|m| m.lines().any(|l| l == "READY=1")) {
        fail(&mut daemon, format!("no READY=1; received {received:?}"));
    }
    // READY=1 means a worker is ready: /health says so.
    let Some(url) = listening_url(&log, Duration::from_secs(5)) else {
        fail(&mut daemon, "no listening address in the log".into());
    };
    let health: serde_json::Value = reqwest::blocking::get(format!("{url}/health"))
        .and_then(|r| r.json())
        .unwrap_or_else(|e| fail(&mut daemon, format!("GET /health: {e}")));
    if health["workers"]["ready"].as_u64().unwrap_or(0)
        + health["workers"]["busy"].as_u64().unwrap_or(0)
        == 0
    {
        fail(
            &mut daemon,
            format!("READY=1 before a worker was ready: {health}"),
        );
    }
    // The workers do not inherit the daemon's notification socket or
    // watchdog: only the daemon speaks for the service.
    for item in health["workers"]["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let environ = std::fs::read(format!("/proc/{}/environ", item["pid"])).unwrap_or_default();
        for var in ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="] {
            if environ
                .split(|b| *b == 0)
                .any(|kv| kv.starts_with(var.as_bytes()))
            {
                fail(&mut daemon, format!("worker {item} inherited {var}"));
            }
        }
    }
    // WATCHDOG_USEC=200000 asks for a ping at least every 200 ms.
    let received = receive_until(&socket, "WATCHDOG=1", Duration::from_secs(2));
    if !received.iter().any(|m| m == "WATCHDOG=1") {
        fail(&mut daemon, format!("no WATCHDOG=1; received {received:?}"));
    }

    // A reload (SIGHUP) is announced with RELOADING=1 and ends with READY=1.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let received = receive_until(&socket, "READY=1", Duration::from_secs(10));
    let reloading = received
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1") && m.contains("MONOTONIC_USEC="));
    let ready = received
        .iter()
        .rposition(|m| m.lines().any(|l| l == "READY=1"));
    if !matches!((reloading, ready), (Some(r), Some(d)) if r < d) {
        fail(
            &mut daemon,
            format!("no RELOADING=1 then READY=1; received {received:?}"),
        );
    }

    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let received = receive_until(&socket, "STOPPING=1", Duration::from_secs(10));
    if !received.iter().any(|m| m == "STOPPING=1") {
        fail(&mut daemon, format!("no STOPPING=1; received {received:?}"));
    }
    match wait_exit(&mut daemon, Duration::from_secs(20)) {
        Some(status) if status.success() => {}
        Some(status) => fail(&mut daemon, format!("daemon exited with {status}")),
        None => fail(&mut daemon, "daemon did not exit after SIGTERM".into()),
    }
}

/// Without NOTIFY_SOCKET nothing is sent and nothing breaks: covered by
/// every other test that runs the daemon; here the abstract-socket form
/// (`@name`), which the service manager may also use.
#[test]
fn daemon_notifies_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("claude-pool-systemd-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let dir = TempDir::new().unwrap();
    let config = write_fake_config(dir.path());
    let log = dir.path().join("daemon.log");
    let mut daemon = start_daemon(&config, Path::new(&format!("@{name}")), &log);
    let received = receive_until(&socket, "READY=1", Duration::from_secs(30));
    unsafe { libc::kill(daemon.id() as libc::pid_t, libc::SIGTERM) };
    let status = wait_exit(&mut daemon, Duration::from_secs(20));
    if status.is_none() {
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
    assert!(
        received.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1 on @{name}; received {received:?}\n{}",
        read_log(&log)
    );
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
