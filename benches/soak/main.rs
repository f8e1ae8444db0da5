//! Soak: the daemon with the real CLI (pool 2) against the fake upstream,
//! under concurrent clients mixing normal, streaming, disconnecting and bad
//! requests, bounded in time and count. Loopback only.
//!
//! Run: `scripts/soak.sh` (= `cargo bench --bench soak`, after
//! scripts/install-claude-cli.sh). Settings, from the environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SOAK_SECS` | 60 | how long clients keep sending |
//! | `SOAK_CLIENTS` | 8 | concurrent client threads |
//! | `SOAK_MAX_REQUESTS` | 20000 | requests in all, at most |
//! | `SOAK_POOL` | 2 | `pool.size` |
//! | `SOAK_MAX_QUEUE` | 4 | `pool.max_queue` (small, so some requests get 529) |
//! | `SOAK_SEED` | 1 | seed of the request mix |
//! | `SOAK_FAULT_PERCENT` | 4 | share of answering requests whose upstream call is broken |
//!
//! Upstream faults (issue 23): that share of the Messages, Chat and stream
//! requests gets one fault on its first upstream call (the fake upstream's
//! `[[fault_once]]`): a stream cut after K deltas, an `overloaded_error`
//! event after K deltas, a cut whose repeat has the same message id, a
//! delay before the first byte, or a connection closed before any byte.
//! Every request carries a nonce, so at the end each answer a client got
//! whole is checked against what the upstream finally sent for it
//! (corrupted answers must be 0), no request may have two whole upstream
//! answers (billed twice), and the daemon's `upstream_connection` errors
//! must equal the dropped connections plus the streams that ended in an
//! error after a break.
//!
//! Prints completed / rejected (529, 503) / errored counts, latency
//! percentiles per kind, the largest summed RSS of the worker processes
//! (sampled every second), and the pool's health at the end. Exits non-zero
//! if any request errored, the daemon did not stop cleanly, or a process
//! carrying the daemon's CLAUDE_CONFIG_DIR outlived it.
//!
//! `cargo test --all-targets` runs bench targets without `--bench`; this one
//! then does nothing, so the test suite never soaks.
// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

