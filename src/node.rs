//! This daemon's node id (`server.node_id`), carried by every id it hands
//! out, so that a load balancer in front of several nodes can send whatever
//! continues a piece of per-node state (a parked tool turn, a batch, a
//! stored response) back to the node that holds it, by plain pattern
//! matching on the id (see `deploy/haproxy/haproxy.cfg`).
//!
//! Ids read `<prefix><node>_<unique>`: `msg_n1_…`, `toolu_n1_…`,
//! `msgbatch_n1_…`, `resp_n1_…`, `chatcmpl-n1_…`. A node id never contains
//! `_`, so the node is whatever sits between the prefix and the next `_`.

use std::sync::OnceLock;

/// Longest node id accepted: it is repeated in every id.
pub const MAX_LEN: usize = 32;

/// The response header naming the node that answered.
pub const HEADER: &str = "x-claude-pool-node";

/// Why a configured node id is refused.
pub const RULE: &str = "1 to 32 characters of a-z, 0-9 and '-', starting with a letter or digit";

/// Whether `id` is a usable node id (see [`RULE`]).
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The node id used when none is configured: the host name's first label,
/// lowercased, with characters outside the charset replaced by `-`.
pub fn from_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        derive(&name)
    })
}

/// A node id derived from a host name (`derive("Web-01.example.com")` is
/// `web-01`); `node` when nothing usable is left.
pub fn derive(host: &str) -> String {
    let label = host.trim().split('.').next().unwrap_or_default();
    let id: String = label
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(MAX_LEN)
        .collect();
    let id = id.trim_start_matches('-');
    if is_valid(id) {
        id.to_string()
    } else {
        "node".to_string()
    }
}

/// The prefix of tool_use ids as the client sees them.
const TOOL_USE: &str = "toolu_";

/// A tool_use id of the CLI (the upstream's, `toolu_01…`) as the client
/// sees it: `toolu_<node>_01…`. Ids of another shape are kept whole after
/// the node (`toolu_<node>_<id>`), which [`cli_tool_use_id`] reverses too.
pub fn client_tool_use_id(node: &str, cli_id: &str) -> String {
    match cli_id.strip_prefix(TOOL_USE) {
        Some(rest) => format!("{TOOL_USE}{node}_{rest}"),
        None => format!("{TOOL_USE}{node}_{OTHER}{cli_id}"),
    }
}

/// Marks a CLI id that did not start with `toolu_` (the upstream's ids are
/// base62 after their prefix, so `x-` never starts a real one).
const OTHER: &str = "x-";

/// The CLI's own id for a tool_use id this node handed out; ids of other
/// nodes (or of nobody) come back unchanged and match no parked turn here.
pub fn cli_tool_use_id(node: &str, client_id: &str) -> String {
    let Some(rest) = client_id
        .strip_prefix(TOOL_USE)
        .and_then(|r| r.strip_prefix(node))
        .and_then(|r| r.strip_prefix('_'))
    else {
        return client_id.to_string();
    };
    match rest.strip_prefix(OTHER) {
        Some(whole) => whole.to_string(),
        None => format!("{TOOL_USE}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_keep_to_a_charset_without_underscores() {
        for good in ["n1", "web-01", "a", &"x".repeat(MAX_LEN)] {
            assert!(is_valid(good), "{good}");
        }
        for bad in [
            "",
            "N1",
            "n_1",
            "-n1",
            "n 1",
            "n1/",
            "nöde",
            &"x".repeat(MAX_LEN + 1),
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn host_names_become_node_ids() {
        assert_eq!(derive("Web-01.example.com\n"), "web-01");
        assert_eq!(derive("db_2"), "db-2");
        assert_eq!(derive("__x"), "x");
        assert_eq!(derive(""), "node");
        assert_eq!(derive("..."), "node");
        assert_eq!(derive(&"h".repeat(80)).len(), MAX_LEN);
        assert!(is_valid(from_host()));
    }

    #[test]
    fn tool_use_ids_round_trip_through_the_client() {
        for cli in ["toolu_01AbC", "toolu_fake_0", "call_9", "x-y"] {
            let client = client_tool_use_id("n1", cli);
            assert!(client.starts_with("toolu_n1_"), "{client}");
            assert_eq!(cli_tool_use_id("n1", &client), cli);
        }
        assert_eq!(client_tool_use_id("n1", "toolu_01AbC"), "toolu_n1_01AbC");
        // Another node's id, or one no node made, is left alone.
        assert_eq!(cli_tool_use_id("n1", "toolu_n2_01AbC"), "toolu_n2_01AbC");
        assert_eq!(cli_tool_use_id("n1", "toolu_n10_01"), "toolu_n10_01");
        assert_eq!(cli_tool_use_id("n1", "toolu_01AbC"), "toolu_01AbC");
    }
}
