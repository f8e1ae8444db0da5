//! A batch runs as the key that created it: its account, its ledger rows,
//! its usage, and what a revoked key's batch does.

use super::*;

/// A batch runs as the key that created it: only on the account that key
/// may use, each request leaving one ledger row with the key's name and
/// the batch's id, its tokens those the client was told, counted in the
/// key's own `/v1/usage`.
#[test]
fn batch_requests_run_as_their_key_and_leave_its_ledger_rows() {
    let upstream = FakeUpstream::start();
    let mut cfg = DaemonConfig::real(2)
        .with_toml(&format!("server.admin_keys = [\"{BATCH_ADMIN}\"]"))
        .with_account("x", "sk-x", 1)
        .with_account("y", "sk-y", 1);
    cfg.accounts_toml.push_str(&format!(
        "[[keys]]\nname = \"alice\"\nsecret = \"{ALICE}\"\naccounts = [\"x\"]\n"
    ));
    let daemon = Daemon::start(cfg, &upstream);
    daemon.wait_ready(Duration::from_secs(60));
    let n = 3;
    let batch = create_as(&daemon.base, ALICE, &numbered("a", n, "[[words:6]]"));
    let id = batch["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    let ended = loop {
        let (_, now) = keyed_get(&daemon.base, &format!("/v1/messages/batches/{id}"), ALICE);
        if now["processing_status"] == "ended" {
            break now;
        }
        assert!(Instant::now() < deadline, "the batch never ended: {now}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ended["request_counts"]["succeeded"], n, "{ended}");
    let text = client()
        .get(ended["results_url"].as_str().unwrap())
        .header("x-api-key", ALICE)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let told: HashMap<String, (u64, u64)> = text
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            let usage = &line["result"]["message"]["usage"];
            (
                line["custom_id"].as_str().unwrap().to_string(),
                (
                    usage["input_tokens"].as_u64().unwrap(),
                    usage["output_tokens"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(told.len(), n);

    // Every upstream call of the batch went out with account x's key.
    let batch_calls: Vec<_> = upstream
        .message_calls()
        .into_iter()
        .filter(|c| c.all_text().contains("[[words:6]]"))
        .collect();
    assert!(batch_calls.len() >= n, "{} calls", batch_calls.len());
    assert!(
        batch_calls
            .iter()
            .all(|c| c.api_key.as_deref() == Some("sk-x")),
        "alice may use account x only"
    );

    let rows = ledger_rows_of(&daemon.base, &id, n);
    let mut total = (0, 0);
    for row in &rows {
        assert_eq!(row["key"], "alice", "{row}");
        assert_eq!(row["account"], "x", "{row}");
        assert_eq!(row["status"], 200, "{row}");
        assert_eq!(row["route"], "/v1/messages/batches", "{row}");
        assert_eq!(row["model_asked"], "claude-haiku-4-5", "{row}");
        assert!(row["worker"].is_u64() && row["ttft_ms"].is_u64(), "{row}");
        let custom_id = row["request_id"]
            .as_str()
            .unwrap()
            .strip_prefix(&format!("{id}/"))
            .expect("request id: batch id / custom_id");
        let usage = (
            row["usage"]["input_tokens"].as_u64().unwrap(),
            row["usage"]["output_tokens"].as_u64().unwrap(),
        );
        assert_eq!(usage, told[custom_id], "{row}");
        total = (total.0 + usage.0, total.1 + usage.1);
    }
    // Alice reads her batch's usage as her own.
    let (status, mine) = keyed_get(&daemon.base, "/v1/usage", ALICE);
    assert_eq!(status, 200, "{mine}");
    let day = &mine["windows"]["day"];
    // (Her other rows are her GETs, which used no tokens.)
    assert_eq!(
        (day["input_tokens"].as_u64(), day["output_tokens"].as_u64()),
        (Some(total.0), Some(total.1)),
        "{mine}"
    );
    let listed = mine["data"].as_array().unwrap();
    assert_eq!(
        listed
            .iter()
            .filter(|r| r["batch_id"] == id.as_str())
            .count(),
        n,
        "{mine}"
    );
}

/// A key revoked while its batch runs: the request running finishes (and
/// is recorded as the key's), those not started end errored with an
/// authentication_error saying the key was revoked; none of them reaches
/// the upstream.
#[test]
fn a_revoked_keys_batch_stops_after_its_running_request() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(2).with_toml(&format!("server.admin_keys = [\"{BATCH_ADMIN}\"]")),
        &upstream,
    );
    daemon.wait_ready(Duration::from_secs(60));
    let made: Value = client()
        .post(daemon.url("/admin/keys"))
        .header("x-api-key", BATCH_ADMIN)
        .json(&json!({"name": "carol"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let secret = made["secret"].as_str().unwrap().to_string();
    // Each request about a second (20 words, 50 ms apart); one at a time
    // (the batch cap of a pool of 2 is 1).
    let n = 4;
    let batch = create_as(&daemon.base, &secret, &numbered("r", n, "[[slow:50]]"));
    let id = batch["id"].as_str().unwrap().to_string();
    daemon.wait_health(Duration::from_secs(30), |h| h["workers"]["busy"] == 1);
    let revoked = client()
        .delete(daemon.url("/admin/keys/carol"))
        .header("x-api-key", BATCH_ADMIN)
        .send()
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    // The batch is nobody's now; the ledger shows how it went.
    let rows = ledger_rows_of(&daemon.base, &id, 1);
    assert_eq!(rows[0]["key"], "carol", "{rows:#?}");
    assert_eq!(rows[0]["status"], 200, "{rows:#?}");
    // Read from the store (nobody may read the batch over HTTP now).
    let conn = rusqlite::Connection::open(daemon.dir.path().join("batches.sqlite3")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let states = loop {
        let states: Vec<(String, Option<String>)> = conn
            .prepare("SELECT state, result FROM batch_requests ORDER BY idx")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if states.iter().all(|(s, _)| s != "queued" && s != "running") {
            break states;
        }
        assert!(Instant::now() < deadline, "never ended: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let started = upstream
        .message_calls()
        .iter()
        .filter(|c| c.all_text().contains("[[slow:50]]"))
        .count();
    assert_eq!(states[0].0, "succeeded", "{states:?}");
    for (state, result) in &states[1..] {
        assert_eq!(state, "errored", "{states:?}");
        let result: Value = serde_json::from_str(result.as_deref().unwrap()).unwrap();
        assert_eq!(
            result["error"]["error"]["type"], "authentication_error",
            "{result}"
        );
        let message = result["error"]["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("revoked") && message.contains(&id),
            "{message}"
        );
    }
    assert_eq!(started, 1, "the revoked key's queued requests never ran");
}
