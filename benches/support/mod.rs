//! What the benchmarks share besides the test support (`tests/common`):
//! when to measure, and the summary a table row prints.

#![allow(dead_code)]

pub mod claude_code;

use std::time::Duration;

/// Whether to measure: `cargo test --all-targets` runs bench binaries too,
/// and only `cargo bench` passes `--bench`.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Minimum, median, 95th percentile and maximum of `v`, in milliseconds.
pub fn stats(mut v: Vec<Duration>) -> [f64; 4] {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    [
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[(v.len() * 95).div_ceil(100) - 1]),
        ms(v[v.len() - 1]),
    ]
}

/// CPU seconds (user and system) process `pid` has used so far, all its
/// threads; 0 once it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / ticks
}
