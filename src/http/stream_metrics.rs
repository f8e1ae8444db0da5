//! A stream's metrics as it passes: an encoder decorator that records the
//! time to its first content, its tokens and a failure mid-stream on the
//! daemon's [`super::metrics::Metrics`].
// std::time::Instant here: the request's start as the access middleware took it.
#![allow(clippy::disallowed_types)]

use std::time::Instant;

use actix_web::{web, HttpRequest};

use super::access::started;
use super::error::ApiError;
use super::metrics::dialect_name;
use super::AppState;
use crate::api::{Dialect, EventEncoder, Frame};
use crate::job::JobEvent;

/// Wraps a stream's encoder so that the stream's first content, its tokens
/// and a failure mid-stream are recorded as they pass.
pub fn observe_stream<E: EventEncoder>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    dialect: Dialect,
    inner: E,
) -> Observed<E> {
    Observed {
        inner,
        state: state.clone(),
        dialect,
        started: started(req),
        first_seen: false,
    }
}

/// A stream's encoder that records what passes through it.
pub struct Observed<E> {
    inner: E,
    state: web::Data<AppState>,
    dialect: Dialect,
    started: Instant,
    first_seen: bool,
}

impl<E: EventEncoder> EventEncoder for Observed<E> {
    fn encode(&mut self, event: JobEvent) -> Vec<Frame> {
        let metrics = &self.state.metrics;
        match &event {
            JobEvent::BlockStart { .. } | JobEvent::BlockDelta { .. } if !self.first_seen => {
                self.first_seen = true;
                metrics
                    .first_token
                    .with_label_values(&[dialect_name(self.dialect), "true"])
                    .observe(self.started.elapsed().as_secs_f64());
            }
            JobEvent::Finished(completion) => metrics.count_tokens(&completion.usage),
            JobEvent::Failed(error) => {
                metrics.count_error(ApiError::from_job(error.clone(), self.dialect).kind)
            }
            _ => {}
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
