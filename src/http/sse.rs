//! Server-sent-event response bodies: job events are encoded as they arrive
//! (nothing is buffered beyond one event), with keep-alives while the model
//! is silent. Dropping the body (client gone) drops the job's receiver,
//! which is the worker's signal to interrupt the turn. actix-web notices a
//! departed client only when a write fails, so while nothing is written the
//! body also peeks at the connection (see `disconnect`) and ends itself.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::mpsc::UnboundedReceiver;

use super::disconnect::PeerSocket;
use crate::api::{EventEncoder, Frame};
use crate::error::JobError;
use crate::job::JobEvent;

/// How often a silent stream checks that its client is still there.
const DISCONNECT_CHECK: Duration = Duration::from_millis(250);

/// A frame as it goes on the wire.
pub fn to_wire(frame: &Frame) -> Bytes {
    Bytes::from(match frame {
        Frame::Event(name, data) => format!("event: {name}\ndata: {data}\n\n"),
        Frame::Data(data) => format!("data: {data}\n\n"),
        Frame::Done => "data: [DONE]\n\n".to_string(),
        Frame::Comment(text) => format!(": {text}\n\n"),
    })
}

struct StreamState<E> {
    events: UnboundedReceiver<JobEvent>,
    encoder: E,
    pending: VecDeque<Bytes>,
    done: bool,
    keepalive: Duration,
    socket: Option<PeerSocket>,
}

impl<E: EventEncoder> StreamState<E> {
    fn push(&mut self, event: JobEvent) {
        let terminal = event.is_terminal();
        let frames = self.encoder.encode(event);
        self.pending.extend(frames.iter().map(to_wire));
        if terminal {
            self.done = true;
            let frames = self.encoder.finish();
            self.pending.extend(frames.iter().map(to_wire));
        }
    }
}

/// A 200 `text/event-stream` response carrying `first` and then every event
/// from `events` until the terminal one.
pub fn response<E: EventEncoder>(
    first: Vec<JobEvent>,
    events: UnboundedReceiver<JobEvent>,
    encoder: E,
    keepalive: Duration,
    socket: Option<PeerSocket>,
) -> HttpResponse {
    let mut state = StreamState {
        events,
        encoder,
        pending: VecDeque::new(),
        done: false,
        keepalive,
        socket,
    };
    for event in first {
        state.push(event);
    }
    let body = stream::unfold(state, |mut st| async move {
        let mut silent_since = tokio::time::Instant::now();
        loop {
            if let Some(frame) = st.pending.pop_front() {
                return Some((Ok::<_, Infallible>(frame), st));
            }
            if st.done {
                return None;
            }
            let keepalive_at = silent_since + st.keepalive;
            let wake = keepalive_at.min(tokio::time::Instant::now() + DISCONNECT_CHECK);
            tokio::select! {
                event = st.events.recv() => match event {
                    Some(event) => st.push(event),
                    None => st.push(JobEvent::Failed(JobError::WorkerCrashed(
                        "the worker stopped without finishing the response".into(),
                    ))),
                },
                _ = tokio::time::sleep_until(wake) => {
                    if st.socket.is_some_and(PeerSocket::is_closed) {
                        // Ending the body drops the job's receiver.
                        return None;
                    }
                    if tokio::time::Instant::now() >= keepalive_at {
                        let frames = st.encoder.keepalive();
                        st.pending.extend(frames.iter().map(to_wire));
                        silent_since = tokio::time::Instant::now();
                    }
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_on_the_wire() {
        let text = |f: Frame| String::from_utf8(to_wire(&f).to_vec()).unwrap();
        assert_eq!(
            text(Frame::Event("ping", json!({"type": "ping"}))),
            "event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
        assert_eq!(text(Frame::Data(json!({"a": 1}))), "data: {\"a\":1}\n\n");
        assert_eq!(text(Frame::Done), "data: [DONE]\n\n");
        assert_eq!(text(Frame::Comment("keep-alive")), ": keep-alive\n\n");
    }
}
