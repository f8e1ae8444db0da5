//! Each request's row in the usage ledger: what the handler and the job's
//! events tell (key, model, placement, first content, usage, errors) is
//! noted on the request as it is served, and the row is recorded once the
//! response body is done, behind the response (see [`crate::ledger`]).
// std::time::Instant here: wall-clock latencies for the audit log.
#![allow(clippy::disallowed_types)]

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest};

use super::access::started;
use super::error::ApiError;
use super::{metrics, AppState, RequestId};
use crate::api::{Dialect, EventEncoder, Frame};
use crate::config::proxies::Net;
use crate::config::Settings;
use crate::job::{Delta, JobEvent, Placed, Usage};
use crate::ledger::{record, Record};

/// The name of the key an authorized request presented (set by `auth`).
#[derive(Debug, Clone)]
pub struct KeyName(pub String);

/// What is known of a request's job so far.
#[derive(Debug, Default)]
struct Note {
    at: Option<SystemTime>,
    model_asked: Option<String>,
    model_served: Option<String>,
    stream: bool,
    placed: Option<Placed>,
    first_content: Option<Instant>,
    usage: Option<Usage>,
    /// An error a stream met after its head went out.
    error_type: Option<&'static str>,
    /// With `ledger.record_content`: the request body and the answer's text.
    content: Option<(String, String)>,
}

/// Shared between the handler (or its stream) and the middleware.
#[derive(Debug, Clone, Default)]
struct AuditNote(Rc<RefCell<Note>>);

fn with_note(req: &HttpRequest, f: impl FnOnce(&mut Note)) {
    if let Some(note) = req.extensions().get::<AuditNote>() {
        f(&mut note.0.borrow_mut());
    }
}

/// Gives an arriving request its note (called by the middleware).
pub(super) fn begin(req: &ServiceRequest) {
    let note = AuditNote::default();
    note.0.borrow_mut().at = Some(SystemTime::now());
    req.extensions_mut().insert(note);
}

/// Notes the job a request submitted: the model it asked for, whether it
/// streams, and where it will run.
pub fn job(req: &HttpRequest, model: &str, stream: bool, placed: &Placed) {
    with_note(req, |n| {
        n.model_asked = Some(model.to_string());
        n.stream = stream;
        n.placed = Some(placed.clone());
    });
}

/// Notes the request's body, to be kept with the answer's text (only with
/// `ledger.record_content`).
pub fn body(req: &HttpRequest, body: &[u8]) {
    with_note(req, |n| {
        n.content = Some((String::from_utf8_lossy(body).into_owned(), String::new()));
    });
}

/// Notes what one of the job's events tells.
pub fn observe(req: &HttpRequest, event: &JobEvent) {
    with_note(req, |n| n.observe(event));
}

impl Note {
    fn observe(&mut self, event: &JobEvent) {
        match event {
            JobEvent::Started { model, .. } => self.model_served = Some(model.clone()),
            JobEvent::BlockStart { .. } | JobEvent::BlockDelta { .. } => {
                self.first_content.get_or_insert_with(Instant::now);
                if let (
                    JobEvent::BlockDelta {
                        delta: Delta::Text { text },
                        ..
                    },
                    Some((_, answer)),
                ) = (event, &mut self.content)
                {
                    answer.push_str(text);
                }
            }
            JobEvent::BlockStop { .. } => {}
            JobEvent::Finished(completion) => self.usage = Some(completion.usage),
            JobEvent::Failed(error) => {
                let error = ApiError::from_job(error.clone(), Dialect::Anthropic);
                self.error_type = Some(error.anthropic_type());
            }
        }
    }
}

/// Wraps a stream's encoder so that the job's events reach the note.
pub fn note_stream<E: EventEncoder>(req: &HttpRequest, inner: E) -> Noted<E> {
    Noted {
        inner,
        note: req.extensions().get::<AuditNote>().cloned(),
    }
}

/// A stream's encoder that notes the job's events for the ledger.
pub struct Noted<E> {
    inner: E,
    note: Option<AuditNote>,
}

impl<E: EventEncoder> EventEncoder for Noted<E> {
    fn encode(&mut self, event: JobEvent) -> Vec<Frame> {
        if let Some(note) = &self.note {
            note.0.borrow_mut().observe(&event);
        }
        self.inner.encode(event)
    }

    fn keepalive(&mut self) -> Vec<Frame> {
        self.inner.keepalive()
    }

    fn finish(&mut self) -> Vec<Frame> {
        self.inner.finish()
    }
}

/// The key name `req` acts for: the one `auth` found, else `anonymous`
/// without keys, else [`crate::ledger::NO_KEY`].
pub fn key_of(req: &HttpRequest, settings: &Settings) -> String {
    req.extensions()
        .get::<KeyName>()
        .map(|k| k.0.clone())
        .unwrap_or_else(|| match settings.requires_keys() {
            true => crate::ledger::NO_KEY.into(),
            false => crate::ledger::ANONYMOUS.into(),
        })
}

