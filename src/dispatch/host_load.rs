//! The host's CPU for the `"auto"` blank-spare target: its cores and the
//! 1-minute load average, read from `/proc/loadavg` (Linux; elsewhere no
//! reading, and the target is bounded by the pool size only).

use super::spares::HostCpu;

/// How the host's CPU stands now, if it can be read.
pub(super) fn read() -> Option<HostCpu> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let cores = std::thread::available_parallelism().ok()?.get() as f64;
    parse(&text, cores)
}

/// `/proc/loadavg`'s first field on a host of `cores`.
fn parse(loadavg: &str, cores: f64) -> Option<HostCpu> {
    let load = loadavg.split_whitespace().next()?.parse().ok()?;
    Some(HostCpu { cores, load })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_minute_load_is_read() {
        let cpu = parse("1.52 0.98 0.40 3/412 12345\n", 2.0).unwrap();
        assert_eq!(
            cpu,
            HostCpu {
                cores: 2.0,
                load: 1.52
            }
        );
        assert_eq!(parse("", 2.0), None);
    }
}
