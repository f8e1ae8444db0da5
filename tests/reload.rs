//! SIGHUP reloads the configuration of the running executable: keys and the
//! pool's size change at once, jobs in flight finish, a broken file is
//! refused, and restart-only changes are named in the log.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

struct Running {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Running {
    fn hup(&self) {
        // SAFETY: signalling the child this test spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    fn health(&self) -> Option<Value> {
        reqwest::blocking::get(format!("{}/health", self.base))
            .ok()?
            .json()
            .ok()
    }

    /// Waits until `/health` satisfies `pred`.
    fn wait_health(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
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

    fn status_with_key(&self, key: &str) -> u16 {
        client()
            .post(format!("{}/v1/messages", self.base))
            .header("x-api-key", key)
            .json(&message_body("quick"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// Waits until a request with `key` gets `status`.
    fn wait_key(&self, key: &str, status: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status_with_key(key) != status {
            assert!(
                Instant::now() < deadline,
                "key {key} never got {status}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A slow job (20 words, 100 ms apart) running in the background.
    fn slow_job(&self, key: &str) -> JoinHandle<(u16, Value)> {
        let url = format!("{}/v1/messages", self.base);
        let key = key.to_string();
        std::thread::spawn(move || {
            let res = client()
                .post(url)
                .header("x-api-key", key)
                .json(&message_body("across the reload [[slow:100]]"))
                .send()
                .unwrap();
            (res.status().as_u16(), res.json().unwrap_or(Value::Null))
        })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_completed(job: JoinHandle<(u16, Value)>) {
    let (status, body) = job.join().unwrap();
    assert_eq!(status, 200, "{body}");
    let text = body["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.trim_end().ends_with("word19"),
        "the job must complete: {body}"
    );
}

fn write(path: &Path, text: &str) {
    // Written aside and renamed, as editors and config management do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_applies_keys_and_pool_size_without_dropping_jobs() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = |size: usize, key: &str, extra: &str| {
        let cfg = DaemonConfig::fake(size)
            .with_toml(&format!("server.listen = \"127.0.0.1:{port}\""))
            .with_toml(&format!("server.api_keys = [\"{key}\"]"))
            .with_toml(extra);
        settings_toml(&cfg, &upstream, &dir)
    };
    let path = dir.path().join("config.toml");
    write(&path, &config(1, "k1", ""));
    let log = dir.path().join("daemon.log");
    let child = Command::new(env!("CARGO_BIN_EXE_claude-pool"))
        .arg("--config")
        .arg(&path)
        .env_remove("CLAUDE_POOL_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let daemon = Running {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    daemon.wait_health("one ready worker", |h| h["workers"]["ready"] == 1);
    assert_eq!(daemon.status_with_key("k1"), 200);

    // Grow to 2 and change the key while a job runs.
    let job = daemon.slow_job("k1");
    std::thread::sleep(Duration::from_millis(500));
    write(&path, &config(2, "k2", "claude.default_model = \"haiku\""));
    daemon.hup();
    daemon.wait_health("two workers", |h| {
        h["workers"]["total"] == 2 && h["workers"]["starting"] == 0
    });
    daemon.wait_key("k1", 401);
    assert_eq!(daemon.status_with_key("k2"), 200);
    assert_completed(job);

    // Shrink to 1 while a job runs: the busy worker is kept, the idle one goes.
    let job = daemon.slow_job("k2");
    daemon.wait_health("the job running", |h| h["workers"]["busy"] == 1);
    write(&path, &config(1, "k2", "claude.default_model = \"haiku\""));
    daemon.hup();
    let h = daemon.wait_health("one worker left", |h| h["workers"]["total"] == 1);
    assert_eq!(h["workers"]["busy"], 1, "the busy worker must stay: {h}");
    assert_completed(job);
    daemon.wait_health("the worker idle again", |h| {
        h["workers"]["total"] == 1 && h["workers"]["busy"] == 0
    });

    // A broken file is refused; the running configuration stays.
    write(&path, "[pool]\nsize = 0\n");
    daemon.hup();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.status_with_key("k2"), 200);
    assert_eq!(daemon.health().unwrap()["workers"]["total"], 1);

    let log = daemon.log_text();
    assert!(
        log.contains("claude.default_model changed; it applies only after a restart"),
        "{log}"
    );
    assert!(log.contains("pool.size"), "{log}");
    assert!(log.contains("configuration not reloaded"), "{log}");
    assert!(!log.contains("k2\""), "keys must not be logged: {log}");
}
