//! Process checks: the live processes a daemon's workers left, found by
//! their environment or their command line.

use super::*;

/// Pids of live processes whose environment contains `needle` (e.g. a
/// daemon's unique CLAUDE_CONFIG_DIR), other than this test process.
pub fn processes_with_env(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let is_zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
        if !is_zombie
            && environ
                .split(|b| *b == 0)
                .any(|kv| kv.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            pids.push(pid);
        }
    }
    pids
}

/// Of [`processes_with_env`], those whose parent does not carry `needle`:
/// the workers themselves, not the short-lived children a CLI forks (which
/// inherit its environment and, on a loaded machine, may be seen alive).
pub fn root_processes_with_env(needle: &str) -> Vec<u32> {
    let pids = processes_with_env(needle);
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    pids.iter()
        .copied()
        .filter(|&pid| parent(pid).is_none_or(|ppid| !pids.contains(&ppid)))
        .collect()
}

/// Waits until no process carries `needle` in its environment.
pub fn assert_no_processes_with_env(needle: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let pids = processes_with_env(needle);
        if pids.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {pids:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pids of live processes whose command line (arguments joined by spaces)
/// contains `needle`: found even when they cleared their environment.
pub fn processes_with_cmdline(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}
