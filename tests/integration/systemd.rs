//! The systemd integration: the daemon binary's sd_notify messages, the unit
//! file as `systemd-analyze` sees it, and a staged run of the install script.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::write_fake_config;
use claude_pool::config::Settings;
use tempfile::TempDir;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

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

/// What a finished command printed, stdout then stderr.
fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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

fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The shipped unit with ExecStart pointing at the freshly built binary
/// (the installed path need not exist on the machine running the tests).
fn unit_for_verify(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo("systemd/claude-pool.service")).unwrap();
    let exec_start = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("the unit has ExecStart=");
    assert_eq!(
        exec_start,
        "ExecStart=/usr/local/bin/claude-pool --config /etc/claude-pool/config.toml"
    );
    let unit = unit.replace(
        exec_start,
        &format!(
            "ExecStart={} --config /etc/claude-pool/config.toml",
            env!("CARGO_BIN_EXE_claude-pool")
        ),
    );
    let path = dir.join("claude-pool.service");
    std::fs::write(&path, unit).unwrap();
    path
}

/// `systemd-analyze`, which `scripts/test.sh` installs.
fn systemd_analyze() -> PathBuf {
    find_on_path("systemd-analyze").unwrap_or_else(|| {
        panic!(
            "systemd-analyze is not installed, so the unit cannot be checked: \
             run scripts/ensure-apt-package.sh systemd-analyze systemd (scripts/test.sh does), or \
             apt-get install -y systemd"
        )
    })
}

/// `systemd-analyze verify` on `unit`: whether it succeeded, its findings
/// and its whole output. `verify` reports unknown keys and bad values
/// without failing, so every line is a finding, except the one saying that
/// the `claude-pool` account does not exist on this machine.
fn verify(analyze: &Path, unit: &Path) -> (bool, Vec<String>, String) {
    let out = Command::new(analyze)
        .arg("verify")
        .arg(unit)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let text = output_text(&out);
    let findings = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !is_missing_account(l))
        .map(str::to_string)
        .collect();
    (out.status.success(), findings, text)
}

/// A finding that only says the service account is unknown here.
fn is_missing_account(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    let names_account = [
        "user claude-pool",
        "group claude-pool",
        "user=claude-pool",
        "group=claude-pool",
    ]
    .iter()
    .any(|n| l.contains(n));
    let says_missing = [
        "not found",
        "no such",
        "failed to resolve",
        "unknown user",
        "unknown group",
    ]
    .iter()
    .any(|m| l.contains(m));
    names_account && says_missing
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    let analyze = systemd_analyze();
    let dir = TempDir::new().unwrap();
    let unit = unit_for_verify(dir.path());
    let (ok, findings, text) = verify(&analyze, &unit);
    assert!(
        ok && findings.is_empty(),
        "systemd-analyze verify: {findings:?}\n{text}"
    );

    // The check can fail: a key systemd does not know (with "User" in its
    // name) is a finding.
    let broken = dir.path().join("broken").join("claude-pool.service");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    let shipped = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(
        &broken,
        shipped.replacen("[Service]\n", "[Service]\nDynamicUsers=yes\n", 1),
    )
    .unwrap();
    let (_, findings, text) = verify(&analyze, &broken);
    assert!(
        findings.iter().any(|f| f.contains("DynamicUsers")),
        "an unknown key went unreported: {findings:?}\n{text}"
    );
    assert!(is_missing_account(
        "Failed to resolve user claude-pool: No such process"
    ));

    // The hardening as systemd scores it (0 = locked down, 10 = exposed);
    // `security --offline` appeared in systemd 250, older ones skip this.
    // 2.6: network namespaces and netlink (0.1 each) are what keeps an agent
    // job's Bash commands off the network and away from this daemon's API.
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--threshold=26", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Overall exposure level") {
        assert!(
            out.status.success(),
            "exposure above 2.6:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!(
            "systemd-analyze security --offline unsupported: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn unit_file_keeps_what_the_cli_needs() {
    let unit = std::fs::read_to_string(repo("systemd/claude-pool.service")).unwrap();
    let settings: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |line: &str| settings.contains(&line);
    assert!(has("Type=notify"));
    assert!(has("StateDirectory=claude-pool"));
    assert!(has("KillMode=control-group"));
    // The CLI's JIT needs writable+executable memory.
    assert!(!settings
        .iter()
        .any(|l| l.starts_with("MemoryDenyWriteExecute=") && !l.ends_with("no")));
    // The stop timeout leaves room for the default shutdown grace.
    let stop: u64 = settings
        .iter()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec=")
        .parse()
        .unwrap();
    assert!(stop > Settings::default().server.shutdown_grace_secs + 5);

    // Limits sized for the default pool, as the unit's comment says.
    let value = |key: &str| {
        settings
            .iter()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} is not set"))
    };
    let memory_mib: u64 = match value("MemoryMax=").strip_suffix('M') {
        Some(mib) => mib.parse().unwrap(),
        None => {
            value("MemoryMax=")
                .strip_suffix('G')
                .unwrap()
                .parse::<u64>()
                .unwrap()
                * 1024
        }
    };
    let pool = Settings::default().pool;
    assert!(
        memory_mib >= pool.size as u64 * pool.max_worker_rss_mb + 512,
        "MemoryMax={memory_mib}M is below pool.size x pool.max_worker_rss_mb + 512 MiB"
    );
    let tasks: u64 = value("TasksMax=").parse().unwrap();
    assert!(tasks >= pool.size as u64 * 64 + 64, "TasksMax={tasks}");
    // Each agent Bash command gets a network namespace, whose loopback
    // bubblewrap brings up over netlink.
    assert!(value("RestrictNamespaces=").split(' ').any(|n| n == "net"));
    assert!(value("RestrictAddressFamilies=").contains("AF_NETLINK"));
}

