//! The dashboard's server side over real HTTP: the page and its files are
//! served with a strict Content-Security-Policy and no key; the admins'
//! event stream (`/admin/events`) carries a request's audit row as it is
//! recorded (a batch request's too) and a batch's progress, opens only
//! with an admin key or a one-time ticket (a client
//! key is refused; a ticket works once); `/admin/batches` is for admins.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

const ADMIN: &str = "admin-secret-events";
const CLIENT: &str = "client-secret-events";

fn daemon(upstream: &FakeUpstream) -> Daemon {
    let mut cfg = DaemonConfig::fake(1).with_toml(&format!("server.admin_keys = [\"{ADMIN}\"]"));
    cfg.accounts_toml.push_str(&format!(
        "[[keys]]\nname = \"dash-client\"\nsecret = \"{CLIENT}\"\n"
    ));
    cfg.client_key = Some(CLIENT.into());
    Daemon::start(cfg, upstream)
}

fn ticket(daemon: &Daemon, key: &str) -> (u16, Value) {
    let res = client()
        .post(daemon.url("/admin/events/ticket"))
        .header("x-api-key", key)
        .send()
        .unwrap();
    (res.status().as_u16(), res.json().unwrap_or(Value::Null))
}

/// Opens the stream at `url` and forwards each `(event, data)` it reads.
fn listen(url: String) -> mpsc::Receiver<(String, String)> {
    let (tx, rx) = mpsc::channel();
    let res = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
        .get(url)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "the stream did not open");
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    std::thread::spawn(move || {
        let mut event = String::new();
        for line in BufReader::new(res).lines() {
            let Ok(line) = line else { return };
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if tx.send((event.clone(), data.to_string())).is_err() {
                    return;
                }
            } else if line.starts_with("retry: ") || line.starts_with("id: ") {
                let _ = tx.send(("field".into(), line));
            }
        }
    });
    rx
}

fn next_matching(
    rx: &mpsc::Receiver<(String, String)>,
    limit: Duration,
    pred: impl Fn(&str, &str) -> bool,
) -> Option<(String, String)> {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((event, data)) if pred(&event, &data) => return Some((event, data)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn an_admin_sees_a_request_row_on_the_stream_a_ticket_works_once_a_client_key_never() {
    let upstream = FakeUpstream::start();
    let daemon = daemon(&upstream);

    let (status, body) = ticket(&daemon, CLIENT);
    assert_eq!(status, 403, "a client key gets no ticket: {body}");
    let refused = client()
        .get(daemon.url("/admin/events"))
        .header("x-api-key", CLIENT)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 403, "nor the stream");

    let (status, body) = ticket(&daemon, ADMIN);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["expires_in"], 60);
    let ticket = body["ticket"].as_str().unwrap().to_string();
    let url = daemon.url(&format!("/admin/events?ticket={ticket}"));
    let events = listen(url.clone());
    let (_, retry) = next_matching(&events, Duration::from_secs(5), |e, _| e == "field").unwrap();
    assert!(retry.starts_with("retry: "), "{retry}");
    next_matching(&events, Duration::from_secs(5), |e, _| e == "hello").expect("hello");

    let again = client().get(&url).send().unwrap();
    assert_eq!(again.status(), 401, "a ticket opens one stream only");
    let made_up = client()
        .get(daemon.url("/admin/events?ticket=0123456789abcdef"))
        .send()
        .unwrap();
    assert_eq!(made_up.status(), 401);

    let res = daemon.post(&message_body("show me on the dashboard"));
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["request-id"].to_str().unwrap().to_string();
    // Refused attempts above are on the stream too (they are audited).
    let (_, row) = next_matching(&events, Duration::from_secs(5), |e, data| {
        e == "request" && data.contains(&request_id)
    })
    .expect("the request's row on the stream");
    let row: Value = serde_json::from_str(&row).unwrap();
    assert_eq!(row["key"], "dash-client", "{row}");
    assert_eq!(row["request_id"], request_id.as_str(), "{row}");
    assert_eq!(row["status"], 200, "{row}");
    assert!(row["usage"]["output_tokens"].as_u64().unwrap() > 0, "{row}");
    assert!(row["worker"].is_u64(), "{row}");

    // The sampler reports the pool's workers while someone listens.
    let (_, workers) = next_matching(&events, Duration::from_secs(5), |e, _| e == "workers")
        .expect("a workers event");
    let workers: Value = serde_json::from_str(&workers).unwrap();
    assert_eq!(workers["total"], 1, "{workers}");

    // A batch request's row too: rows come from the ledger, whoever records.
    let created = daemon.post_to(
        "/v1/messages/batches",
        &serde_json::json!({"requests": [
            {"custom_id": "one", "params": message_body("a batch request on the stream")}
        ]}),
    );
    assert_eq!(created.status(), 200);
    let batch: Value = created.json().unwrap();
    let batch_id = batch["id"].as_str().unwrap().to_string();
    let (_, row) = next_matching(&events, Duration::from_secs(20), |e, data| {
        e == "request" && data.contains(&batch_id)
    })
    .expect("the batch request's row on the stream");
    let row: Value = serde_json::from_str(&row).unwrap();
    assert_eq!(row["key"], "dash-client", "{row}");
    let (_, progress) = next_matching(&events, Duration::from_secs(10), |e, data| {
        e == "batch" && data.contains(&batch_id) && data.contains("\"succeeded\":1")
    })
    .expect("the batch's progress on the stream");
    assert!(progress.contains("\"key\":\"dash-client\""), "{progress}");

    // Scripts may open the stream with the admin key in a header.
    let by_header = client()
        .get(daemon.url("/admin/events"))
        .header("x-api-key", ADMIN)
        .send()
        .unwrap();
    assert_eq!(by_header.status(), 200);
}

#[test]
fn the_page_is_served_with_a_strict_policy_and_batches_are_for_admins() {
    let upstream = FakeUpstream::start();
    let daemon = daemon(&upstream);
    for path in ["/admin", "/admin/assets/app.js", "/admin/assets/app.css"] {
        let res = client().get(daemon.url(path)).send().unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let csp = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    }
    let list = |key: &str| {
        client()
            .get(daemon.url("/admin/batches"))
            .header("x-api-key", key)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(list(CLIENT), 403);
    assert_eq!(list(ADMIN), 200);
    let cancel = client()
        .post(daemon.url("/admin/batches/msgbatch_none/cancel"))
        .header("x-api-key", ADMIN)
        .send()
        .unwrap();
    assert_eq!(cancel.status(), 404);
}
