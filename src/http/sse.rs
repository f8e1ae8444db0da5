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

use super::disconnect::{Client, WATCH_EVERY};
use crate::api::{EventEncoder, Frame};
use crate::error::JobError;
use crate::job::JobEvent;

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
    client: Client,
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
/// from `events` until the terminal one. No `first` means the job has been
/// silent for `keepalive` already (see `jobs::first_events`): the stream
/// opens with a keep-alive, so that a client never waits longer than that
/// for a frame.
pub fn response<E: EventEncoder>(
    first: Vec<JobEvent>,
    events: UnboundedReceiver<JobEvent>,
    encoder: E,
    keepalive: Duration,
    client: Client,
) -> HttpResponse {
    let mut state = StreamState {
        events,
        encoder,
        pending: VecDeque::new(),
        done: false,
        keepalive,
        client,
    };
    if first.is_empty() {
        let frames = state.encoder.keepalive();
        state.pending.extend(frames.iter().map(to_wire));
    }
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
            let wake = keepalive_at.min(tokio::time::Instant::now() + WATCH_EVERY);
            tokio::select! {
                event = st.events.recv() => match event {
                    Some(event) => st.push(event),
                    None => st.push(JobEvent::Failed(JobError::WorkerCrashed(
                        "the worker stopped without finishing the response".into(),
                    ))),
                },
                _ = tokio::time::sleep_until(wake) => {
                    if st.client.is_gone() {
                        // The job may still be queued (a stream opens after
                        // `keepalive` whether or not a worker has it).
                        st.client.withdraw(&mut st.events);
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

    /// The next chunk of a response body.
    async fn next_chunk(body: &mut actix_web::body::BoxBody) -> Option<Bytes> {
        use actix_web::body::MessageBody;
        futures_util::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx))
            .await
            .map(|chunk| chunk.unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_opened_after_keepalive_of_silence_starts_with_a_keepalive() {
        let keepalive = Duration::from_secs(15);
        let (_job, events) = tokio::sync::mpsc::unbounded_channel();
        let meta = crate::api::openai::ChatMeta::new("m".into());
        let encoder = <crate::api::openai::ChatCompletions as crate::api::Codec>::stream(meta);
        let response = response(Vec::new(), events, encoder, keepalive, Client::unwatched());
        let mut body = response.into_body();
        // The job was silent for `keepalive` before the stream opened: a
        // keep-alive is due now, not after another `keepalive`.
        let first = tokio::time::timeout(keepalive / 2, next_chunk(&mut body))
            .await
            .expect("a frame at once");
        assert_eq!(first.unwrap(), Bytes::from(": keep-alive\n\n"));
        // Then one per `keepalive` of silence.
        let start = tokio::time::Instant::now();
        next_chunk(&mut body).await.unwrap();
        assert_eq!(start.elapsed(), keepalive);
    }

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
