//! Batch work with one of two accounts limited: a worker of the other stays
//! free, and no worker restarts.

use super::*;

#[test]
fn batch_work_leaves_a_worker_of_the_accounts_that_can_serve_free() {
    let upstream = FakeUpstream::start();
    // Two accounts of two workers (a pool-wide batch cap of 3); `b` is
    // limited for the whole test, so only `a`'s two workers can serve.
    upstream.limit_key("sk-b", 60, Duration::from_secs(600));
    let daemon = Daemon::start(
        // (No affinity: the probes below leave no worker bound.)
        DaemonConfig::real(4)
            .with_toml("claude.max_retries = 2\npool.affinity = false")
            .with_account("a", "sk-a", 2)
            .with_account("b", "sk-b", 2),
        &upstream,
    );
    daemon.wait_ready(Duration::from_secs(60));
    probe_until_b_is_limited(&daemon, None);

    let n = 8;
    let batch = create(&daemon.base, None, &numbered("c", n, "[[slow:30]]"));
    let id = batch["id"].as_str().unwrap().to_string();
    // While it runs, at most one of `a`'s two workers runs a job (a worker
    // clearing after its job is not busy with one).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut most_busy = 0;
    loop {
        let health = daemon.health();
        let busy = health["workers"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["state"] == "busy")
            .count();
        most_busy = most_busy.max(busy);
        let (_, now) = get(&daemon.base, &format!("/v1/messages/batches/{id}"));
        if now["processing_status"] == "ended" {
            assert_eq!(now["request_counts"]["succeeded"], n, "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "the batch never ended: {now}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        most_busy, 1,
        "one of a's workers stays free for interactive work"
    );
}

/// With one of two accounts limited, a keyed batch runs on the other
/// account's worker without churning workers: nothing restarts.
#[test]
fn a_batch_while_one_account_is_limited_restarts_no_worker() {
    let upstream = FakeUpstream::start();
    upstream.limit_key("sk-b", 60, Duration::from_secs(600));
    let mut cfg = DaemonConfig::real(2)
        .with_toml("claude.max_retries = 2")
        .with_account("a", "sk-a", 1)
        .with_account("b", "sk-b", 1);
    cfg.accounts_toml.push_str(&format!(
        "[[keys]]\nname = \"alice\"\nsecret = \"{ALICE}\"\n"
    ));
    let daemon = Daemon::start(cfg, &upstream);
    daemon.wait_ready(Duration::from_secs(60));
    probe_until_b_is_limited(&daemon, Some(ALICE));
    let before = daemon.health()["restarts"].as_u64().unwrap();
    let batch = create_as(&daemon.base, ALICE, &numbered("r", 3, "hello"));
    let id = batch["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, now) = keyed_get(&daemon.base, &format!("/v1/messages/batches/{id}"), ALICE);
        if now["processing_status"] == "ended" {
            assert_eq!(now["request_counts"]["succeeded"], 3, "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "the batch never ended: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let health = daemon.health();
    assert_eq!(health["restarts"].as_u64().unwrap(), before, "{health:#}");
}
