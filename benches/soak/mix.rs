//! The soak's request mix: the kinds of request, the upstream faults they
//! ask for, and the tally of how each ended.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Non-streaming Messages request; the full text is checked.
    Messages,
    /// Non-streaming Chat Completions request.
    Chat,
    /// Streaming Messages request read to the end.
    Stream,
    /// Streaming request dropped after the first text delta.
    DropStream,
    /// Non-streaming slow request abandoned by a client timeout.
    DropWaiting,
    /// A body the daemon must refuse with 4xx.
    Bad,
}

impl Kind {
    pub(crate) fn pick(rng: &mut Rng) -> Kind {
        match rng.below(100) {
            0..=29 => Kind::Messages,
            30..=44 => Kind::Chat,
            45..=69 => Kind::Stream,
            70..=79 => Kind::DropStream,
            80..=84 => Kind::DropWaiting,
            _ => Kind::Bad,
        }
    }
}

/// How one request ended.
pub(crate) enum Outcome {
    /// Served as expected, in this long.
    Completed(Duration),
    /// 529 or 503 before any work.
    Rejected(u16),
    /// The client left on purpose (dropped stream, timeout).
    Abandoned,
    /// A bad body refused with the expected 4xx.
    Refused,
    /// A broken upstream stream ended a stream with an `api_error` event,
    /// after part of the broken call had gone out.
    Interrupted,
    /// A dropped upstream connection answered with 502 `api_error`.
    UpstreamFailed,
    /// Anything else, with what went wrong.
    Errored(String),
}

/// The upstream fault a request asks for, in the fake upstream's markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    Cut,
    ErrorEvent,
    CutSameId,
    SlowFirstByte,
    Drop,
}

impl Fault {
    pub(crate) fn pick(rng: &mut Rng, percent: u64) -> Option<Fault> {
        if rng.below(100) >= percent {
            return None;
        }
        Some(match rng.below(5) {
            0 => Fault::Cut,
            1 => Fault::ErrorEvent,
            2 => Fault::CutSameId,
            3 => Fault::SlowFirstByte,
            _ => Fault::Drop,
        })
    }

    pub(crate) fn markers(self, k: u64) -> String {
        match self {
            Fault::Cut => format!("[[cut:{k}]]"),
            Fault::ErrorEvent => format!("[[sse_error:{k}]]"),
            Fault::CutSameId => format!("[[reuse_id]] [[cut:{k}]]"),
            Fault::SlowFirstByte => "[[first_byte_ms:300]]".into(),
            Fault::Drop => "[[drop]]".into(),
        }
    }
}

/// What a client got whole, to check against the upstream's log.
pub(crate) struct Got {
    /// The request's `[[fault_once]]` marker.
    pub(crate) once: String,
    pub(crate) text: String,
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) completed: BTreeMap<Kind, Vec<Duration>>,
    pub(crate) rejected: BTreeMap<u16, u64>,
    pub(crate) abandoned: u64,
    pub(crate) refused: u64,
    pub(crate) errored: u64,
    pub(crate) error_samples: Vec<String>,
    /// Faults asked for, by kind.
    pub(crate) faults: BTreeMap<Fault, u64>,
    pub(crate) interrupted: u64,
    pub(crate) upstream_failed: u64,
    /// Answers got whole, with their request's nonce marker.
    pub(crate) got: Vec<Got>,
}

impl Tally {
    pub(crate) fn add(&mut self, kind: Kind, outcome: Outcome) {
        match outcome {
            Outcome::Completed(d) => self.completed.entry(kind).or_default().push(d),
            Outcome::Rejected(status) => *self.rejected.entry(status).or_default() += 1,
            Outcome::Abandoned => self.abandoned += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Interrupted => self.interrupted += 1,
            Outcome::UpstreamFailed => self.upstream_failed += 1,
            Outcome::Errored(why) => {
                self.errored += 1;
                if self.error_samples.len() < 10 {
                    self.error_samples.push(format!("{kind:?}: {why}"));
                }
            }
        }
    }
}