#[test]
fn install_script_stages_binary_unit_and_config_without_overwriting() {
    let stage = TempDir::new().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("bash")
            .arg(repo("scripts/install.sh"))
            .args(args)
            .env("DESTDIR", stage.path())
            .env("CLAUDE_POOL_BINARY", env!("CARGO_BIN_EXE_claude-pool"))
            .output()
            .unwrap();
        let text = output_text(&out);
        assert!(out.status.success(), "install.sh {args:?}: {text}");
        text
    };
    let staged = |path: &str| stage.path().join(path.trim_start_matches('/'));

    let text = run(&[]);
    // The shipped config runs `claude` from the service's PATH: the script
    // says where it is, or how to install it.
    let service_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    match std::env::split_paths(service_path)
        .map(|dir| dir.join("claude"))
        .find(|p| p.is_file())
    {
        Some(claude) => assert!(
            text.contains(&format!("found: {}", claude.display())),
            "{text}"
        ),
        None => assert!(
            text.contains("NOT FOUND")
                && text.contains("npm install -g @anthropic-ai/claude-code@2.1.197"),
            "{text}"
        ),
    }
    assert!(staged("/usr/local/bin/claude-pool").is_file());
    assert_eq!(
        std::fs::read(staged("/etc/systemd/system/claude-pool.service")).unwrap(),
        std::fs::read(repo("systemd/claude-pool.service")).unwrap()
    );
    let config = staged("/etc/claude-pool/config.toml");
    let settings = Settings::load(Some(&config)).expect("the installed config loads");
    assert_eq!(
        settings.claude.config_dir.as_deref(),
        Some(Path::new("/var/lib/claude-pool/claude"))
    );
    assert_eq!(
        settings.claude.working_dir.as_deref(),
        Some(Path::new("/var/lib/claude-pool/work"))
    );
    let env = staged("/etc/claude-pool/env");
    assert_eq!(mode(&env), 0o600, "a new env file holds credentials");

    // A second install keeps the administrator's config and env file, and
    // makes the env file private again. It finds a configured command.
    let fake = env!("CARGO_BIN_EXE_fake-claude");
    std::fs::write(&config, format!("[claude]\ncommand = {fake:?}\n")).unwrap();
    std::fs::write(&env, "ANTHROPIC_API_KEY=sk-kept\n").unwrap();
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = run(&[]);
    assert!(text.contains(&format!("found: {fake}")), "{text}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        format!("[claude]\ncommand = {fake:?}\n")
    );
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "ANTHROPIC_API_KEY=sk-kept\n"
    );
    assert_eq!(mode(&env), 0o600, "the env file was left readable");

    // Uninstall removes binary and unit, keeps configuration.
    run(&["--uninstall"]);
    assert!(!staged("/usr/local/bin/claude-pool").exists());
    assert!(!staged("/etc/systemd/system/claude-pool.service").exists());
    assert!(config.is_file());
}

