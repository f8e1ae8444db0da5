//! The response's event stream, as OpenAI sends it: `event:` + `data:`
//! frames, each with its `sequence_number`, opening with
//! `response.created` and `response.in_progress`, one
//! `output_item.added` … `output_item.done` run per item, and ending with
//! `response.completed`, `response.incomplete` or `response.failed` (no
//! `[DONE]`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::kept::Kept;
use super::output::{
    call_id_of, call_item, message_item, new_id, outcome, reasoning_item, text_part, End,
    ResponseMeta,
};
use super::tools::CallerTool;
use super::DIALECT;
use crate::api::error::{ApiError, ErrorKind};
use crate::api::{EventEncoder, Frame};
use crate::job::{Completion, ContentBlock, Delta, JobEvent, Usage};

/// An output item being streamed.
#[derive(Debug)]
struct Open {
    output_index: usize,
    item_id: String,
    kind: OpenKind,
    /// The text, summary or argument JSON so far.
    text: String,
}

#[derive(Debug)]
enum OpenKind {
    Message,
    Reasoning,
    Call { call_id: String, tool: CallerTool },
}

/// Encodes job events as the Responses API's stream: `event:` + `data:`
/// frames, each with its `sequence_number`; no `[DONE]`.
#[derive(Debug)]
pub struct ResponseStream {
    meta: ResponseMeta,
    sequence: u64,
    started: bool,
    /// Items being streamed, by content block index.
    open: BTreeMap<usize, Open>,
    /// Finished items by output index.
    output: BTreeMap<usize, Value>,
    next_output: usize,
    /// Usage from `Started`, for a completion that carries none.
    input_usage: Usage,
    /// What of the finished response is to be kept, until taken.
    kept: Option<Kept>,
}

impl ResponseStream {
    pub fn new(meta: ResponseMeta) -> Self {
        Self {
            meta,
            sequence: 0,
            started: false,
            open: BTreeMap::new(),
            output: BTreeMap::new(),
            next_output: 0,
            input_usage: Usage::default(),
            kept: None,
        }
    }

    /// The response object of a background response not yet started.
    pub fn queued(&self) -> Value {
        self.meta.response("queued", Vec::new(), End::default())
    }

    /// Ends a response cancelled while it ran: the response object with
    /// status `cancelled` and the items finished so far, stored as such.
    pub fn cancel(&mut self) -> Value {
        let output = std::mem::take(&mut self.output).into_values().collect();
        let response = self.meta.response("cancelled", output, End::default());
        self.kept = self.meta.kept(&response);
        response
    }

    fn event(&mut self, out: &mut Vec<Frame>, name: &'static str, mut data: Value) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.push(Frame::Event(name, data));
    }

    fn start(&mut self, out: &mut Vec<Frame>) {
        self.started = true;
        let response = self
            .meta
            .response("in_progress", Vec::new(), End::default());
        self.event(out, "response.created", json!({"response": response}));
        let response = self
            .meta
            .response("in_progress", Vec::new(), End::default());
        self.event(out, "response.in_progress", json!({"response": response}));
    }

