//! What the benchmarks share besides the test support (`tests/common`):
//! when to measure, and the summary a table row prints.

#![allow(dead_code)]

use std::time::Duration;

/// Whether to measure: `cargo test --all-targets` runs bench binaries too,
/// and only `cargo bench` passes `--bench`.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Minimum, median, 90th percentile and maximum of `v`, in milliseconds.
pub fn stats(mut v: Vec<Duration>) -> [f64; 4] {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    [
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() * 9 / 10]),
        ms(v[v.len() - 1]),
    ]
}
