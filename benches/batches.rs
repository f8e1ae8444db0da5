//! Batch overhead: 1000 short requests on a pool of 4 against the fake
//! upstream (which answers at once), submitted
//!
//! - interactively, 4 clients at a time (`POST /v1/messages`),
//! - as one message batch with `batches.max_workers = 4` (the same workers),
//! - as one message batch with the default cap (all but one: 3 workers),
//!
//! and prints wall time and jobs/s. A batch's time runs from its create
//! request to `processing_status: ended` (polled every 50 ms).
//! Target: the batch on 4 workers reaches 0.8 × the interactive jobs/s.
//! Run: `cargo bench --bench batches` (after scripts/install-claude-cli.sh).

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::{client, message_body, Daemon, DaemonConfig, FakeUpstream};
use serde_json::{json, Value};

const REQUESTS: usize = 1000;
const POOL: usize = 4;
const CLIENTS: usize = 4;
const TARGET: f64 = 0.8;

fn interactive(upstream: &FakeUpstream) -> Duration {
    let daemon = Daemon::start(DaemonConfig::real(POOL), upstream);
    let url = daemon.url("/v1/messages");
    let started = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let url = url.clone();
            scope.spawn(move || {
                let http = client();
                for i in (c..REQUESTS).step_by(CLIENTS) {
                    let res = http
                        .post(&url)
                        .json(&message_body(&format!("bench {i}")))
                        .send()
                        .expect("request");
                    assert_eq!(res.status(), 200, "{}", res.text().unwrap_or_default());
                }
            });
        }
    });
    started.elapsed()
}

fn batch(upstream: &FakeUpstream, max_workers: usize) -> Duration {
    let cfg = DaemonConfig::real(POOL).with_toml(&format!("batches.max_workers = {max_workers}"));
    let daemon = Daemon::start(cfg, upstream);
    let requests: Vec<Value> = (0..REQUESTS)
        .map(|i| json!({"custom_id": format!("r{i}"), "params": message_body(&format!("bench {i}"))}))
        .collect();
    let http = client();
    let started = Instant::now();
    let res = http
        .post(daemon.url("/v1/messages/batches"))
        .json(&json!({ "requests": requests }))
        .send()
        .expect("create");
    assert_eq!(res.status(), 200);
    let id = res.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = daemon.url(&format!("/v1/messages/batches/{id}"));
    loop {
        let batch: Value = http.get(&url).send().unwrap().json().unwrap();
        if batch["processing_status"] == "ended" {
            let elapsed = started.elapsed();
            assert_eq!(batch["request_counts"]["succeeded"], REQUESTS, "{batch}");
            return elapsed;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "{batch}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn main() {
    if !support::measuring() {
        return;
    }
    let upstream = FakeUpstream::start();
    let rows = [
        (
            format!("interactive, {CLIENTS} clients"),
            interactive(&upstream),
        ),
        (format!("batch, max_workers {POOL}"), batch(&upstream, POOL)),
        (
            format!("batch, max_workers {} (default)", POOL - 1),
            batch(&upstream, 0),
        ),
    ];
    println!("\n{REQUESTS} short requests, pool of {POOL}");
    println!("{:<32} {:>8} {:>8}", "how", "wall s", "jobs/s");
    let rate = |d: &Duration| REQUESTS as f64 / d.as_secs_f64();
    for (name, wall) in &rows {
        println!("{name:<32} {:>8.1} {:>8.1}", wall.as_secs_f64(), rate(wall));
    }
    let ratio = rate(&rows[1].1) / rate(&rows[0].1);
    println!("batch on {POOL} workers / interactive: {ratio:.2} (target ≥ {TARGET})");
    if ratio < TARGET {
        eprintln!("missed the target");
        std::process::exit(1);
    }
}
