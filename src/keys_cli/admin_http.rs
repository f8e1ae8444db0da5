//! One admin API call to the running daemon: a blocking HTTP/1.1 request
//! over `std::net::TcpStream` (`Connection: close`, a `Content-Length`
//! body), its status and its body. The daemon listens on plain HTTP,
//! loopback by default, and the API answers small JSON bodies, so a
//! hand-written exchange is enough; an HTTP client crate (the daemon has
//! none, `reqwest` is only a dev-dependency) would add a TLS and async
//! stack to the executable for one request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long the daemon may take to connect, take the request or answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the daemon listens: `http://HOST:PORT`, optionally with a path
/// prefix (a reverse proxy's).
#[derive(Debug, Clone)]
pub struct DaemonUrl {
    /// `HOST:PORT`, for connecting and for `Host`.
    authority: String,
    /// Without a trailing `/`; empty for none.
    prefix: String,
}

impl DaemonUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = match url.strip_prefix("http://") {
            Some(rest) => rest,
            None if url.starts_with("https://") => {
                return Err(format!(
                    "{url}: https is not supported here; reach the daemon over plain HTTP \
                     (it listens on loopback by default)"
                ))
            }
            None => return Err(format!("{url}: not an http:// URL")),
        };
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("/{prefix}")
        };
        Ok(Self { authority, prefix })
    }
}

impl std::fmt::Display for DaemonUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.prefix)
    }
}

/// The daemon's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `method path` with the admin key and an optional JSON body.
pub fn call(
    url: &DaemonUrl,
    admin_key: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Answer, String> {
    let unreachable = |e: std::io::Error| format!("cannot reach the daemon at {url}: {e}");
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&url.authority)
        .map_err(unreachable)?
        .next()
        .ok_or_else(|| format!("{url}: the host has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nx-api-key: {admin_key}\r\n\
         Accept: application/json\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        url.prefix,
        url.authority,
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(unreachable)?;
    parse_answer(&raw).ok_or_else(|| format!("{url}: not an HTTP answer"))
}

/// The status and body of a whole HTTP/1.1 response (read to the close).
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Answer { status, body })
}

/// A chunked body's bytes.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_a_port_and_keep_a_prefix() {
        let u = DaemonUrl::parse("http://127.0.0.1:8787").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.prefix.as_str()),
            ("127.0.0.1:8787", "")
        );
        let u = DaemonUrl::parse("http://pool.internal/claude/").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.prefix.as_str()),
            ("pool.internal:80", "/claude")
        );
        let u = DaemonUrl::parse("http://[::1]:9000").unwrap();
        assert_eq!(u.authority, "[::1]:9000");
        assert!(DaemonUrl::parse("https://x").unwrap_err().contains("https"));
        assert!(DaemonUrl::parse("localhost:8787").is_err());
    }

    #[test]
    fn answers_plain_and_chunked() {
        let a = parse_answer(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (404, &b"{}"[..]));
        let a = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"abcde"[..]));
        assert!(parse_answer(b"garbage").is_none());
    }
}