/// Probes, scrapes, reads of the ledger itself and the admin's reads that
/// succeeded (the dashboard, its event stream, key lists) are not requests
/// anyone is accounted for (a dashboard polling would otherwise fill the
/// ledger); the admin's changes (`POST`, `PATCH`, `DELETE /admin/…`) and
/// refused attempts at the admin API are.
fn is_recorded(method: &Method, path: &str, status: u16) -> bool {
    let ledger_read = *method == Method::GET && matches!(path, "/v1/usage" | "/usage");
    let admin_read =
        *method == Method::GET && (path == "/admin" || path.starts_with("/admin/")) && status < 400;
    *method != Method::OPTIONS
        && !ledger_read
        && !admin_read
        && !matches!(path, "/" | "/health" | "/metrics")
}

/// Returns what records the request's row once its body is done (nothing
/// for probes). Called by the middleware as the response head goes out.
pub(super) fn on_response<B>(state: &AppState, res: &ServiceResponse<B>) -> Option<impl FnOnce()> {
    let req = res.request();
    if !is_recorded(req.method(), req.path(), res.status().as_u16()) {
        return None;
    }
    let settings = state.settings();
    let note = req.extensions().get::<AuditNote>().cloned()?;
    let route = req.match_pattern().unwrap_or_default();
    let dialect = metrics::dialect_label(&route);
    let error_type = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
        .map(ApiError::anthropic_type);
    let key = key_of(req, &settings);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(MAX_HEADER).collect::<String>())
    };
    let mut row = Record {
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        key,
        method: req.method().to_string(),
        route: req.path().chars().take(MAX_HEADER).collect(),
        dialect: (dialect != "none").then(|| dialect.to_string()),
        node: settings.server.node_id().to_string(),
        status: res.status().as_u16(),
        error_type: error_type.map(str::to_string),
        client_addr: client_addr(req, &settings).map(|ip| ip.to_string()),
        user_agent: header("user-agent"),
        ..Record::default()
    };
    let started = started(req);
    let ledger = state.ledger.clone();
    Some(move || {
        let note = std::mem::take(&mut *note.0.borrow_mut());
        row.at_ms = note.at.map_or_else(record::now_ms, record::to_ms);
        row.duration_ms = started.elapsed().as_millis() as u64;
        row.ttft_ms = note
            .first_content
            .map(|at| at.saturating_duration_since(started).as_millis() as u64);
        row.model_asked = note.model_asked;
        row.model_served = note.model_served;
        row.stream = note.stream;
        row.usage = note.usage.unwrap_or_default();
        if row.error_type.is_none() {
            row.error_type = note.error_type.map(str::to_string);
        }
        if let Some(placement) = note.placed.and_then(|p| p.get()) {
            row.worker = Some(placement.worker);
            row.account = Some(placement.account);
            row.queue_ms = Some(placement.queued.as_millis() as u64);
        }
        row.content = note.content.map(|(request, answer)| {
            serde_json::json!({"request": request, "answer": answer}).to_string()
        });
        ledger.record(row);
    })
}

/// Longest user agent or path kept in a row.
const MAX_HEADER: usize = 512;

/// The client's address: the peer's, unless the peer is a trusted proxy
/// (`server.trusted_proxies`); then the last address in `X-Forwarded-For`
/// that is not itself a trusted proxy (the one the nearest trusted proxy
/// saw), so a client cannot choose its address by sending the header.
pub fn client_addr(req: &HttpRequest, settings: &Settings) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted: Vec<Net> = settings
        .server
        .trusted_proxies
        .iter()
        .filter_map(|p| Net::parse(p))
        .collect();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(*ip))
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn settings(trusted: &[&str]) -> Settings {
        let mut s = Settings::default();
        s.server.trusted_proxies = trusted.iter().map(|t| t.to_string()).collect();
        s
    }

    fn request(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(f) = forwarded {
            req = req.insert_header(("x-forwarded-for", f));
        }
        req.to_http_request()
    }

    #[test]
    fn admin_reads_are_not_recorded_but_changes_and_refusals_are() {
        assert!(!is_recorded(&Method::GET, "/admin", 200));
        assert!(!is_recorded(&Method::GET, "/admin/events", 200));
        assert!(!is_recorded(&Method::GET, "/admin/keys", 200));
        assert!(
            is_recorded(&Method::GET, "/admin/keys", 403),
            "a refused attempt"
        );
        assert!(is_recorded(&Method::POST, "/admin/keys", 201));
        assert!(is_recorded(&Method::DELETE, "/admin/keys/a", 200));
        assert!(is_recorded(&Method::POST, "/admin/events/ticket", 201));
        assert!(is_recorded(&Method::GET, "/administrator", 404));
        assert!(!is_recorded(&Method::GET, "/health", 200));
        assert!(is_recorded(&Method::POST, "/v1/messages", 200));
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let spoofed = request("203.0.113.9:5000", Some("1.2.3.4"));
        assert_eq!(client_addr(&spoofed, &settings(&[])), ip("203.0.113.9"));
        assert_eq!(
            client_addr(&spoofed, &settings(&["10.0.0.0/8"])),
            ip("203.0.113.9"),
            "an untrusted peer's header is ignored"
        );
        let proxied = request("10.0.0.2:5000", Some("1.2.3.4, 198.51.100.7, 10.0.0.3"));
        assert_eq!(
            client_addr(&proxied, &settings(&["10.0.0.0/8"])),
            ip("198.51.100.7"),
            "the address the outermost trusted proxy saw, not what the client wrote"
        );
        let bare = request("10.0.0.2:5000", None);
        assert_eq!(
            client_addr(&bare, &settings(&["10.0.0.0/8"])),
            ip("10.0.0.2")
        );
    }
}
