//! Checks of a loaded [`Settings`] beyond what its types say, each naming the
//! key at fault.

use super::{ConfigError, Settings};

impl Settings {
    /// Checks what serde cannot: ranges, formats and combinations of keys.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.listen_addr().is_err() {
            return invalid("server.listen", "expected an address like 127.0.0.1:8787");
        }
        if self.pool.size == 0 {
            return invalid("pool.size", "must be at least 1");
        }
        if self.server.max_body_bytes == 0 {
            return invalid("server.max_body_bytes", "must be positive");
        }
        if self.server.keepalive_secs == 0 {
            return invalid("server.keepalive_secs", "must be positive");
        }
        if self.server.request_timeout_secs == 0 {
            return invalid("server.request_timeout_secs", "must be positive");
        }
        if self.pool.boot_timeout_secs == 0 {
            return invalid("pool.boot_timeout_secs", "must be positive");
        }
        const MODES: [&str; 4] = ["default", "acceptEdits", "dontAsk", "bypassPermissions"];
        if !MODES.contains(&self.agent.permission_mode.as_str()) {
            return invalid(
                "agent.permission_mode",
                "expected default, acceptEdits, dontAsk or bypassPermissions",
            );
        }
        if self.agent.enabled && self.agent.tools.is_empty() {
            return invalid("agent.tools", "agent mode needs at least one tool");
        }
        if self.pool.crash_loop_failures == 0 {
            return invalid("pool.crash_loop_failures", "must be at least 1");
        }
        if self.pool.turn_idle_timeout_secs == 0 {
            return invalid("pool.turn_idle_timeout_secs", "must be positive");
        }
        if self.claude.command.trim().is_empty() {
            return invalid("claude.command", "must name the claude executable");
        }
        if self.claude.default_model.trim().is_empty() {
            return invalid("claude.default_model", "must name a model");
        }
        if self.server.api_keys.iter().any(|k| k.trim().is_empty()) {
            return invalid("server.api_keys", "keys must not be empty strings");
        }
        if self.server.log_filter().is_none() {
            return invalid(
                "server.log_level",
                "expected off, error, warn, info, debug or trace",
            );
        }
        if let Some(url) = &self.server.public_url {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.contains(['?', '#', ' ']) {
                return invalid(
                    "server.public_url",
                    "expected an http(s) URL like https://pool.example.com",
                );
            }
        }
        if self
            .server
            .node_id
            .as_deref()
            .is_some_and(|id| !crate::node::is_valid(id))
        {
            return invalid("server.node_id", crate::node::RULE);
        }
        if self.batches.max_requests == 0 {
            return invalid("batches.max_requests", "must be at least 1");
        }
        if self.batches.expiry_secs == 0 {
            return invalid("batches.expiry_secs", "must be positive");
        }
        if let Some(host) = self.server.allowed_hosts.iter().find(|h| !is_host_name(h)) {
            return Err(ConfigError::Invalid {
                key: "server.allowed_hosts",
                message: format!(
                    "`{host}` is not a host name like pool.example.com, an address, nor \"*\""
                ),
            });
        }
        if let Some(origin) = self
            .server
            .cors_allowed_origins
            .iter()
            .find(|o| !is_cors_origin(o))
        {
            return Err(ConfigError::Invalid {
                key: "server.cors_allowed_origins",
                message: format!(
                    "`{origin}` is not an origin like https://app.example.com (scheme, host, optional port; no path), nor \"*\""
                ),
            });
        }
        if let Some(bad) = self
            .server
            .trusted_proxies
            .iter()
            .find(|p| super::proxies::Net::parse(p).is_none())
        {
            return Err(ConfigError::Invalid {
                key: "server.trusted_proxies",
                message: format!("`{bad}` is not an address or a CIDR range like 10.0.0.0/8"),
            });
        }
        if self.ledger.queue_capacity == 0 {
            return invalid("ledger.queue_capacity", "must be at least 1");
        }
        let weight = self.ledger.cache_read_weight;
        if !(0.0..=1.0).contains(&weight) {
            return invalid("ledger.cache_read_weight", "must be between 0 and 1");
        }
        self.validate_accounts()?;
        self.validate_keys()
    }
}

/// `*`, or a name or address as it may appear in `Host` (a port allowed,
/// then ignored): no scheme, path, spaces or wildcards.
fn is_host_name(host: &str) -> bool {
    host == "*" || (!host.trim().is_empty() && !host.contains(['/', '?', '#', ' ', '*', '@', ',']))
}

/// `*`, or `scheme://host[:port]` as browsers send it in `Origin`.
fn is_cors_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !host.is_empty()
        && !host.contains(['/', '?', '#', ' ', '*'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_and_cors_origins_are_checked() {
        let s = Settings::from_toml("[server]\nlog_level = \"debug\"\n").unwrap();
        assert_eq!(s.server.log_filter(), Some(log::LevelFilter::Debug));
        let err = Settings::from_toml("[server]\nlog_level = \"loud\"\n").unwrap_err();
        assert!(err.to_string().contains("server.log_level"), "{err}");
        for ok in ["*", "https://app.example.com", "http://localhost:5173"] {
            assert!(is_cors_origin(ok), "{ok}");
        }
        for bad in ["", "app.example.com", "https://x.com/", "https://*.x.com"] {
            assert!(!is_cors_origin(bad), "{bad}");
        }
        let err =
            Settings::from_toml("[server]\nallowed_hosts = [\"https://x.com\"]\n").unwrap_err();
        assert!(err.to_string().contains("server.allowed_hosts"), "{err}");
        Settings::from_toml("[server]\nallowed_hosts = [\"pool.lan\", \"[fd00::1]:80\"]\n")
            .unwrap();
        let err =
            Settings::from_toml("[server]\ncors_allowed_origins = [\"x.com\"]\n").unwrap_err();
        assert!(err.to_string().contains("cors_allowed_origins"), "{err}");
    }
}
