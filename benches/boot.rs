//! What a worker's boot costs: CPU seconds (user + system, the CLI's own
//! threads and every process it starts) and wall time, for the command line
//! and environment workers get today and for candidate switches on top of
//! it (CANDIDATES: what the daemon could set), measured in one run, boots
//! interleaved so that all see the same host load.
//!
//! A boot as the pool sees it: spawn, the readiness probe answered (the
//! worker is ready), then its first job's `initialize` and one turn against
//! the fake upstream. Then WARM_TURNS more turns, whose CPU per turn is the
//! cost a worker pays for every request. The process is then killed and
//! reaped; its rusage includes everything it started (git, ps, the bundled
//! ripgrep).
//!
//! Target (issue 27): a boot at half the CPU of today's; a switch must not
//! add CPU per turn. The findings are in docs/cli-protocol.md.
//! `BOOT_BENCH_ENV="K=V,K=V"` adds one more candidate.
//! Run: `cargo bench --bench boot`.

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use claude_pool::config::Settings;
use claude_pool::worker::spawn::{spawn_spec, ENFORCED_ENV};
use common::{real_cli, FakeUpstream};
use serde_json::json;

const BOOTS: usize = 8;
const WARM_TURNS: usize = 10;

/// Environment variables and their values.
type Switches = &'static [(&'static str, &'static str)];

/// The CLI's own switches for start-up work a pool worker never uses
/// (skills, agents, plugins, memory, workflows, cron, feature flags,
/// installation checks, checkpoints), all of them at once.
const START_UP_SET: Switches = &[
    ("DISABLE_GROWTHBOOK", "1"),
    ("DISABLE_INSTALLATION_CHECKS", "1"),
    ("DISABLE_BUILTIN_AGENTS", "1"),
    ("DISABLE_PLUGIN_AUTOLOAD", "1"),
    ("CLAUDE_CODE_SKIP_PLUGIN_MCP_SERVERS", "1"),
    ("CLAUDE_CODE_DISABLE_BUNDLED_SKILLS", "1"),
    ("CLAUDE_CODE_DISABLE_POLICY_SKILLS", "1"),
    ("CLAUDE_CODE_DISABLE_CLAUDE_API_SKILL", "1"),
    ("CLAUDE_CODE_DISABLE_WORKFLOWS", "1"),
    ("CLAUDE_CODE_DISABLE_CRON", "1"),
    ("CLAUDE_CODE_DISABLE_BACKGROUND_TASKS", "1"),
    ("CLAUDE_CODE_DISABLE_AUTO_MEMORY", "1"),
    ("CLAUDE_CODE_DISABLE_CLAUDE_MDS", "1"),
    ("CLAUDE_CODE_DISABLE_FILE_CHECKPOINTING", "1"),
    ("CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL", "1"),
    ("CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL", "1"),
];

/// The runtime's: the CLI is a Bun binary (JavaScriptCore options, its
/// mimalloc's options): no optimising DFG tier, one GC marker thread, large
/// OS pages for the allocator (transparent huge pages are `madvise` here).
const RUNTIME_SET: Switches = &[
    ("BUN_JSC_useDFGJIT", "0"),
    ("BUN_JSC_numberOfGCMarkers", "1"),
    ("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1"),
];

/// Its only use in the CLI guards the background start-up prefetches.
const NO_PREFETCH: Switches = &[("CLAUDE_CODE_EXIT_AFTER_FIRST_RENDER", "1")];

/// What `--bare` sets; refuses OAuth logins, so never for every account.
const BARE: Switches = &[("CLAUDE_CODE_SIMPLE", "1")];

/// Switches tried on top of today's environment (CLI 2.1.197), combined:
/// one at a time none saved more than the noise (docs/cli-protocol.md §14).
const CANDIDATES: &[(&str, &[Switches])] = &[
    ("start-up switches", &[START_UP_SET]),
    ("runtime switches", &[RUNTIME_SET]),
    ("all but bare", &[START_UP_SET, RUNTIME_SET, NO_PREFETCH]),
    (
        "all and bare",
        &[START_UP_SET, RUNTIME_SET, NO_PREFETCH, BARE],
    ),
];

