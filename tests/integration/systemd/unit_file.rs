//! The shipped unit file: `systemd-analyze verify` accepts it, and it keeps
//! what the Claude CLI needs to run.

use super::*;

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
