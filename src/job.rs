//! The domain between the HTTP dialects and the workers: a [`Job`] is one
//! request's worth of work, and [`JobEvent`]s are what a worker reports back
//! while it runs. Content blocks and deltas keep the Anthropic content model,
//! because that is what the CLI itself speaks; each HTTP dialect translates
//! from here.
// std::time::Instant here: `admitted_at` is stamped where jobs are made, outside the pool; the pool reads it as `tokio::time::Instant::from_std`.
#![allow(clippy::disallowed_types)]

pub mod assemble;
mod content;
mod stop;

pub use content::{ContentBlock, Delta};
pub use stop::StopReason;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::affinity::ConversationKey;
use crate::error::JobError;
use crate::keys::Caller;

/// What a job asks the model to do; everything a worker needs to run it.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The system prompt, empty for none. A worker whose conversation was set
    /// up with one system prompt can only serve jobs with that same prompt.
    pub system: String,
    /// The model name handed to the CLI (`set_model`).
    pub model: String,
    /// Content blocks of the one user message written to a fresh CLI
    /// conversation: the whole history rendered (see `prompt`).
    pub prompt: Vec<Value>,
    /// The final user message alone, for a worker whose conversation already
    /// holds everything before it (affinity).
    pub continuation: Vec<Value>,
    /// Digests that match this request to a worker holding its earlier turns;
    /// `None` when the request cannot continue a live conversation.
    pub conversation: Option<ConversationKey>,
    /// The answer's output token limit (`max_tokens`); `None` for the CLI's
    /// default for the model.
    pub max_tokens: Option<u32>,
    /// Extended-thinking budget in tokens; 0 turns thinking off, which is
    /// the Messages API's default (the CLI's own default is on).
    pub thinking_budget: u32,
    /// The caller's tools, offered to the model as real tools through an SDK
    /// MCP server; `None` for a request without tools.
    pub tools: Option<ToolSet>,
    /// The answer ends where any of these first appears in its text.
    pub stop_sequences: Vec<String>,
    /// Run as an agent job: on an agent worker, with Claude Code's own tools
    /// (agent mode), the client seeing the agent's text as one block.
    pub agent: bool,
    /// Results the final user message carries for earlier tool calls. A job
    /// with results is routed to the worker parked on exactly those calls.
    pub tool_results: Vec<ToolResult>,
    /// A message batch's request: nobody continues its turn, so a turn
    /// ending in tool calls is answered and interrupted, never parked.
    pub background: bool,
    /// The client reads the answer as a stream: what the worker forwards
    /// reaches it at once and cannot be taken back. A job answered whole
    /// gets only what the CLI settled on (see `worker::translate`).
    pub streamed: bool,
    /// Who sent the job (a digest of the client's API key; empty without
    /// keys). A job continues only a turn or conversation of its own scope.
    pub scope: String,
}

#[cfg(test)]
impl JobSpec {
    /// A plain, streamed job's spec with `system` from `scope`, its one
    /// user message `text`: what tests start from.
    pub fn plain(system: &str, scope: &str, text: &str) -> Self {
        let message = vec![serde_json::json!({"type": "text", "text": text})];
        JobSpec {
            system: system.into(),
            model: "claude-test".into(),
            prompt: message.clone(),
            continuation: message,
            conversation: None,
            max_tokens: None,
            thinking_budget: 0,
            tools: None,
            stop_sequences: Vec::new(),
            agent: false,
            tool_results: Vec::new(),
            background: false,
            streamed: true,
            scope: scope.into(),
        }
    }
}

/// A caller's tool definitions, as one SDK MCP server of the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSet {
    /// The MCP server's name: derived from a digest of the definitions, so a
    /// different tool set always gets a new server (re-registering a name
    /// keeps the old tools).
    pub server: String,
    /// Tools in MCP form: `{name, description, inputSchema}`.
    pub tools: Vec<Value>,
}

impl ToolSet {
    /// Builds a tool set, naming its server after a digest of `tools`.
    pub fn new(tools: Vec<Value>) -> Self {
        let digest = crate::affinity::digest_json(&tools);
        Self {
            server: format!("c{digest:016x}"),
            tools,
        }
    }

    /// The prefix the CLI gives this server's tools in the API (`mcp__s__`).
    pub fn api_prefix(&self) -> String {
        format!("mcp__{}__", self.server)
    }
}

/// A caller's result for one tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub tool_use_id: String,
    /// What the worker's tool server answers the CLI's `tools/call` with.
    pub content: Vec<ToolContent>,
    pub is_error: bool,
}

/// An item of a tool's result, in MCP's shape (the tool server's answer).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolContent {
    Text {
        text: String,
    },
    /// Base64 `data` of the `mimeType` given.
    Image {
        data: String,
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
}

impl ToolContent {
    pub fn text(text: impl Into<String>) -> Self {
        ToolContent::Text { text: text.into() }
    }
}