mod client;
mod mix;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use client::run_one;
use common::{processes_with_env, Daemon, DaemonConfig, FakeUpstream, Rng};
use mix::{Fault, Got, Kind, Outcome, Tally};

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// Summed VmRSS (KiB) and count of the processes carrying `needle`.
fn workers_rss_kib(needle: &str) -> (u64, usize) {
    let pids = processes_with_env(needle);
    let kib = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum();
    (kib, pids.len())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    if !support::measuring() {
        println!("soak: not run outside `cargo bench` (see scripts/soak.sh)");
        return;
    }
    let secs = env_or("SOAK_SECS", 60);
    let clients = env_or("SOAK_CLIENTS", 8);
    let max_requests = env_or("SOAK_MAX_REQUESTS", 20_000);
    let pool = env_or("SOAK_POOL", 2);
    let max_queue = env_or("SOAK_MAX_QUEUE", 4);
    let seed = env_or("SOAK_SEED", 1);
    let fault_percent = env_or("SOAK_FAULT_PERCENT", 4);
    println!(
        "soak: {secs} s, {clients} clients, ≤ {max_requests} requests, pool {pool}, \
         max_queue {max_queue}, seed {seed}, upstream faults {fault_percent}%"
    );

    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(pool as usize).with_toml(&format!("pool.max_queue = {max_queue}")),
        &upstream,
    );
    let needle = daemon.config_dir();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let needle = needle.clone();
        thread::spawn(move || {
            let (mut max_kib, mut max_procs) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let (kib, procs) = workers_rss_kib(&needle);
                max_kib = max_kib.max(kib);
                max_procs = max_procs.max(procs);
                thread::sleep(Duration::from_secs(1));
            }
            (max_kib, max_procs)
        })
    };

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let issued = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let base = daemon.base.clone();
            let issued = issued.clone();
            let tally = tally.clone();
            thread::spawn(move || {
                let mut rng = Rng(seed.wrapping_mul(1_000_003).wrapping_add(i));
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                while Instant::now() < deadline
                    && issued.fetch_add(1, Ordering::Relaxed) < max_requests
                {
                    let kind = Kind::pick(&mut rng);
                    let (outcome, fault, got) =
                        run_one(&http, &base, kind, &mut rng, fault_percent);
                    // A refused client backs off, as SDKs do, rather than
                    // spinning through the request budget on instant 529s.
                    let backoff = matches!(outcome, Outcome::Rejected(_));
                    let mut tally = tally.lock().unwrap();
                    // A request refused before it ran met no fault.
                    if !matches!(outcome, Outcome::Rejected(_)) {
                        if let Some(fault) = fault {
                            *tally.faults.entry(fault).or_default() += 1;
                        }
                    }
                    tally.got.extend(got);
                    tally.add(kind, outcome);
                    drop(tally);
                    if backoff {
                        thread::sleep(Duration::from_millis(50 + rng.below(200)));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let elapsed = started.elapsed();
    let health = daemon.health();
    let metrics = daemon.metrics();
    stop.store(true, Ordering::Relaxed);
    let (max_kib, max_procs) = sampler.join().unwrap();

    let stopped = daemon.stop();
    let leak_deadline = Instant::now() + Duration::from_secs(10);
    let mut leaked = processes_with_env(&needle);
    while !leaked.is_empty() && Instant::now() < leak_deadline {
        thread::sleep(Duration::from_millis(200));
        leaked = processes_with_env(&needle);
    }

    let tally = tally.lock().unwrap();
    let completed: usize = tally.completed.values().map(Vec::len).sum();
    let rejected: u64 = tally.rejected.values().sum();
    println!("\nran {:.1} s", elapsed.as_secs_f64());
    println!(
        "completed {completed}, rejected {rejected} {:?}, errored {}, \
         abandoned on purpose {}, bad bodies refused {}",
        tally.rejected, tally.errored, tally.abandoned, tally.refused
    );
    println!(
        "\n{:<12} {:>6} {:>9} {:>9} {:>9}",
        "kind", "n", "p50 ms", "p95 ms", "max ms"
    );
    let mut all: Vec<Duration> = tally.completed.values().flatten().copied().collect();
    all.sort();
    let mut rows: Vec<(String, Vec<Duration>)> = tally
        .completed
        .iter()
        .map(|(kind, v)| (format!("{kind:?}"), v.clone()))
        .collect();
    rows.push(("all".into(), all));
    for (name, mut v) in rows {
        if v.is_empty() {
            continue;
        }
        v.sort();
        println!(
            "{name:<12} {:>6} {:>9.1} {:>9.1} {:>9.1}",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.95),
            percentile(&v, 1.0)
        );
    }
    println!(
        "\nworkers: max total RSS {:.1} MiB over at most {max_procs} processes",
        max_kib as f64 / 1024.0
    );
    println!(
        "health at the end: restarts {} (recycling after pool.max_jobs_per_worker \
         counts too), jobs {}",
        health["restarts"], health["jobs"]
    );
    for sample in &tally.error_samples {
        println!("error: {sample}");
    }

    // Every answer got whole against what the upstream finally sent.
    let answers = upstream.answers();
    let corrupted: Vec<&Got> = tally
        .got
        .iter()
        .filter(|got| upstream.final_answer(&got.once).map(|a| a.text) != Some(got.text.clone()))
        .collect();
    let mut whole_per_request: BTreeMap<&str, u64> = BTreeMap::new();
    for answer in answers.iter().filter(|a| a.completed) {
        if let Some(nonce) = &answer.nonce {
            *whole_per_request.entry(nonce.as_str()).or_default() += 1;
        }
    }
    let billed_twice = whole_per_request.values().filter(|n| **n > 1).count();
    let broken_calls = answers.iter().filter(|a| !a.completed).count() as u64;
    let connection_errors: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("claude_pool_upstream_errors_total{kind=\"upstream_connection\"} ")
        })
        .map(|v| v.trim().parse().unwrap_or(f64::NAN))
        .unwrap_or(0.0);
    let breaks: u64 = [Fault::Cut, Fault::ErrorEvent, Fault::CutSameId]
        .iter()
        .map(|f| tally.faults.get(f).copied().unwrap_or(0))
        .sum();
    println!(
        "\nupstream faults asked for {:?}; broken upstream calls {broken_calls} (cut or error \
         event: {breaks}); answers checked against the upstream {}, corrupted {}; requests \
         with two whole upstream answers {billed_twice}; streams ended by a break {}, dropped \
         connections answered 502 {}, daemon upstream_connection errors {connection_errors}",
        tally.faults,
        tally.got.len(),
        corrupted.len(),
        tally.interrupted,
        tally.upstream_failed,
    );

    let mut failed = false;
    if tally.errored > 0 {
        println!("FAIL: {} requests errored", tally.errored);
        failed = true;
    }
    for got in corrupted.iter().take(5) {
        println!("FAIL: corrupted answer {}: {:?}", got.once, got.text);
        failed = true;
    }
    if billed_twice > 0 {
        println!("FAIL: {billed_twice} requests got two whole upstream answers");
        failed = true;
    }
    if broken_calls != breaks {
        println!("FAIL: {breaks} breaks asked for, {broken_calls} broken upstream calls");
        failed = true;
    }
    if connection_errors != (tally.interrupted + tally.upstream_failed) as f64 {
        println!(
            "FAIL: upstream_connection errors {connection_errors} are not the {} interrupted \
             streams plus the {} dropped connections",
            tally.interrupted, tally.upstream_failed
        );
        failed = true;
    }
    if let Err(e) = stopped {
        println!("FAIL: the daemon did not stop cleanly: {e}");
        failed = true;
    }
    if !leaked.is_empty() {
        println!("FAIL: processes outlived the daemon: {leaked:?}");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
    println!("\nno errors, no leaked processes");
}