    fn open(&mut self, out: &mut Vec<Frame>, index: usize, block: ContentBlock) {
        let output_index = self.next_output;
        let (kind, item_id, item, first) = match block {
            ContentBlock::Text { text } => {
                let id = new_id("msg");
                let item = message_item(&id, None, "in_progress");
                (OpenKind::Message, id, item, text)
            }
            ContentBlock::Thinking { thinking, .. } => {
                let id = new_id("rs");
                let item = reasoning_item(&id, None);
                (OpenKind::Reasoning, id, item, thinking)
            }
            ContentBlock::ToolUse {
                id: call_id,
                name,
                input,
            } => {
                let tool = self.meta.names.caller(&name);
                let id = call_id_of(if tool.custom { "ctc" } else { "fc" }, &call_id);
                let item = call_item(&tool, &id, &call_id, "", "in_progress");
                let first = match &input {
                    Value::Object(map) if !map.is_empty() => input.to_string(),
                    _ => String::new(),
                };
                (OpenKind::Call { call_id, tool }, id, item, first)
            }
            ContentBlock::RedactedThinking { .. } | ContentBlock::Other(_) => return,
        };
        self.next_output += 1;
        let at = json!({"output_index": output_index, "item_id": item_id});
        self.event(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": item}),
        );
        match &kind {
            OpenKind::Message => {
                let mut data = at.clone();
                data["content_index"] = json!(0);
                data["part"] = text_part("");
                self.event(out, "response.content_part.added", data);
            }
            OpenKind::Reasoning => {
                let mut data = at.clone();
                data["summary_index"] = json!(0);
                data["part"] = json!({"type": "summary_text", "text": ""});
                self.event(out, "response.reasoning_summary_part.added", data);
            }
            OpenKind::Call { .. } => {}
        }
        self.open.insert(
            index,
            Open {
                output_index,
                item_id,
                kind,
                text: String::new(),
            },
        );
        if !first.is_empty() {
            self.delta(out, index, first);
        }
    }

    fn delta(&mut self, out: &mut Vec<Frame>, index: usize, more: String) {
        let Some(open) = self.open.get_mut(&index) else {
            return;
        };
        open.text.push_str(&more);
        let mut data =
            json!({"output_index": open.output_index, "item_id": open.item_id, "delta": more});
        let name = match &open.kind {
            OpenKind::Message => {
                data["content_index"] = json!(0);
                data["logprobs"] = json!([]);
                "response.output_text.delta"
            }
            OpenKind::Reasoning => {
                data["summary_index"] = json!(0);
                "response.reasoning_summary_text.delta"
            }
            // A custom tool's input is known whole only at the end.
            OpenKind::Call { tool, .. } if tool.custom => return,
            OpenKind::Call { .. } => "response.function_call_arguments.delta",
        };
        self.event(out, name, data);
    }

    fn close(&mut self, out: &mut Vec<Frame>, index: usize) {
        let Some(open) = self.open.remove(&index) else {
            return;
        };
        let at = json!({"output_index": open.output_index, "item_id": open.item_id});
        let with = |extra: Value| {
            let mut data = at.clone();
            if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
                d.extend(e.clone());
            }
            data
        };
        let item = match &open.kind {
            OpenKind::Message => {
                let text = &open.text;
                self.event(
                    out,
                    "response.output_text.done",
                    with(json!({"content_index": 0, "text": text, "logprobs": []})),
                );
                self.event(
                    out,
                    "response.content_part.done",
                    with(json!({"content_index": 0, "part": text_part(text)})),
                );
                message_item(&open.item_id, Some(text), "completed")
            }
            OpenKind::Reasoning => {
                let text = &open.text;
                self.event(
                    out,
                    "response.reasoning_summary_text.done",
                    with(json!({"summary_index": 0, "text": text})),
                );
                let part = json!({"type": "summary_text", "text": text});
                self.event(
                    out,
                    "response.reasoning_summary_part.done",
                    with(json!({"summary_index": 0, "part": part})),
                );
                reasoning_item(&open.item_id, Some(text))
            }
            OpenKind::Call { call_id, tool } => {
                let item = call_item(tool, &open.item_id, call_id, &open.text, "completed");
                if tool.custom {
                    let input = item["input"].clone();
                    self.event(
                        out,
                        "response.custom_tool_call_input.delta",
                        with(json!({"delta": input})),
                    );
                    self.event(
                        out,
                        "response.custom_tool_call_input.done",
                        with(json!({"input": input})),
                    );
                } else {
                    let arguments = item["arguments"].clone();
                    self.event(
                        out,
                        "response.function_call_arguments.done",
                        with(json!({"arguments": arguments})),
                    );
                }
                item
            }
        };
        self.event(
            out,
            "response.output_item.done",
            json!({"output_index": open.output_index, "item": item}),
        );
        self.output.insert(open.output_index, item);
    }

    fn finish(&mut self, out: &mut Vec<Frame>, completion: Completion) {
        for index in self.open.keys().copied().collect::<Vec<_>>() {
            self.close(out, index);
        }
        let (status, incomplete) = outcome(&completion);
        let usage = if completion.usage == Usage::default() {
            self.input_usage
        } else {
            completion.usage
        };
        let output = std::mem::take(&mut self.output).into_values().collect();
        let end = End {
            usage: Some(usage),
            incomplete,
            ..End::default()
        };
        let response = self.meta.response(status, output, end);
        self.kept = self.meta.kept(&response);
        let name = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.event(out, name, json!({"response": response}));
    }

    fn fail(&mut self, out: &mut Vec<Frame>, error: ApiError) {
        let code = match error.kind {
            ErrorKind::RateLimited => "rate_limit_exceeded",
            ErrorKind::InvalidRequest | ErrorKind::UpstreamInvalid => "invalid_prompt",
            _ => "server_error",
        };
        let output = std::mem::take(&mut self.output).into_values().collect();
        let end = End {
            error: Some(json!({"code": code, "message": error.message})),
            ..End::default()
        };
        let response = self.meta.response("failed", output, end);
        // A background response is read back by id, failed or not.
        if self.meta.background {
            self.kept = self.meta.kept(&response);
        }
        self.event(out, "response.failed", json!({"response": response}));
    }
}

