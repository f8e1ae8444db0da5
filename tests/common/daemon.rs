//! The daemon running in-process on a port-0 listener: start, reload, health
//! and readiness, stop, and requests to its routes.

use super::*;

/// A daemon running `claude_pool::run` on its own actix system thread.
pub struct Daemon {
    pub base: String,
    pub dir: TempDir,
    /// The client key it requires, if any ([`DaemonConfig::with_client_key`]).
    pub client_key: Option<String>,
    /// Hands reloaded settings to the running daemon, as SIGHUP does.
    reload: tokio::sync::watch::Sender<std::sync::Arc<Settings>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Daemon {
    /// Starts a daemon against `upstream` and waits until all its workers
    /// are ready.
    pub fn start(cfg: DaemonConfig, upstream: &FakeUpstream) -> Self {
        let daemon = Self::start_unready(cfg, upstream);
        daemon.wait_ready(Duration::from_secs(30));
        daemon
    }

    /// Starts a daemon without waiting for its workers.
    pub fn start_unready(cfg: DaemonConfig, upstream: &FakeUpstream) -> Self {
        // The daemon's log, shown for a failing test when RUST_LOG is set
        // (`RUST_LOG=claude_pool=debug cargo test … -- --nocapture`).
        let _ = env_logger::builder().is_test(true).try_init();
        let dir = tempfile::tempdir().unwrap();
        let toml = settings_toml(&cfg, upstream, &dir);
        let settings = Settings::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (reload, reloads) = tokio::sync::watch::channel(std::sync::Arc::new(settings.clone()));
        let thread = std::thread::spawn(move || {
            actix_rt::System::new()
                .block_on(claude_pool::run_with_reload(
                    settings,
                    listener,
                    async move {
                        let _ = rx.await;
                    },
                    reloads,
                ))
                .map_err(|e| e.to_string())
        });
        Self {
            base,
            dir,
            client_key: cfg.client_key.clone(),
            reload,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Reloads the daemon with `cfg` (same directories), as SIGHUP does.
    pub fn reload(&self, cfg: &DaemonConfig, upstream: &FakeUpstream) {
        let toml = settings_toml(cfg, upstream, &self.dir);
        let mut settings = Settings::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        settings.read_account_env_files().unwrap();
        self.reload.send(std::sync::Arc::new(settings)).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The CLAUDE_CONFIG_DIR its workers run with, unique to this daemon.
    pub fn config_dir(&self) -> String {
        self.dir.path().join("claude-config").display().to_string()
    }

    pub fn health(&self) -> Value {
        blocking_get_json(&self.url("/health"))
    }

    /// Asserts that no request became a job: every job counter of
    /// `/health` is still 0.
    pub fn assert_no_jobs(&self, context: &str) {
        let health = self.health();
        let jobs = health["jobs"].as_object().expect("jobs in /health");
        assert!(jobs.values().all(|n| n == 0), "{context}: {health}");
    }

    /// The `/metrics` text (a loopback peer needs no key).
    pub fn metrics(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .expect("GET /metrics")
            .text()
            .expect("metrics text")
    }

    pub fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let h = self.health();
            // A worker bound to a finished conversation is free as well.
            let ready = h["workers"]["ready"].as_u64().unwrap_or(0)
                + h["workers"]["bound"].as_u64().unwrap_or(0);
            let size = h["workers"]["total"].as_u64().unwrap_or(u64::MAX);
            if ready > 0 && ready == size && h["workers"]["busy"] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "workers not ready: {h}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `/health` satisfies `pred`.
    pub fn wait_health(&self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let h = self.health();
            if pred(&h) {
                return h;
            }
            assert!(Instant::now() < deadline, "health never matched: {h}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Triggers shutdown (as SIGTERM does) without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Triggers shutdown and waits for `run` to return.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("daemon thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

impl Daemon {
    /// POSTs a JSON body to one of the daemon's routes, with its client key
    /// if it requires one.
    pub fn post_to(&self, path: &str, body: &Value) -> reqwest::blocking::Response {
        let mut req = client().post(self.url(path)).json(body);
        if let Some(key) = &self.client_key {
            req = req.header("x-api-key", key);
        }
        req.send().expect("request")
    }

    /// POSTs a Messages API body to `/v1/messages`.
    pub fn post(&self, body: &Value) -> reqwest::blocking::Response {
        self.post_to("/v1/messages", body)
    }
}
