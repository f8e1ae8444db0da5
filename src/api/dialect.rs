//! What makes a dialect: a [`Codec`] turns a request body into the job to
//! run, and the job's outcome into the dialect's response body or stream
//! frames. The job-running route handler (`http::jobs::create`) is generic
//! over it, so a dialect is one module here and one route line.

use serde_json::Value;

use super::error::ApiError;
use super::responses::kept::{Kept, Lookups};
use super::Dialect;
use crate::job::Completion;
use crate::job::{JobEvent, JobSpec};

/// A dialect of the job-running routes.
pub trait Codec: 'static {
    /// Which API this is: decides the shape of its errors and its metrics
    /// label.
    const DIALECT: Dialect;
    /// What the response needs from its request (id, model name, modes),
    /// shared by the body and the stream.
    type Meta: Clone + 'static;
    /// The stream's encoder.
    type Stream: EventEncoder;

    /// Parses and validates a request body into the job to run.
    fn parse(body: &[u8], ctx: &Context) -> Result<Parsed<Self::Meta>, ApiError>;
    /// The non-streaming response body for a finished answer.
    fn body(meta: &Self::Meta, answer: &Completion) -> Value;
    /// What of a finished response body the daemon keeps (the Responses
    /// API's stored responses and conversations); the route writes it.
    fn kept(_meta: &Self::Meta, _response: &Value) -> Option<Kept> {
        None
    }
    /// The encoder of a streamed response.
    fn stream(meta: Self::Meta) -> Self::Stream;
}

/// A parsed request: the job, whether to stream, and the response's meta.
#[derive(Debug)]
pub struct Parsed<M> {
    pub spec: JobSpec,
    pub stream: bool,
    pub meta: M,
}

/// What the route knows about a request besides its body.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `claude.default_model`, for requests naming no Claude model.
    pub default_model: String,
    /// Agent mode is on and the request did not opt out: a job without
    /// caller tools runs as an agent job.
    pub agent_allowed: bool,
    /// The client's explicit session pin (`x-claude-pool-session`).
    pub session: Option<String>,
    /// Who is asking: a digest of the client's API key (empty without
    /// one). Stored state is visible only to the same scope.
    pub scope: String,
    /// What the route looked up of the stored state the request names
    /// (the Responses API's `previous_response_id`, `conversation`,
    /// `item_reference`), and whether responses can be stored. Parsing
    /// reads only this: it does no I/O.
    pub stored: Lookups,
    /// The request came over a WebSocket whose `responses` store keeps its
    /// latest response in memory, so even a `store: false` response is
    /// kept there (for the next turn's `previous_response_id`).
    pub connection_local: bool,
    /// This node's id (`server.node_id`), in the ids the response hands out
    /// and read back from the tool_use ids the request carries.
    pub node: String,
}

impl Context {
    /// A context with nothing but the default model (on the node named
    /// after the host).
    pub fn new(default_model: &str) -> Self {
        Self {
            default_model: default_model.to_string(),
            node: crate::node::from_host().to_string(),
            ..Self::default()
        }
    }

    /// A new id of this node for the response: `<prefix><node>_<random>`.
    pub fn new_id(&self, prefix: &str) -> String {
        crate::ids::of_node(prefix, &self.node)
    }
}

/// One server-sent event, before framing.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `event: <name>` and `data: <json>`.
    Event(&'static str, Value),
    /// `data: <json>` alone.
    Data(Value),
    /// `data: [DONE]`.
    Done,
    /// `: <text>`, a comment clients skip (a keep-alive).
    Comment(&'static str),
}

/// A dialect's encoding of job events into stream frames.
pub trait EventEncoder: 'static {
    /// Frames for one event.
    fn encode(&mut self, event: JobEvent) -> Vec<Frame>;
    /// Frames sent when nothing happened for a keep-alive interval.
    fn keepalive(&mut self) -> Vec<Frame>;
    /// Frames after the terminal event (e.g. OpenAI's `[DONE]`).
    fn finish(&mut self) -> Vec<Frame> {
        Vec::new()
    }
    /// What of the response just finished is to be kept, once: the
    /// encoder says it, a decorator outside `api` writes it (and marks
    /// the frames `store: false` if the store refuses).
    fn take_kept(&mut self) -> Option<Kept> {
        None
    }
}
