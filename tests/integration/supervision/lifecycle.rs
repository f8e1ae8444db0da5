//! Workers and jobs over time: recycling after max jobs, client disconnects,
//! descendants at shutdown, queue timeouts, jobs failed with their worker,
//! keepalives on a silent stream.

use super::*;

#[test]
fn workers_are_recycled_after_max_jobs_without_losing_a_job() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("pool.max_jobs_per_worker = 2"),
        &upstream,
    );
    for i in 0..5 {
        let res = daemon.post(&message_body(&format!("job {i}")));
        assert_eq!(res.status(), 200, "job {i}");
    }
    let h = daemon.wait_health(Duration::from_secs(10), |h| {
        h["restarts"].as_u64() >= Some(2)
    });
    assert_eq!(h["jobs"]["completed"], 5);
    assert_eq!(h["jobs"]["failed"], 0);
}

#[test]
fn a_disconnected_non_stream_request_is_interrupted_too() {
    let upstream = FakeUpstream::start();
    let log = tempfile::NamedTempFile::new().unwrap();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_env("FAKE_CLAUDE_LOG", log.path().to_str().unwrap()),
        &upstream,
    );
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = impatient
        .post(daemon.url("/v1/messages"))
        .json(&message_body("slow one [[slow:300]]"))
        .send();
    assert!(err.is_err(), "the client should have timed out");
    let dropped = Instant::now();
    assert_eq!(daemon.post(&message_body("next")).status(), 200);
    assert!(
        dropped.elapsed() < Duration::from_secs(2),
        "took {:?}",
        dropped.elapsed()
    );
    let interrupted = stdin_log(log.path())
        .iter()
        .any(|l| l["request"]["subtype"] == "interrupt");
    assert!(interrupted, "the worker's turn must be interrupted");
}

#[test]
fn descendants_of_workers_do_not_outlive_the_daemon() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let body: Value = daemon
        .post(&message_body("spawn something [[orphan]]"))
        .json()
        .unwrap();
    let text = body["content"][0]["text"].as_str().unwrap().to_string();
    let pid: i32 = text
        .rsplit("orphan-pid=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect(&text);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let needle = format!("CLAUDE_CONFIG_DIR={}", daemon.config_dir());
    daemon.stop().unwrap();
    assert_no_processes_with_env(&needle, Duration::from_secs(5));
}

#[test]
fn a_job_that_waits_too_long_in_the_queue_is_refused() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("pool.queue_timeout_secs = 1"),
        &upstream,
    );
    let busy = {
        let url = daemon.url("/v1/messages");
        std::thread::spawn(move || {
            client()
                .post(url)
                .json(&message_body("hold on [[slow:150]]"))
                .send()
                .unwrap()
                .status()
        })
    };
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["busy"] == 1);
    let started = Instant::now();
    let res = daemon.post(&message_body("waiting in line"));
    let waited = started.elapsed();
    assert_eq!(res.status().as_u16(), 529);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(busy.join().unwrap(), 200, "the running job is unaffected");
    assert_eq!(daemon.health()["jobs"]["rejected"], 1);
}

/// Waits until `/health`'s job counters add up to `sent` requests; returns
/// them. The `/metrics` counters say the same.
fn wait_jobs_add_up(daemon: &Daemon, sent: u64) -> Value {
    let total = |h: &Value| -> u64 {
        ["completed", "failed", "rejected", "abandoned"]
            .iter()
            .map(|k| h["jobs"][k].as_u64().unwrap_or(0))
            .sum()
    };
    let h = daemon.wait_health(Duration::from_secs(15), |h| total(h) >= sent);
    assert_eq!(total(&h), sent, "{h}");
    let metrics = daemon.metrics();
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("claude_pool_jobs_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, sent, "{metrics}");
    h["jobs"].clone()
}

#[test]
fn jobs_killed_with_their_worker_are_counted_as_failed() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("pool.turn_idle_timeout_secs = 1"),
        &upstream,
    );
    // The CLI crashes mid-turn, streaming and not.
    assert_eq!(daemon.post(&message_body("die [[crash]]")).status(), 500);
    daemon.wait_ready(Duration::from_secs(10));
    let text = daemon.post(&stream_body("die [[crash]]")).text().unwrap();
    assert_eq!(parse_sse(&text).last().unwrap().0, "error", "{text}");
    daemon.wait_ready(Duration::from_secs(10));
    // A hung turn that ignores the interrupt: the worker is retired with
    // the job (the client has its timeout already).
    assert_eq!(daemon.post(&message_body("freeze [[hang]]")).status(), 504);
    daemon.wait_health(Duration::from_secs(15), |h| {
        h["restarts"].as_u64() >= Some(3) && h["workers"]["ready"] == 1
    });
    assert_eq!(daemon.post(&message_body("alive")).status(), 200);
    let jobs = wait_jobs_add_up(&daemon, 4);
    assert_eq!(jobs["failed"], 3, "{jobs}");
    assert_eq!(jobs["completed"], 1, "{jobs}");
}

#[test]
fn a_silent_stream_gets_its_first_keepalive_after_keepalive_secs_not_twice_that() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("server.keepalive_secs = 2"),
        &upstream,
    );
    // The only worker is busy for ~6 s (20 deltas, 300 ms apart).
    let holder = std::thread::spawn({
        let url = daemon.url("/v1/messages");
        move || {
            client()
                .post(url)
                .json(&message_body("hold [[slow:300]]"))
                .send()
        }
    });
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["busy"] == 1);
    // A stream that waits in the queue meanwhile: silent.
    let sent_at = Instant::now();
    let mut res = daemon.post(&stream_body("queued behind it"));
    assert_eq!(res.status(), 200);
    let mut first = [0u8; 256];
    let n = res.read(&mut first).unwrap();
    let first_frame_after = sent_at.elapsed();
    let text = String::from_utf8_lossy(&first[..n]).to_string();
    assert!(text.contains("message_start"), "{text}");
    // Headers and a first frame at keepalive_secs (2 s), where the old code
    // sent the first frame only at twice that.
    assert!(
        first_frame_after < Duration::from_secs(3),
        "first frame after {first_frame_after:?}"
    );
    let mut rest = String::new();
    res.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("message_stop"), "{rest}");
    assert_eq!(holder.join().unwrap().unwrap().status(), 200);
}
