//! Fair share end to end, with the real CLI and the test upstream: while one
//! key keeps a pool of 2 busy with 20 concurrent requests, another key's
//! single request takes the next free worker instead of waiting behind the
//! burst.

use std::time::Duration;

use crate::common::*;

const KEY_A: &str = "sk-share-a";
const KEY_B: &str = "sk-share-b";

fn send(base: &str, key: &str, text: &str) -> u16 {
    client()
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", key)
        .json(&message_body(text))
        .timeout(Duration::from_secs(120))
        .send()
        .map_or(0, |r| r.status().as_u16())
}

#[test]
fn a_lone_request_is_not_held_behind_another_keys_burst() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(2).with_toml(&format!(
            "server.api_keys = [\"{KEY_A}\", \"{KEY_B}\"]\npool.max_queue = 32\npool.blank_spares = 0"
        )),
        &upstream,
    );
    let burst: Vec<_> = (0..20)
        .map(|i| {
            let base = daemon.base.clone();
            // 20 words 40 ms apart: each job holds its worker a while.
            std::thread::spawn(move || send(&base, KEY_A, &format!("burst-{i} [[slow:40]]")))
        })
        .collect();
    // Every burst request admitted: 2 running, 18 waiting.
    daemon.wait_health(Duration::from_secs(60), |h| {
        h["queue"]["depth"].as_u64().unwrap_or(0) >= 18
    });
    let lone = send(&daemon.base, KEY_B, "lone-request");
    assert_eq!(lone, 200);
    for request in burst {
        assert_eq!(request.join().unwrap(), 200);
    }
    // The order in which jobs reached the upstream (a job's first call).
    let mut order: Vec<String> = Vec::new();
    for call in upstream.message_calls() {
        let text = call.all_text();
        let tag = if text.contains("lone-request") {
            "lone".to_string()
        } else if let Some(i) = text.find("burst-") {
            text[i..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        } else {
            continue;
        };
        if !order.contains(&tag) {
            order.push(tag);
        }
    }
    assert_eq!(order.len(), 21, "{order:?}");
    let position = order.iter().position(|t| t == "lone").unwrap();
    // Two burst jobs ran when it arrived; it took the next free worker
    // (FIFO would have made it the 21st).
    assert!(
        position <= 3,
        "the lone request ran {}th: {order:?}",
        position + 1
    );
}