/// A job in flight: the spec plus the channel its events go back on.
#[derive(Debug)]
pub struct Job {
    /// The request id, carried into the worker's log lines.
    pub id: String,
    pub spec: JobSpec,
    /// Events for the HTTP response. Unbounded on purpose: the producer is an
    /// actor that must not block, and one turn's output is bounded by the
    /// model's max tokens. A closed channel means the client went away.
    pub events: mpsc::UnboundedSender<JobEvent>,
    /// When the job was admitted, for queue timeouts and logs.
    pub admitted_at: Instant,
    /// Where it ran, noted by the dispatcher for the usage ledger.
    pub placed: Placed,
    /// Who sent it: the key's name, weight (fair share), the accounts that
    /// may serve it, its limits. Anonymous unless set by [`Job::with_caller`].
    pub caller: Arc<Caller>,
}

/// Where a job ran: filled in by the dispatcher when a worker takes the job
/// (again, if it is run again on another account), read by whoever
/// submitted it for the usage ledger.
#[derive(Debug, Clone, Default)]
pub struct Placed(Arc<Mutex<Option<Placement>>>);

/// A worker taking a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub worker: u64,
    /// The account's name (`[[accounts]]`, or `default`).
    pub account: String,
    /// From admission to the worker taking it.
    pub queued: Duration,
}

impl Placed {
    pub fn set(&self, placement: Placement) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(placement);
    }

    pub fn get(&self) -> Option<Placement> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Job {
    /// Creates a job and the receiving end of its events.
    pub fn new(id: String, spec: JobSpec) -> (Self, mpsc::UnboundedReceiver<JobEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let job = Job {
            id,
            spec,
            events,
            admitted_at: Instant::now(),
            placed: Placed::default(),
            caller: Arc::new(Caller::anonymous(Default::default())),
        };
        (job, rx)
    }

    /// The job, sent by `caller`.
    pub fn with_caller(mut self, caller: Arc<Caller>) -> Self {
        self.caller = caller;
        self
    }

    /// Whether the client has stopped listening.
    pub fn is_abandoned(&self) -> bool {
        self.events.is_closed()
    }

    /// Reports a terminal failure; harmless if the client is gone.
    pub fn fail(&self, error: JobError) {
        let _ = self.events.send(JobEvent::Failed(error));
    }
}

/// Token counts, as the Messages API reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

/// A turn that completed: the whole answer, and how it came to an end. The
/// worker builds it once ([`assemble::Assembler`]); a dialect answering
/// whole encodes it, a stream has had its blocks already and reads only how
/// it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    /// The answer's content blocks, as the client got them.
    pub content: Vec<ContentBlock>,
    pub stop_reason: Option<StopReason>,
    pub stop_sequence: Option<String>,
    /// Usage of the whole job, from the CLI's `result`.
    pub usage: Usage,
}

impl Completion {
    /// The concatenated text blocks.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(ContentBlock::as_text)
            .collect()
    }
}

/// What a worker reports while running a job. Exactly one of `Finished` or
/// `Failed` ends every job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// The model started answering; usage holds the input side so far.
    Started {
        model: String,
        usage: Usage,
    },
    BlockStart {
        index: usize,
        block: ContentBlock,
    },
    BlockDelta {
        index: usize,
        delta: Delta,
    },
    BlockStop {
        index: usize,
    },
    Finished(Completion),
    Failed(JobError),
}

impl JobEvent {
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobEvent::Finished(_) | JobEvent::Failed(_))
    }

    /// How the job ended, if this event ends it: the whole answer, or why
    /// it failed.
    pub fn into_outcome(self) -> Option<Result<Completion, JobError>> {
        match self {
            JobEvent::Finished(answer) => Some(Ok(answer)),
            JobEvent::Failed(error) => Some(Err(error)),
            _ => None,
        }
    }
}

/// One-line job events for the unit tests of the code that encodes them.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{ContentBlock, Delta, JobEvent, Usage};

    /// `Started` with no usage.
    pub fn started() -> JobEvent {
        JobEvent::Started {
            model: "m".into(),
            usage: Usage::default(),
        }
    }

    pub fn text_start(index: usize) -> JobEvent {
        let block = ContentBlock::Text {
            text: String::new(),
        };
        JobEvent::BlockStart { index, block }
    }

    pub fn text_delta(index: usize, text: &str) -> JobEvent {
        let delta = Delta::Text { text: text.into() };
        JobEvent::BlockDelta { index, delta }
    }

    pub fn thinking_start(index: usize) -> JobEvent {
        let block = ContentBlock::Thinking {
            thinking: String::new(),
            signature: None,
        };
        JobEvent::BlockStart { index, block }
    }

    pub fn thinking_delta(index: usize, thinking: &str) -> JobEvent {
        let delta = Delta::Thinking {
            thinking: thinking.into(),
        };
        JobEvent::BlockDelta { index, delta }
    }

    /// A `tool_use` block whose input follows in [`json_delta`]s.
    pub fn tool_start(index: usize, id: &str, name: &str) -> JobEvent {
        let block = ContentBlock::ToolUse {
            id: id.into(),
            name: name.into(),
            input: serde_json::json!({}),
        };
        JobEvent::BlockStart { index, block }
    }

    pub fn json_delta(index: usize, partial_json: &str) -> JobEvent {
        let delta = Delta::InputJson {
            partial_json: partial_json.into(),
        };
        JobEvent::BlockDelta { index, delta }
    }
}
