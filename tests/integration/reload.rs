//! SIGHUP reloads the configuration of the running executable: keys and the
//! pool's size change at once, jobs in flight finish, a broken file is
//! refused, and restart-only changes are named in the log.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// The executable under test, with the helpers of this file.
struct Running(DaemonProcess);

impl std::ops::Deref for Running {
    type Target = DaemonProcess;

    fn deref(&self) -> &DaemonProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut DaemonProcess {
        &mut self.0
    }
}

impl Running {
    fn hup(&self) {
        self.signal(libc::SIGHUP);
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
}

/// Whether a worker has a job (not merely clearing after one).
fn running_a_job(health: &Value) -> bool {
    health["workers"]["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|w| w["state"] == "busy"))
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
    let config = |size: usize, key: &str, extra: &str| {
        let cfg = DaemonConfig::fake(size)
            .with_toml("server.listen = \"127.0.0.1:0\"")
            .with_toml(&format!("server.api_keys = [\"{key}\"]"))
            .with_toml(extra);
        settings_toml(&cfg, &upstream, &dir)
    };
    let path = dir.path().join("config.toml");
    write(&path, &config(1, "k1", ""));
    let mut daemon = Running(DaemonProcess::start(&path, dir.path().join("daemon.log")));
    daemon.wait_health("one ready worker", |h| h["workers"]["ready"] == 1);
    assert_eq!(daemon.status_with_key("k1"), 200);

    // Grow to 2 and change the key while a job runs.
    let job = daemon.slow_job("k1");
    daemon.wait_health("the job running", running_a_job);
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
    daemon.wait_health("the job running", running_a_job);
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
    daemon.wait_log("configuration not reloaded", Duration::from_secs(10));
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