/// The configured `claude.command` is run (for its version) as the
/// service's user, never as root: as root without that account, not at all.
#[test]
fn install_script_never_runs_the_configured_cli_as_root() {
    let stage = TempDir::new().unwrap();
    let tools = TempDir::new().unwrap();
    let ran_as = tools.path().join("ran-as");
    let claude = tools.path().join("claude");
    std::fs::write(
        &claude,
        format!("#!/bin/sh\nid -un >> {}\necho 9.9.9\n", ran_as.display()),
    )
    .unwrap();
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = stage.path().join("etc/claude-pool/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, format!("[claude]\ncommand = {claude:?}\n")).unwrap();
    let out = Command::new("bash")
        .arg(repo("scripts/install.sh"))
        .env("DESTDIR", stage.path())
        .env("CLAUDE_POOL_BINARY", env!("CARGO_BIN_EXE_claude-pool"))
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("found: {}", claude.display())),
        "{text}"
    );
    let runners = std::fs::read_to_string(&ran_as).unwrap_or_default();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let has_account = Command::new("getent")
            .args(["passwd", "claude-pool"])
            .output()
            .unwrap()
            .status
            .success();
        if has_account {
            assert_eq!(runners.trim(), "claude-pool", "{text}");
        } else {
            assert!(runners.is_empty(), "run as {runners}: {text}");
            assert!(text.contains("not run: root does not run it"), "{text}");
        }
    } else {
        assert!(text.contains("(9.9.9)"), "{text}");
        assert!(!runners.trim().is_empty() && runners.trim() != "root");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// A copy of what the install script reads, owned by `owner` when the test
/// runs as root, with a `cargo` that records who ran it.
#[test]
fn install_script_builds_as_the_owner_of_the_checkout() {
    let checkout = TempDir::new().unwrap();
    let root = checkout.path();
    for path in [
        "scripts/install.sh",
        "config/claude-pool.toml",
        "systemd/claude-pool.service",
    ] {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        std::fs::copy(repo(path), root.join(path)).unwrap();
    }
    let cargo = root.join("bin/cargo");
    std::fs::create_dir_all(cargo.parent().unwrap()).unwrap();
    std::fs::write(
        &cargo,
        "#!/bin/sh\nid -un > built-by\nmkdir -p target/release\n\
         printf '#!/bin/sh\\n' > target/release/claude-pool\n\
         chmod +x target/release/claude-pool\n",
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    // As root, the checkout belongs to someone else, as under `sudo`.
    let root_user = unsafe { libc::geteuid() } == 0;
    let owner = if root_user {
        let chown = Command::new("chown")
            .args(["-R", "nobody"])
            .arg(root)
            .status()
            .unwrap();
        assert!(chown.success());
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        "nobody".to_string()
    } else {
        me.trim().to_string()
    };
    let stage = TempDir::new().unwrap();
    let out = Command::new("bash")
        .arg(root.join("scripts/install.sh"))
        .env("DESTDIR", stage.path())
        .env("CARGO", &cargo)
        .env_remove("CLAUDE_POOL_BINARY")
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let built_by = std::fs::read_to_string(root.join("built-by")).unwrap();
    assert_eq!(built_by.trim(), owner, "{text}");
    let built = std::fs::metadata(root.join("target/release/claude-pool")).unwrap();
    let owner_uid = std::fs::metadata(root.join("scripts")).unwrap().uid();
    assert_eq!(built.uid(), owner_uid, "target/ must stay the owner's");
    assert!(stage.path().join("usr/local/bin/claude-pool").is_file());
}
