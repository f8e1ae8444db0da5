//! Process-level behaviour asked for by markers and the environment: an
//! orphaned child, a slow exit, memory ballast, numeric settings.

use super::*;

/// Starts `sleep 300` in a session of its own, as the Bash tool does, so that
/// it outlives this process unless the daemon kills descendants.
pub(super) fn spawn_orphan() -> u32 {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new("sleep");
    command.arg("300").stdin(std::process::Stdio::null());
    command.stdout(std::process::Stdio::null());
    command.stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| match libc::setsid() {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        });
    }
    command.spawn().expect("cannot spawn sleep").id()
}

/// Exit 0 at stdin EOF, after `FAKE_CLAUDE_EXIT_MS` with SIGTERM ignored
/// (a CLI slow to exit: only the SIGKILL that follows ends it early).
pub(super) fn exit_slowly() -> ! {
    let ms = env_u64("FAKE_CLAUDE_EXIT_MS");
    if ms > 0 {
        // SAFETY: sets a signal disposition; no handler code runs.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        std::thread::sleep(Duration::from_millis(ms));
    }
    std::process::exit(0)
}

pub(super) fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// N MiB with every page written, so that they count in RSS.
pub(super) fn allocate_mib(n: u64) -> Vec<u8> {
    let mut ballast = vec![0u8; (n as usize) << 20];
    for page in ballast.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(ballast)
}
