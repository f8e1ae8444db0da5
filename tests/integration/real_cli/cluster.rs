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

#[test]
fn sessions_stay_on_one_node_and_tool_results_find_their_parked_turn() {
    let cluster = Cluster::start(3);
    let url = cluster.url("/v1/messages");

    // Ten turns of one pinned conversation: one node answers them all.
    let mut messages = Vec::new();
    let mut nodes = Vec::new();
    for turn in 0..10 {
        messages.push(json!({"role": "user", "content": format!("session turn {turn}")}));
        let body = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "messages": messages});
        let reply = post(&url, &body, Some("chat-42"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        messages.push(json!({"role": "assistant", "content": reply.body["content"]}));
        nodes.push(reply.node);
    }
    assert!(nodes.iter().all(|n| n == &nodes[0]), "{nodes:?}");
    assert!(nodes[0].starts_with('n'), "{nodes:?}");

    // 25 conversations of two tool rounds each: 50 continuations.
    let mut first_nodes = Vec::new();
    let mut continuations = 0;
    for conversation in 0..25 {
        let request = tool_request(&format!("ROUND-{conversation} [[tool:get_weather]]"));
        let first = post(&url, &request, None);
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.body);
        first_nodes.push(first.node.clone());
        let (request, id) = with_result(request, &first.body, "again [[tool:get_weather]]");
        assert!(id.starts_with(&format!("toolu_{}_", first.node)), "{id}");
        let second = post(&url, &request, None);
        assert_eq!(second.status, 200, "{}", second.body);
        assert_eq!(second.body["stop_reason"], "tool_use", "{}", second.body);
        assert_eq!(second.node, first.node, "continuation left its node");
        let (request, _) = with_result(request, &second.body, "sunny");
        let last = post(&url, &request, None);
        assert_eq!(last.status, 200, "{}", last.body);
        assert_eq!(last.node, first.node, "continuation left its node");
        assert_eq!(last.body["content"][0]["text"], "Tool results: sunny");
        continuations += 2;
    }
    assert_eq!(continuations, 50);
    let distinct: std::collections::HashSet<&String> = first_nodes.iter().collect();
    assert!(
        distinct.len() >= 2,
        "new conversations were not balanced: {first_nodes:?}"
    );
    // Every continuation resumed its parked turn: the upstream saw the
    // results as tool_result blocks of the live CLI conversation, never a
    // conversation replayed as history (the fallback).
    let calls: Vec<_> = cluster
        .upstream
        .message_calls()
        .into_iter()
        .filter(|c| c.all_text().contains("ROUND-"))
        .collect();
    assert_eq!(calls.len(), 75, "one upstream call per request");
    let fallbacks = calls
        .iter()
        .filter(|c| c.all_text().contains("<conversation_history"))
        .count();
    assert_eq!(fallbacks, 0, "continuations replayed as history");
    eprintln!(
        "new conversations per node: {:?}",
        ["n1", "n2", "n3"].map(|n| first_nodes.iter().filter(|f| *f == n).count())
    );
}

/// What one request of the steady load saw.
#[derive(Debug)]
struct Outcome {
    started: Instant,
    status: u16,
    node: String,
}

/// `threads` clients sending short requests through the balancer until
/// `stop` (or at most `limit` each).
fn steady_load(
    url: String,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<Vec<Outcome>>> {
    const LIMIT: usize = 600;
    (0..threads)
        .map(|t| {
            let url = url.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let client = client();
                let mut out = Vec::new();
                for i in 0..LIMIT {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let started = Instant::now();
                    let body = message_body(&format!("load {t}-{i} [[slow:10]]"));
                    let (status, node) = match client.post(&url).json(&body).send() {
                        Ok(res) => {
                            let node = node_of(&res);
                            let status = res.status().as_u16();
                            // A body cut short counts as a failure too.
                            match res.json::<Value>() {
                                Ok(body) if body["type"] == "message" || status != 200 => {
                                    (status, node)
                                }
                                _ => (0, node),
                            }
                        }
                        Err(_) => (0, String::new()),
                    };
                    out.push(Outcome {
                        started,
                        status,
                        node,
                    });
                }
                out
            })
        })
        .collect()
}

