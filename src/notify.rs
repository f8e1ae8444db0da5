//! systemd's service notification protocol (`sd_notify(3)`): one datagram
//! of `KEY=VALUE` lines to the unix socket named by `NOTIFY_SOCKET`, which
//! the service manager sets for `Type=notify` units. Outside systemd the
//! variable is unset and every call is a no-op.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Tells the service manager `state`, e.g. `READY=1`, `STOPPING=1` or
/// `WATCHDOG=1`. Does nothing without `NOTIFY_SOCKET`; a failed send is
/// logged, never fatal (the daemon serves either way).
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, state) {
        log::warn!(
            "cannot notify the service manager at {}: {e}",
            socket.to_string_lossy()
        );
    }
}

/// Tells the service manager a reload has begun (`RELOADING=1` with the
/// monotonic timestamp systemd asks for); follow with `READY=1` when done.
pub fn reloading() {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let usec = i128::from(now.tv_sec) * 1_000_000 + i128::from(now.tv_nsec) / 1_000;
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// Sends one datagram to `socket`: a path, or an abstract socket name
/// written with a leading `@`.
fn send(socket: &OsStr, state: &str) -> io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    let bytes = socket.as_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => send_abstract(&datagram, name, state)?,
        None => datagram.send_to(state.as_bytes(), socket)?,
    };
    if sent != state.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_abstract(datagram: &UnixDatagram, name: &[u8], state: &str) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    datagram.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist on Linux only",
    ))
}

/// How often to send `WATCHDOG=1`: half the `WATCHDOG_USEC` the service
/// manager asks for (`WatchdogSec=`), or `None` when no watchdog is armed
/// for this process (unset, zero, unparsable, or `WATCHDOG_PID` names
/// another process).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("claude-pool-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("claude-pool-notify-test-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
            let receiver = UnixDatagram::bind_addr(&addr).unwrap();
            send(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"STOPPING=1");
        }
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let missing = std::env::temp_dir().join("claude-pool-no-such-notify-socket");
        assert!(send(missing.as_os_str(), "READY=1").is_err());
    }
}
