//! The `Host` rule of a keyless daemon: with no API keys configured, only
//! requests addressed to a loopback name or address (or to a name in
//! `server.allowed_hosts`) are served.
//!
//! Why: a keyless daemon trusts whoever can reach its port, which on loopback
//! includes every web page open in the user's browser. CORS and the JSON
//! content-type rule stop a page from calling `http://127.0.0.1:8787`
//! directly, but DNS rebinding (a name of the attacker's that first resolves
//! to the attacker, then to 127.0.0.1) makes the page same-origin with the
//! daemon. Such requests still carry the attacker's name in `Host`, which is
//! what this rule refuses.

use std::net::IpAddr;

use actix_web::{http::header, HttpRequest};

use super::error::{ApiError, ErrorKind};
use crate::api::Dialect;
use crate::config::Settings;

/// Ok when keys are configured (they authenticate instead), when the request
/// names no host at all (no browser sends such a request), or when its host
/// is a loopback name, a loopback address or listed in `server.allowed_hosts`;
/// else 403 in the route's dialect.
pub fn check(req: &HttpRequest, settings: &Settings, dialect: Dialect) -> Result<(), ApiError> {
    if settings.requires_keys() {
        return Ok(());
    }
    match requested_host(req) {
        Some(host) if !is_allowed(&host, &settings.server.allowed_hosts) => Err(ApiError::new(
            ErrorKind::HostNotAllowed,
            format!(
                "this daemon has no API keys, so it only serves requests addressed to \
                 localhost, 127.0.0.1 or [::1], not to {host:?}: add the name to \
                 server.allowed_hosts (e.g. for a reverse proxy on this host) or set \
                 server.api_keys"
            ),
            dialect,
        )),
        _ => Ok(()),
    }
}

/// Whether `req` may be served under the Host rule (for callers that fall
/// back to other checks rather than refuse).
pub fn is_local(req: &HttpRequest, settings: &Settings) -> bool {
    requested_host(req).is_none_or(|host| is_allowed(&host, &settings.server.allowed_hosts))
}

/// The host the client addressed: HTTP/2's `:authority`, else `Host`.
/// Lossy for bytes that are not UTF-8, which then match nothing.
fn requested_host(req: &HttpRequest) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_string());
    }
    req.headers()
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `host` (`name`, `name:port`, `1.2.3.4:port`, `[::1]:port`) without its
/// port, lowercased, without one trailing dot; `[` `]` removed from IPv6.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or_default()
    } else {
        // No port, or a bare IPv6 address (not valid in Host, kept whole).
        host
    };
    let name = name.to_ascii_lowercase();
    name.strip_suffix('.').map(str::to_string).unwrap_or(name)
}

/// Whether `host` is loopback or listed in `allowed` (`"*"` allows any).
fn is_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_name(host);
    let loopback = name == "localhost"
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    loopback || allowed.iter().any(|a| a == "*" || host_name(a) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_pass_with_any_port() {
        for host in [
            "localhost",
            "localhost:8787",
            "LOCALHOST:1",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:8787",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8787",
            "[::ffff:127.0.0.1]:8787",
        ] {
            assert!(is_allowed(host, &[]), "{host}");
        }
    }

    #[test]
    fn other_hosts_are_refused_unless_listed() {
        for host in [
            "evil.example",
            "evil.example:8787",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8787",
            "10.0.0.1:8787",
            "[::2]:8787",
            "0.0.0.0:8787",
            "",
        ] {
            assert!(!is_allowed(host, &[]), "{host}");
        }
        let allowed = ["pool.internal".to_string(), "[fd00::1]".to_string()];
        assert!(is_allowed("pool.internal:443", &allowed));
        assert!(is_allowed("Pool.Internal", &allowed));
        assert!(is_allowed("[fd00::1]:8787", &allowed));
        assert!(!is_allowed("other.internal", &allowed));
        assert!(is_allowed("anything.example", &["*".to_string()]));
    }
}