fn finish(stop: &AtomicBool, load: Vec<thread::JoinHandle<Vec<Outcome>>>) -> Vec<Outcome> {
    stop.store(true, Ordering::Relaxed);
    load.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

/// Waits until `served` has grown by `n`.
fn wait_for_progress(cluster: &Cluster, n: usize, served: impl Fn() -> usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = served();
    while served() < start + n {
        assert!(
            Instant::now() < deadline,
            "the load made no progress:\n{}",
            cluster.haproxy_log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Requests answered by node `name`, counted from its access log lines.
fn served_by(node: &Node) -> usize {
    node.log().matches("POST /v1/messages 200").count()
}

fn per_node(outcomes: &[Outcome]) -> [usize; 3] {
    ["n1", "n2", "n3"].map(|n| outcomes.iter().filter(|o| o.node == n).count())
}

#[test]
fn a_killed_node_is_taken_out_and_its_batches_are_back_with_it() {
    let mut cluster = Cluster::start(3);
    // A batch, kept in the store of the node that took it.
    let batch = post(
        &cluster.url("/v1/messages/batches"),
        &json!({"requests": [
            {"custom_id": "a", "params": {"model": "claude-haiku-4-5", "max_tokens": 50,
                "messages": [{"role": "user", "content": "batch item a"}]}}
        ]}),
        None,
    );
    assert_eq!(batch.status, 200, "{}", batch.body);
    let id = batch.body["id"].as_str().unwrap().to_string();
    let victim = batch.node.clone();
    assert!(id.starts_with(&format!("msgbatch_{victim}_")), "{id}");
    let batch_url = cluster.url(&format!("/v1/messages/batches/{id}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = client().get(&batch_url).send().unwrap();
        assert_eq!(res.headers()["x-claude-pool-node"], victim.as_str());
        if res.json::<Value>().unwrap()["processing_status"] == "ended" {
            break;
        }
        assert!(Instant::now() < deadline, "the batch never ended");
        thread::sleep(Duration::from_millis(200));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(cluster.url("/v1/messages"), 3, stop.clone());
    let index = cluster.nodes.iter().position(|n| n.name == victim).unwrap();
    wait_for_progress(&cluster, 6, || cluster.nodes.iter().map(served_by).sum());
    let downs = cluster.transitions(&victim, "DOWN");
    let killed_at = Instant::now();
    cluster.nodes[index].signal(libc::SIGKILL);
    cluster.nodes[index].wait_exit(Duration::from_secs(10));
    cluster.wait_transition(&victim, "DOWN", downs);
    let noticed = killed_at.elapsed();
    // Ten more requests answered by the survivors.
    let others: Vec<&Node> = cluster.nodes.iter().filter(|n| n.name != victim).collect();
    wait_for_progress(&cluster, 10, || others.iter().map(|n| served_by(n)).sum());
    // While its node is down, the batch is nowhere else.
    let elsewhere = client().get(&batch_url).send().unwrap();
    assert_eq!(elsewhere.status(), 404);

    let ups = cluster.transitions(&victim, "UP");
    cluster.nodes[index].start();
    cluster.nodes[index].wait_ready();
    cluster.wait_transition(&victim, "UP", ups);
    let outcomes = finish(&stop, load);

    // The node's store survived: the batch and its results are back.
    let res = client().get(&batch_url).send().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-claude-pool-node"], victim.as_str());
    let body: Value = res.json().unwrap();
    assert_eq!(body["processing_status"], "ended", "{body}");
    assert_eq!(body["request_counts"]["succeeded"], 1, "{body}");
    // Its results_url names the balancer as the client addressed it.
    let results_url = body["results_url"].as_str().unwrap();
    assert_eq!(
        results_url,
        cluster.url(&format!("/v1/messages/batches/{id}/results"))
    );
    let results = client().get(results_url).send().unwrap();
    assert_eq!(results.status(), 200);
    let text = results.text().unwrap();
    assert!(text.contains("\"custom_id\":\"a\""), "{text}");

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    eprintln!(
        "kill: {} requests, {} failed, DOWN noticed after {noticed:?}, per node {:?}",
        outcomes.len(),
        failed.len(),
        per_node(&outcomes)
    );
    // Only requests already in flight when the node died may fail: one per
    // client thread at most, all started before the kill.
    assert!(failed.len() <= 3, "{failed:?}");
    assert!(
        failed.iter().all(|o| o.started < killed_at),
        "a request sent after the kill failed: {failed:?}"
    );
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.started > killed_at).collect();
    assert!(after.len() >= 10, "{} requests after the kill", after.len());
}

#[test]
fn a_rolling_restart_under_load_fails_no_request() {
    let mut cluster = Cluster::start(3);
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(cluster.url("/v1/messages"), 3, stop.clone());
    wait_for_progress(&cluster, 6, || cluster.nodes.iter().map(served_by).sum());
    let mut drains = Vec::new();
    for index in 0..cluster.nodes.len() {
        let name = cluster.nodes[index].name.clone();
        let downs = cluster.transitions(&name, "DOWN");
        let ups = cluster.transitions(&name, "UP");
        let began = Instant::now();
        cluster.nodes[index].signal(libc::SIGTERM);
        let status = cluster.nodes[index].wait_exit(Duration::from_secs(40));
        assert!(status.success(), "{name} exited with {status:?}");
        drains.push(began.elapsed());
        cluster.wait_transition(&name, "DOWN", downs);
        cluster.nodes[index].start();
        cluster.nodes[index].wait_ready();
        cluster.wait_transition(&name, "UP", ups);
        // The restarted node takes work again before the next one goes.
        let node = &cluster.nodes[index];
        let before = served_by(node);
        let deadline = Instant::now() + Duration::from_secs(60);
        while served_by(node) == before {
            assert!(
                Instant::now() < deadline,
                "{name} got no work after its restart"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
    let outcomes = finish(&stop, load);
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    eprintln!(
        "rolling restart: {} requests, {} failed, drains took {drains:?}, per node {:?}",
        outcomes.len(),
        failed.len(),
        per_node(&outcomes)
    );
    assert!(failed.is_empty(), "{failed:?}\n{}", cluster.haproxy_log());
    assert!(outcomes.len() >= 20, "{} requests", outcomes.len());
}

#[test]
fn a_draining_node_still_takes_the_results_of_its_parked_turns() {
    let upstream = FakeUpstream::start();
    let mut node = Node::new("n1", &upstream, 2);
    node.wait_ready();
    let url = node.url("/v1/messages");
    let request = tool_request("DRAIN-ROUND [[tool:get_weather]]");
    let first = post(&url, &request, None);
    assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.body);
    // A slow job keeps the drain going while the results come.
    let slow = thread::spawn({
        let url = url.clone();
        move || post(&url, &message_body("slow [[slow:100]]"), None).status
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while blocking_get_json(&node.url("/health"))["workers"]["busy"] != 2 {
        assert!(Instant::now() < deadline, "the slow job never started");
        thread::sleep(Duration::from_millis(50));
    }
    node.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while reqwest::blocking::get(node.url("/health"))
        .unwrap()
        .status()
        != 503
    {
        assert!(Instant::now() < deadline, "/health never showed the drain");
        thread::sleep(Duration::from_millis(20));
    }
    let fresh = post(&url, &message_body("new work"), None);
    assert_eq!(fresh.status, 503, "new work goes elsewhere");

    let (request, _) = with_result(request, &first.body, "sunny");
    let last = post(&url, &request, None);
    assert_eq!(last.status, 200, "{}", last.body);
    assert_eq!(last.body["content"][0]["text"], "Tool results: sunny");
    let replayed = upstream
        .message_calls()
        .iter()
        .any(|c| c.all_text().contains("<conversation_history"));
    assert!(!replayed, "the parked turn itself was resumed");
    assert_eq!(slow.join().unwrap(), 200);
    let status = node.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
}

/// What a keyless node behind the shipped config sees of a remote client's
/// `Host`: nothing. Every request reaches it addressed to the balancer's
/// name, so a node that does not list that name refuses them all, however
/// the client names the host (`localhost`, a loopback address, an
/// absolute-form request line, no `Host` at all).
#[test]
fn a_client_of_the_balancer_cannot_pass_for_a_local_caller() {
    use std::io::{Read, Write};
    let upstream = FakeUpstream::start();
    let node = Node::with_toml("n1", &upstream, 1, "");
    node.wait_ready();
    let cluster = Cluster::with_nodes(upstream, vec![node]);
    let body = r#"{"model":"claude-haiku-4-5","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;
    let address = cluster.base.trim_start_matches("http://").to_string();
    let raw = |request_line: &str, host: Option<&str>| -> String {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
        let request = format!(
            "{request_line}\r\n{host}content-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    // Answers from our node through the balancer, by the same way as the
    // cases below, before they are sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !raw("GET /health HTTP/1.1", Some(address.as_str())).contains("x-claude-pool-node: n1") {
        assert!(Instant::now() < deadline, "the balancer never reached n1");
        thread::sleep(Duration::from_millis(200));
    }
    let cases = [
        ("POST /v1/messages HTTP/1.1", Some("localhost")),
        ("POST /v1/messages HTTP/1.1", Some("localhost:8787")),
        ("POST /v1/messages HTTP/1.1", Some("127.0.0.1")),
        ("POST /v1/messages HTTP/1.1", Some("[::1]:8787")),
        ("POST /v1/messages HTTP/1.1", Some(address.as_str())),
        (
            "POST http://localhost/v1/messages HTTP/1.1",
            Some("localhost"),
        ),
        ("POST /v1/messages HTTP/1.0", None),
    ];
    for (line, host) in cases {
        let answer = raw(line, host);
        let status = answer.split_whitespace().nth(1).unwrap_or_default();
        assert_eq!(status, "403", "{line} / Host {host:?}:\n{answer}");
        assert!(
            answer.contains(BALANCER),
            "refused as addressed to the balancer: {answer}"
        );
    }
    assert_eq!(cluster.upstream.message_calls().len(), 0, "no job ran");
}

/// The node tag of an id `<prefix><node>_…`.
fn node_in(id: &str, prefix: &str) -> String {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.split('_').next())
        .unwrap_or_default()
        .to_string()
}

/// One WebSocket turn through the balancer with Codex's `session-id`
/// header; the completed response's id.
fn websocket_turn(cluster: &Cluster, session: &str) -> String {
    let python = python();
    let script = r#"
import json, sys
from websockets.sync.client import connect
with connect(sys.argv[1], additional_headers={"session-id": sys.argv[2]}) as ws:
    ws.send(json.dumps({"type": "response.create", "model": "claude-haiku-4-5", "input": "hi"}))
    while True:
        event = json.loads(ws.recv(timeout=60))
        if event["type"] in ("response.completed", "error"):
            print(json.dumps(event))
            break
"#;
    let url = cluster.base.replace("http://", "ws://") + "/v1/responses";
    let out = Command::new(&python)
        .args(["-c", script, &url, session])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(event["type"], "response.completed", "{event}");
    event["response"]["id"].as_str().unwrap().to_string()
}

#[test]
fn conversations_and_websockets_reach_their_node() {
    let cluster = Cluster::start(2);
    let made = post(&cluster.url("/v1/conversations"), &json!({}), None);
    assert_eq!(made.status, 200, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_string();
    assert_eq!(node_in(&id, "conv_"), made.node, "{id}");
    for turn in 0..4 {
        let res = client()
            .get(cluster.url(&format!("/v1/conversations/{id}")))
            .send()
            .unwrap();
        assert_eq!(
            (res.status().as_u16(), node_of(&res)),
            (200, made.node.clone())
        );
        let body = json!({"model": "claude-haiku-4-5", "input": format!("turn {turn}"),
                          "conversation": {"id": id}});
        let reply = post(&cluster.url("/v1/responses"), &body, None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.node, made.node,
            "a conversation's turn went elsewhere"
        );
    }
    // A session's sockets meet on one node.
    let first = websocket_turn(&cluster, "codex-session-1");
    for _ in 0..3 {
        let again = websocket_turn(&cluster, "codex-session-1");
        assert_eq!(node_in(&again, "resp_"), node_in(&first, "resp_"));
    }
}