impl EventEncoder for ResponseStream {
    fn encode(&mut self, event: JobEvent) -> Vec<Frame> {
        let mut out = Vec::new();
        if !self.started {
            self.start(&mut out);
        }
        match event {
            JobEvent::Started { usage, .. } => self.input_usage = usage,
            JobEvent::BlockStart { index, block } => self.open(&mut out, index, block),
            JobEvent::BlockDelta { index, delta } => match delta {
                Delta::Text { text } => self.delta(&mut out, index, text),
                Delta::Thinking { thinking } => self.delta(&mut out, index, thinking),
                Delta::InputJson { partial_json } => self.delta(&mut out, index, partial_json),
                Delta::Signature { .. } => {}
            },
            JobEvent::BlockStop { index } => self.close(&mut out, index),
            JobEvent::Finished(completion) => self.finish(&mut out, completion),
            JobEvent::Failed(error) => self.fail(&mut out, ApiError::from_job(error, DIALECT)),
        }
        out
    }

    /// `response.created` opens the stream even while the model is silent;
    /// later keep-alives are SSE comments, which clients skip.
    fn keepalive(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.started {
            out.push(Frame::Comment("keep-alive"));
        } else {
            self.start(&mut out);
        }
        out
    }

    fn take_kept(&mut self) -> Option<Kept> {
        self.kept.take()
    }
}

/// The events of a finished, stored response, rebuilt from the response
/// object (for streamed retrieval once its live events are forgotten):
/// `response.created`, `response.in_progress`, each output item added and
/// done, and the event of its final status.
pub fn replay(response: &Value) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut push = |name: &'static str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(frames.len());
        frames.push(Frame::Event(name, data));
    };
    let mut opening = response.clone();
    opening["status"] = json!("in_progress");
    opening["output"] = json!([]);
    opening["usage"] = Value::Null;
    push("response.created", json!({"response": opening}));
    push("response.in_progress", json!({"response": opening}));
    let items = response["output"].as_array().cloned().unwrap_or_default();
    for (index, item) in items.into_iter().enumerate() {
        push(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        );
        push(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
    }
    let last = match response["status"].as_str() {
        Some("completed") => "response.completed",
        Some("incomplete") => "response.incomplete",
        Some("cancelled") => "response.cancelled",
        _ => "response.failed",
    };
    push(last, json!({"response": response}));
    frames
}
