//! Nodes leaving under load: a killed node is taken out and comes back, a
//! rolling restart fails no request, a draining node still finishes its
//! parked turns.

use super::*;

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
