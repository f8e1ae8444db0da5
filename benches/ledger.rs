//! The usage ledger's cost and its reports' speed.
//!
//! 1. Ledger on vs off in one run: two daemon executables on the fake CLI
//!    (pool of 2; so the daemon's own work is what differs), requests
//!    alternating between them, one at a time. Prints median and p95
//!    latency and the daemon's CPU per request (from /proc/PID/stat, the
//!    daemon process alone). Targets: latency within 5 %, CPU within 0.2 ms.
//! 2. A month of a busy pool: one million rows generated straight into a
//!    store file (20 keys, 3 models, 2 accounts, over 30 days), then the
//!    month's usage report grouped several ways, as `GET /admin/usage`
//!    computes it. Target: under 50 ms.
//!
//! Run: `cargo bench --bench ledger`.

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use claude_pool::job::Usage;
use claude_pool::ledger::report::{self, GroupBy, UsageQuery};
use claude_pool::ledger::schema::{self, LedgerSchema};
use claude_pool::ledger::Record;
use claude_pool::store::Store;
use common::binary::DaemonProcess;
use common::{client, message_body, settings_toml, DaemonConfig, FakeUpstream};

const REQUESTS: usize = 1000;
const WARMUP: usize = 50;
const ROWS: usize = 1_000_000;
const DAY_MS: i64 = 86_400_000;

fn main() {
    if !support::measuring() {
        return;
    }
    on_vs_off();
    month_report();
}

/// The daemon's CPU time so far (user + system), from /proc.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

fn start(upstream: &FakeUpstream, dir: &Path, ledger: bool) -> DaemonProcess {
    let mut cfg = DaemonConfig::fake(2).with_toml("server.listen = \"127.0.0.1:0\"");
    cfg.accounts_toml
        .push_str(&format!("[ledger]\nenabled = {ledger}\n"));
    let tmp = tempfile::TempDir::new_in(dir).unwrap();
    let config = tmp.path().join("claude-pool.toml");
    std::fs::write(&config, settings_toml(&cfg, upstream, &tmp)).unwrap();
    let daemon = DaemonProcess::start(&config, tmp.path().join("daemon.log"));
    daemon.wait_health("ready workers", |h| h["workers"]["ready"] == 2);
    std::mem::forget(tmp);
    daemon
}

fn on_vs_off() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let daemons = [
        start(&upstream, dir.path(), true),
        start(&upstream, dir.path(), false),
    ];
    let http = client();
    let mut latency: [Vec<Duration>; 2] = Default::default();
    let mut cpu_start = [Duration::ZERO; 2];
    for i in 0..WARMUP + REQUESTS {
        if i == WARMUP {
            for (n, d) in daemons.iter().enumerate() {
                cpu_start[n] = cpu(d.child.id());
            }
        }
        // Alternate which goes first, so neither always meets a warmer cache.
        for n in [i % 2, 1 - i % 2] {
            let started = Instant::now();
            let res = http
                .post(daemons[n].url("/v1/messages"))
                .json(&message_body(&format!("bench {i}")))
                .send()
                .unwrap();
            assert_eq!(res.status(), 200);
            res.bytes().unwrap();
            if i >= WARMUP {
                latency[n].push(started.elapsed());
            }
        }
    }
    let cpu_per_request: Vec<f64> = daemons
        .iter()
        .enumerate()
        .map(|(n, d)| (cpu(d.child.id()) - cpu_start[n]).as_secs_f64() * 1000.0 / REQUESTS as f64)
        .collect();
    let rows = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path().join("batches.sqlite3");
            let conn = rusqlite::Connection::open(path).ok()?;
            conn.query_row("SELECT count(*) FROM ledger_requests", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
        })
        .max()
        .unwrap_or(0);
    let stats: Vec<[f64; 4]> = latency.iter().map(|l| support::stats(l.clone())).collect();
    let p95 = |l: &Vec<Duration>| {
        let mut v = l.clone();
        v.sort();
        v[v.len() * 95 / 100].as_secs_f64() * 1000.0
    };
    println!("\nLedger on vs off: {REQUESTS} requests each, alternating, fake CLI, pool of 2");
    println!("| ledger | median ms | p95 ms | daemon CPU ms/request |");
    println!("|---|---|---|---|");
    for (n, name) in ["on", "off"].iter().enumerate() {
        println!(
            "| {name} | {:.2} | {:.2} | {:.3} |",
            stats[n][1],
            p95(&latency[n]),
            cpu_per_request[n]
        );
    }
    println!(
        "| on − off | {:+.1} % | {:+.1} % | {:+.3} ms |",
        (stats[0][1] / stats[1][1] - 1.0) * 100.0,
        (p95(&latency[0]) / p95(&latency[1]) - 1.0) * 100.0,
        cpu_per_request[0] - cpu_per_request[1]
    );
    println!("(rows written by the ledger-on daemon: {rows})");
}

