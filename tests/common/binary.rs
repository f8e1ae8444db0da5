//! The `claude-pool` executable as a child process. It listens on
//! `127.0.0.1:0` and the test reads the port it got from its log, so no
//! port is bound, dropped and bound again (another process could take it
//! in between).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon executable; killed when dropped.
pub struct DaemonProcess {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its stderr: the log.
    pub log: PathBuf,
}

impl DaemonProcess {
    /// Runs the executable with the config file `config`, which must listen
    /// on `127.0.0.1:0`, logging to `log`; waits (30 s) until it listens.
    pub fn start(config: &Path, log: PathBuf) -> Self {
        Self::start_command(Self::command(config), log)
    }

    /// The command [`DaemonProcess::start`] runs, for a test to add to
    /// (environment, working directory) before [`DaemonProcess::start_command`].
    pub fn command(config: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_claude-pool"));
        cmd.arg("--config")
            .arg(config)
            .env_remove("CLAUDE_POOL_CONFIG")
            // The listening line is logged at info.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Runs `cmd` (from [`DaemonProcess::command`]) logging to `log`; waits
    /// (30 s) until it listens.
    pub fn start_command(mut cmd: Command, log: PathBuf) -> Self {
        let child = cmd
            .stderr(std::fs::File::create(&log).expect("create the daemon log"))
            .spawn()
            .expect("run claude-pool");
        let mut daemon = Self {
            child,
            base: String::new(),
            log,
        };
        let line = daemon.wait_log("listening on http://", Duration::from_secs(30));
        let url = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        daemon.base = url.to_string();
        daemon
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until a log line contains `needle`; returns that line. Fails
    /// if the daemon exits first.
    pub fn wait_log(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited ({status}) before logging {needle:?}:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never logged:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: signalling the child this test spawned.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// `/health`, once it answers.
    pub fn health(&self) -> Option<serde_json::Value> {
        reqwest::blocking::get(self.url("/health"))
            .ok()?
            .json()
            .ok()
    }

    /// Waits (30 s) until `/health` satisfies `pred`.
    pub fn wait_health(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self.health();
            if let Some(h) = health.as_ref().filter(|h| pred(h)) {
                return h.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never reached; last /health {health:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `dir/config.toml` for the executable: one worker of the fake CLI,
/// listening on `127.0.0.1:0`, its working and config directories in `dir`,
/// nothing else set (the store goes where the defaults put it); returns its
/// path.
pub fn write_fake_config(dir: &Path) -> PathBuf {
    let config = dir.join("config.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[pool]\nsize = 1\n\n[claude]\n\
         command = {:?}\nworking_dir = {:?}\nconfig_dir = {:?}\n",
        super::fake_cli(),
        dir.join("work"),
        dir.join("claude"),
    );
    std::fs::write(&config, text).unwrap();
    config
}
