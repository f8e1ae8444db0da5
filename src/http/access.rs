//! The access log: one line per request, written once its response body is
//! done (a stream's tokens are known only then), and the request's id and
//! arrival instant that the handlers and the metrics read.
// std::time::Instant here: a request's wall-clock latency for the access log.
#![allow(clippy::disallowed_types)]

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest};
use bytes::Bytes;

use crate::api::{EventEncoder, Frame};
use crate::job::{JobEvent, Usage};

/// When the request reached the daemon (set by the access middleware).
#[derive(Debug, Clone, Copy)]
pub struct Started(pub Instant);

/// The instant `req` arrived, or now if the middleware did not run.
pub fn started(req: &HttpRequest) -> Instant {
    req.extensions()
        .get::<Started>()
        .map_or_else(Instant::now, |s| s.0)
}

/// The id of the request being served: the client's `x-request-id` if it
/// sent a sensible one, else a fresh `req_…`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn request_id_for(req: &ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| crate::ids::new("req_"))
}

/// What the access log line reports beyond the response itself: the job's
/// token usage, once known. Shared between the handler (or its stream) and
/// the access-log middleware of one request.
#[derive(Debug, Clone, Default)]
pub struct AccessNote(Rc<Cell<Option<Usage>>>);

impl AccessNote {
    /// Notes the usage of the request's job.
    pub fn record(req: &HttpRequest, usage: Usage) {
        if let Some(note) = req.extensions().get::<AccessNote>() {
            note.0.set(Some(usage));
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        self.0.get()
    }
}

/// One request as the access log sees it, from arrival to the end of its
/// response body.
pub(super) struct Access {
    id: String,
    note: AccessNote,
    method: Method,
    path: String,
    started: Instant,
}

impl Access {
    /// Marks `req`'s arrival and gives it its id and access note.
    pub(super) fn begin(req: &ServiceRequest) -> Self {
        let started = Instant::now();
        let id = request_id_for(req);
        let note = AccessNote::default();
        let mut extensions = req.extensions_mut();
        extensions.insert(RequestId(id.clone()));
        extensions.insert(note.clone());
        extensions.insert(Started(started));
        Self {
            id,
            note,
            method: req.method().clone(),
            path: req.path().to_string(),
            started,
        }
    }

    /// Names the request's id in the response, and writes the access line
    /// once the body is done, after running `done` (the metrics' latency).
    pub(super) fn finish<B>(
        self,
        mut res: ServiceResponse<B>,
        done: impl FnOnce() + 'static,
    ) -> ServiceResponse<Timed<B>> {
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            let headers = res.headers_mut();
            headers.insert(HeaderName::from_static("request-id"), value.clone());
            headers.insert(HeaderName::from_static("x-request-id"), value);
        }
        let status = res.status().as_u16();
        let log = move || {
            done();
            let tokens = (self.note.usage())
                .map(|u| format!(" tokens in={} out={}", u.input_tokens, u.output_tokens))
                .unwrap_or_default();
            log::info!(
                target: "claude_pool::access",
                "[{}] {} {} {status} {}ms{tokens}",
                self.id,
                self.method,
                self.path,
                self.started.elapsed().as_millis()
            );
        };
        res.map_body(|_, body| Timed::new(body, log))
    }
}

/// Wraps a stream's encoder so that the job's usage, when it finishes,
/// reaches the request's access line.
pub fn note_stream<E: EventEncoder>(req: &HttpRequest, inner: E) -> Noted<E> {
    Noted {
        inner,
        note: req.extensions().get::<AccessNote>().cloned(),
    }
}

/// A stream's encoder that notes the job's usage for the access log.
pub struct Noted<E> {
    inner: E,
    note: Option<AccessNote>,
}

impl<E: EventEncoder> EventEncoder for Noted<E> {
    fn encode(&mut self, event: JobEvent) -> Vec<Frame> {
        if let (JobEvent::Finished(completion), Some(note)) = (&event, &self.note) {
            note.0.set(Some(completion.usage));
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

/// A response body that runs a callback once it is done: sent in full, or
/// dropped because the client left.
pub struct Timed<B> {
    body: B,
    done: Option<Box<dyn FnOnce()>>,
}

impl<B> Timed<B> {
    pub fn new(body: B, done: impl FnOnce() + 'static) -> Self {
        Self {
            body,
            done: Some(Box::new(done)),
        }
    }
}

impl<B: MessageBody + Unpin> MessageBody for Timed<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

impl<B> Drop for Timed<B> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done();
        }
    }
}
