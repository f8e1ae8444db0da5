//! Several nodes behind a real HAProxy running `deploy/haproxy/haproxy.cfg`
//! (only its addresses and ports replaced): session pins, tool-result
//! continuations routed to the node that parked the turn, a node killed
//! under load, and a rolling restart under load. Each node is the daemon
//! binary with one real CLI worker, all against one fake upstream.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

mod failover;
mod host_check;
mod routing;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn haproxy_bin() -> PathBuf {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| which("haproxy"))
        .expect("no haproxy: run scripts/install-haproxy.sh (scripts/test.sh does)")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.exists())
    })
}

/// One claude-pool daemon process, restartable on the same port and files.
struct Node {
    name: String,
    port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
}

/// The balancer's name in the tests' HAProxy config, which keyless nodes
/// list in `server.allowed_hosts` (the shipped config's `pool.example.com`).
const BALANCER: &str = "pool.test";

impl Node {
    /// A keyless node that serves requests addressed to [`BALANCER`].
    fn new(name: &str, upstream: &FakeUpstream, workers: usize) -> Self {
        let allowed = format!("server.allowed_hosts = [\"{BALANCER}\"]");
        Self::with_toml(name, upstream, workers, &allowed)
    }

    fn with_toml(name: &str, upstream: &FakeUpstream, workers: usize, toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = DaemonConfig::real(workers).with_toml(&format!(
            "server.listen = \"127.0.0.1:{port}\"\nserver.node_id = \"{name}\"\n{toml}"
        ));
        let config = dir.path().join("config.toml");
        std::fs::write(&config, settings_toml(&cfg, upstream, &dir)).unwrap();
        let mut node = Self {
            name: name.into(),
            port,
            dir,
            config,
            child: None,
        };
        node.start();
        node
    }

    fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_claude-pool"))
            .arg("--config")
            .arg(&self.config)
            .env_remove("CLAUDE_POOL_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until the node has a worker up (idle or already busy).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = reqwest::blocking::get(self.url("/health"))
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|h| {
                    // Under load its one worker may already be busy.
                    let serving = h["workers"]["ready"].as_u64().unwrap_or(0)
                        + h["workers"]["busy"].as_u64().unwrap_or(0);
                    h["status"] == "ok" && serving >= 1
                });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never became ready:\n{}",
                self.name,
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: signalling the child this test spawned.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits for the process to exit (it was signalled) and reaps it.
    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not exit:\n{}", self.name, self.log());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The shipped HAProxy config with this cluster's addresses and ports; the
/// test fails if the file no longer has the lines it replaces.
fn haproxy_config(listen: u16, nodes: &[Node]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg");
    let mut text = std::fs::read_to_string(path).unwrap();
    let mut replace = |from: &str, to: &str| {
        assert!(text.contains(from), "haproxy.cfg has no `{from}`");
        text = text.replace(from, to);
    };
    replace("bind 127.0.0.1:8080", &format!("bind 127.0.0.1:{listen}"));
    replace(
        "set-header host pool.example.com",
        &format!("set-header host {BALANCER}"),
    );
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(node.name, format!("n{}", i + 1));
        replace(
            &format!("10.0.0.{}:8787", i + 1),
            &format!("127.0.0.1:{}", node.port),
        );
    }
    // The shipped servers this cluster has no node for.
    text.lines()
        .filter(|l| !l.trim_start().starts_with("server n") || l.contains("127.0.0.1:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

struct Cluster {
    upstream: FakeUpstream,
    nodes: Vec<Node>,
    haproxy: Child,
    haproxy_log: PathBuf,
    base: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start(count: usize) -> Self {
        let upstream = FakeUpstream::start();
        let nodes: Vec<Node> = (1..=count)
            .map(|i| Node::new(&format!("n{i}"), &upstream, 1))
            .collect();
        Self::with_nodes(upstream, nodes)
    }

    fn with_nodes(upstream: FakeUpstream, nodes: Vec<Node>) -> Self {
        for node in &nodes {
            node.wait_ready();
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(port, &nodes)).unwrap();
        let haproxy_log = dir.path().join("haproxy.log");
        let log = File::create(&haproxy_log).unwrap();
        let haproxy = Command::new(haproxy_bin())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let cluster = Self {
            upstream,
            nodes,
            haproxy,
            haproxy_log,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::blocking::get(cluster.url("/health")).is_err() {
            assert!(Instant::now() < deadline, "haproxy never listened");
            thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn haproxy_log(&self) -> String {
        std::fs::read_to_string(&self.haproxy_log).unwrap_or_default()
    }

    /// How often HAProxy has logged `Server nodes/<node> is <state>`.
    fn transitions(&self, node: &str, state: &str) -> usize {
        let needle = format!("Server nodes/{node} is {state}");
        self.haproxy_log().matches(&needle).count()
    }

    /// Waits until HAProxy has logged `node` going `state` more than
    /// `before` times.
    fn wait_transition(&self, node: &str, state: &str, before: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.transitions(node, state) <= before {
            assert!(
                Instant::now() < deadline,
                "haproxy never saw {node} {state}:\n{}",
                self.haproxy_log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.haproxy.kill();
        let _ = self.haproxy.wait();
    }
}

/// A response through the balancer: status, answering node, body.
struct Reply {
    status: u16,
    node: String,
    body: Value,
}

/// The node that answered, from `x-claude-pool-node` (empty when absent).
fn node_of(res: &reqwest::blocking::Response) -> String {
    res.headers()
        .get("x-claude-pool-node")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn post(url: &str, body: &Value, session: Option<&str>) -> Reply {
    let mut req = client().post(url).json(body);
    if let Some(session) = session {
        req = req.header("x-claude-pool-session", session);
    }
    let res = req.send().expect("a response through haproxy");
    let status = res.status().as_u16();
    let node = node_of(&res);
    Reply {
        status,
        node,
        body: res.json().unwrap_or(Value::Null),
    }
}

fn tool_request(text: &str) -> Value {
    json!({
        "model": "claude-haiku-4-5", "max_tokens": 200,
        "tools": [{"name": "get_weather", "description": "Weather of a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": text}]
    })
}

/// The request's history plus the reply and a result for its one tool call;
/// returns it with the call's id.
fn with_result(mut request: Value, reply: &Value, result: &str) -> (Value, String) {
    let call = tool_use(reply).clone();
    let id = call["id"].as_str().unwrap().to_string();
    let messages = request["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": reply["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": id, "content": result}
    ]}));
    (request, id)
}