fn month_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("month.sqlite3");
    let store = Store::open(&path).unwrap();
    store.install::<LedgerSchema>().unwrap();
    let start = 1_800_000_000_000 / DAY_MS * DAY_MS;
    let span = 30 * DAY_MS;
    let generated = Instant::now();
    let mut seed = 42u64;
    let mut chunk = Vec::with_capacity(10_000);
    for i in 0..ROWS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = seed >> 16;
        chunk.push(Record {
            at_ms: start + (i as i64 * span / ROWS as i64),
            request_id: format!("req_{i:08}"),
            key: format!("team-{:02}", r % 20),
            method: "POST".into(),
            route: "/v1/messages".into(),
            dialect: Some("anthropic".into()),
            model_asked: Some(["haiku", "sonnet", "opus"][(r >> 8) as usize % 3].into()),
            model_served: Some(
                ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1"][(r >> 8) as usize % 3]
                    .into(),
            ),
            account: Some(["main", "spare"][(r >> 12) as usize % 2].into()),
            worker: Some(r % 8),
            node: "n1".into(),
            status: if r.is_multiple_of(50) { 429 } else { 200 },
            usage: Usage {
                input_tokens: r % 5000,
                output_tokens: (r >> 20) % 2000,
                cache_read_input_tokens: (r >> 30) % 20_000,
                cache_creation_input_tokens: 0,
            },
            queue_ms: Some(r % 30),
            ttft_ms: Some(300 + r % 900),
            duration_ms: 1000 + r % 9000,
            client_addr: Some("10.0.0.7".into()),
            user_agent: Some("bench/1".into()),
            ..Record::default()
        });
        if chunk.len() == chunk.capacity() {
            store.with(|c| schema::write(c, &chunk)).unwrap();
            chunk.clear();
        }
    }
    store.with(|c| schema::write(c, &chunk)).unwrap();
    let generated = generated.elapsed();
    println!("\n/admin/usage over a month: {ROWS} rows generated in {generated:.1?}");
    println!("| group_by | range | groups | median ms | max ms |");
    println!("|---|---|---|---|---|");
    let ranges = [
        ("whole days", start, start + span),
        ("cut mid-hour", start + 1_234_567, start + span - 7_654_321),
    ];
    for (name, from, to) in ranges {
        for by in ["", "key", "key,model,account", "key,day", "account,hour"] {
            let q = UsageQuery {
                from_ms: from,
                to_ms: to,
                group_by: GroupBy::parse(by).unwrap(),
                key: None,
            };
            let mut times = Vec::new();
            let mut groups = 0;
            for _ in 0..7 {
                let t = Instant::now();
                groups = store.with(|c| report::usage(c, &q)).unwrap().len();
                times.push(t.elapsed());
            }
            let s = support::stats(times);
            let by = if by.is_empty() { "(total)" } else { by };
            println!("| {by} | {name} | {groups} | {:.2} | {:.2} |", s[1], s[3]);
        }
    }
}