/// One variant's command line and environment.
struct Variant {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// What one boot cost.
#[derive(Default, Clone, Copy)]
struct Boot {
    ready: Duration,
    first_turn: Duration,
    cpu_ready: f64,
    cpu_first_turn: f64,
    cpu_per_turn: f64,
    cpu_total: f64,
}

/// Kills `child` and reaps it; the CPU seconds it and its reaped
/// descendants used.
fn kill_and_reap(mut child: Child) -> f64 {
    let _ = child.kill();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 writes into our locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

struct Cli {
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Cli {
    fn send(&mut self, line: serde_json::Value) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn wait_for(&mut self, needle: &str) {
        loop {
            let line = self.lines.next().expect("cli output").unwrap();
            if line.contains(needle) {
                return;
            }
        }
    }

    fn turn(&mut self, text: &str) {
        self.send(
            json!({"type": "user", "message": {"role": "user", "content": text},
                         "parent_tool_use_id": null, "session_id": ""}),
        );
        self.wait_for("\"type\":\"result\"");
    }
}

fn boot(variant: &Variant, upstream: &FakeUpstream, config: &Path, cwd: &Path) -> Boot {
    let started = Instant::now();
    let mut child = Command::new(real_cli())
        .args(&variant.args)
        .envs(variant.env.iter().map(|(k, v)| (k, v)))
        .env("ANTHROPIC_BASE_URL", &upstream.url)
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("CLAUDE_CONFIG_DIR", config)
        .envs(ENFORCED_ENV.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn claude");
    let pid = child.id();
    let mut cli = Cli {
        stdin: child.stdin.take().unwrap(),
        lines: BufReader::new(child.stdout.take().unwrap()).lines(),
    };
    // The daemon's readiness probe.
    cli.send(json!({"type": "control_request", "request_id": "probe",
        "request": {"subtype": "apply_flag_settings",
                    "settings": {"env": {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": ""}}}}));
    cli.wait_for("\"control_response\"");
    let mut out = Boot {
        ready: started.elapsed(),
        cpu_ready: support::cpu_seconds(pid),
        ..Boot::default()
    };
    let first = Instant::now();
    cli.send(json!({"type": "control_request", "request_id": "init",
        "request": {"subtype": "initialize", "systemPrompt": ["You are terse."]}}));
    cli.wait_for("\"control_response\"");
    cli.turn("hello");
    out.first_turn = first.elapsed();
    out.cpu_first_turn = support::cpu_seconds(pid);
    for i in 0..WARM_TURNS {
        cli.turn(&format!("hello {i}"));
    }
    out.cpu_per_turn = (support::cpu_seconds(pid) - out.cpu_first_turn) / WARM_TURNS as f64;
    // Let what the CLI started in the background finish, as on a worker
    // waiting for its next job.
    std::thread::sleep(Duration::from_millis(300));
    drop(cli);
    out.cpu_total = kill_and_reap(child);
    out
}

/// Today's worker command line and environment, then each candidate.
fn variants() -> Vec<Variant> {
    let settings = Settings::from_toml("").unwrap();
    let spec = spawn_spec(&settings, Path::new("/"));
    let with = |name: &str, extra: Vec<(String, String)>| {
        let mut env = spec.env.clone();
        env.extend(extra);
        Variant {
            name: name.to_string(),
            args: spec.args.clone(),
            env,
        }
    };
    let mut out = vec![with("today's workers", Vec::new())];
    for (name, sets) in CANDIDATES {
        let env = sets.iter().flat_map(|set| set.iter());
        let env = env.map(|(k, v)| (k.to_string(), v.to_string()));
        out.push(with(name, env.collect()));
    }
    if let Ok(extra) = std::env::var("BOOT_BENCH_ENV") {
        let env = extra.split(',').filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        });
        out.push(with(&extra, env.collect()));
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !support::measuring() {
        return;
    }
    let upstream = FakeUpstream::start();
    let config = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let variants = variants();
    let mut boots: Vec<Vec<Boot>> = vec![Vec::new(); variants.len()];
    // One unmeasured boot: the first of a run pays for a cold page cache.
    boot(&variants[0], &upstream, config.path(), cwd.path());
    for _ in 0..BOOTS {
        for (variant, out) in variants.iter().zip(&mut boots) {
            out.push(boot(variant, &upstream, config.path(), cwd.path()));
        }
    }
    println!(
        "\n{:<26} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "variant (medians)",
        "n",
        "ready ms",
        "cpu@rdy",
        "1st turn",
        "cpu@1st",
        "cpu/turn",
        "cpu all",
        "/today"
    );
    let mut totals = Vec::new();
    let mut per_turn = Vec::new();
    for (variant, runs) in variants.iter().zip(&boots) {
        let m = |f: fn(&Boot) -> f64| median(runs.iter().map(f).collect());
        let total = m(|b| b.cpu_total - b.cpu_per_turn * WARM_TURNS as f64);
        let today = totals.first().copied().unwrap_or(total);
        println!(
            "{:<26} {:>4} {:>9.0} {:>9.3} {:>9.0} {:>9.3} {:>9.4} {:>9.3} {:>7.2}",
            variant.name,
            runs.len(),
            m(|b| b.ready.as_secs_f64() * 1000.0),
            m(|b| b.cpu_ready),
            m(|b| b.first_turn.as_secs_f64() * 1000.0),
            m(|b| b.cpu_first_turn),
            m(|b| b.cpu_per_turn),
            total,
            total / today,
        );
        totals.push(total);
        per_turn.push(m(|b| b.cpu_per_turn));
    }
    println!(
        "(cpu all: the boot and first turn with everything the CLI started, warm turns excluded)\n"
    );
    // The cheapest candidate that does not cost more per turn.
    let best = (1..variants.len())
        .filter(|&i| per_turn[i] <= per_turn[0] * 1.05)
        .min_by(|&a, &b| totals[a].total_cmp(&totals[b]));
    let targets = [match best {
        Some(i) => (
            format!(
                "best boot CPU / today's = {:.2} ({}; target ≤ 0.50)",
                totals[i] / totals[0],
                variants[i].name
            ),
            totals[i] <= totals[0] * 0.5,
        ),
        None => ("no candidate without more CPU per turn".to_string(), false),
    }];
    for (line, met) in &targets {
        println!("{line}: {}", if *met { "met" } else { "MISSED" });
    }
    if targets.iter().any(|(_, met)| !met) {
        std::process::exit(1);
    }
}
