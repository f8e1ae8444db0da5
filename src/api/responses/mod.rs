//! The OpenAI Responses API on the wire (`POST /v1/responses`): the
//! request, its translation into a [`JobSpec`](crate::job::JobSpec) (through the same
//! conversation model as the other dialects, see [`items`] and [`tools`]),
//! the response object and its event stream ([`output`]), and stored
//! responses ([`stored`]).
//!
//! Applied: `input`, `instructions`, `tools`, `tool_choice`,
//! `max_output_tokens`, `reasoning.effort` (thinking budget, as
//! `reasoning_effort` in Chat Completions), `text.format` (JSON modes, best
//! effort: the model is asked, not constrained), `stream`, `store`,
//! `previous_response_id`, `metadata` (stored and echoed). Accepted, not
//! applied (validated, echoed): sampling fields, `parallel_tool_calls`,
//! `include`, `prompt_cache_key`, `truncation`, `service_tier`,
//! `max_tool_calls`, `safety_identifier`, `user`.

pub mod items;
pub mod kept;
pub mod output;
pub mod stream;
pub mod tools;

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{ApiError, ErrorKind};
use super::models::resolve_model;
use super::openai::content::{json_instruction, thinking_budget};
use super::openai::{JsonSchemaFormat, ResponseFormat};
use super::{Codec, Context, Dialect, InvalidRequest, Parsed};
use crate::job::Completion;
use kept::{Kept, References, StoredResponse};
use output::ResponseMeta;
use stream::ResponseStream;

const DIALECT: Dialect = Dialect::Responses;

/// `POST /v1/responses`. Unknown fields are accepted: SDKs add new ones.
#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub input: Option<Input>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub reasoning: Option<Reasoning>,
    #[serde(default)]
    pub text: Option<Value>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub conversation: Option<Value>,
    #[serde(default)]
    pub prompt: Option<Value>,
    #[serde(default)]
    pub temperature: Option<Value>,
    #[serde(default)]
    pub top_p: Option<Value>,
    #[serde(default)]
    pub include: Option<Value>,
    #[serde(default)]
    pub prompt_cache_key: Option<Value>,
    #[serde(default)]
    pub truncation: Option<Value>,
    #[serde(default)]
    pub service_tier: Option<Value>,
    #[serde(default)]
    pub max_tool_calls: Option<u64>,
    #[serde(default)]
    pub safety_identifier: Option<String>,
    #[serde(default)]
    pub user: Option<Value>,
}

/// `input`: one user message as a string, or items.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<Value>),
}

/// `reasoning`: `effort` sets the thinking budget; `summary` is accepted.
#[derive(Debug, Default, Deserialize)]
pub struct Reasoning {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub summary: Option<Value>,
}

impl ResponsesRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidRequest> {
        let request: Self = super::parse_json(body)?;
        request.validate()?;
        Ok(request)
    }

    fn validate(&self) -> Result<(), InvalidRequest> {
        if self.background == Some(true) && self.store == Some(false) {
            return Err(InvalidRequest(
                "background: background responses must be stored (store: true)".into(),
            ));
        }
        if self.prompt.is_some() {
            return Err(InvalidRequest("prompt: not supported".into()));
        }
        if self.conversation.is_some() {
            if self.conversation_id().is_none() {
                return Err(InvalidRequest(
                    "conversation: must be a conversation id or {\"id\": …}".into(),
                ));
            }
            if self.previous_response_id.is_some() {
                return Err(InvalidRequest(
                    "conversation: cannot be used together with previous_response_id".into(),
                ));
            }
        }
        if let Some(tier) = &self.service_tier {
            if !matches!(
                tier.as_str(),
                Some("auto" | "default" | "flex" | "scale" | "priority")
            ) && !tier.is_null()
            {
                return Err(InvalidRequest(format!(
                    "service_tier: Invalid service_tier argument {tier}; use auto, default, flex, scale or priority"
                )));
            }
        }
        if let Some(truncation) = &self.truncation {
            if !matches!(truncation.as_str(), Some("auto" | "disabled")) && !truncation.is_null() {
                return Err(InvalidRequest(format!(
                    "truncation: must be `auto` or `disabled`, not {truncation}"
                )));
            }
        }
        if let Some(include) = &self.include {
            let strings = include
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string));
            if !strings && !include.is_null() {
                return Err(InvalidRequest(
                    "include: must be an array of strings".into(),
                ));
            }
        }
        if self.max_output_tokens == Some(0) {
            return Err(InvalidRequest(
                "max_output_tokens: must be at least 1".into(),
            ));
        }
        if let Some(effort) = self.effort() {
            if thinking_budget(effort).is_none() {
                return Err(InvalidRequest(format!(
                    "reasoning.effort: unknown value `{effort}`; use none, minimal, low, medium, high or xhigh"
                )));
            }
        }
        Ok(())
    }

    /// The conversation the response belongs to: `conversation` as an id
    /// or `{"id": …}`.
    pub fn conversation_id(&self) -> Option<&str> {
        match self.conversation.as_ref()? {
            Value::String(id) => Some(id.as_str()),
            other => other.get("id")?.as_str(),
        }
        .filter(|id| !id.is_empty())
    }

    fn effort(&self) -> Option<&str> {
        self.reasoning.as_ref().and_then(|r| r.effort.as_deref())
    }

    /// The stored state it names, for the route to look up before it is
    /// parsed into a job (see [`kept::Lookups`]).
    pub fn references(&self) -> References {
        let items = match &self.input {
            Some(Input::Items(items)) => items
                .iter()
                .filter(|i| i["type"] == "item_reference")
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        References {
            previous: self.previous_response_id.clone(),
            conversation: self.conversation_id().map(str::to_string),
            items,
        }
    }

    /// The request's own input items; a string input is one user message.
    pub fn input_items(&self) -> Vec<Value> {
        match &self.input {
            None => Vec::new(),
            Some(Input::Text(text)) => vec![json!({
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            })],
            Some(Input::Items(items)) => items.clone(),
        }
    }

    /// `text.format` in Chat Completions' terms.
    fn format(&self) -> Option<ResponseFormat> {
        let format = self.text.as_ref()?.get("format")?;
        match format.get("type")?.as_str()? {
            "json_object" => Some(ResponseFormat::JsonObject),
            "json_schema" => Some(ResponseFormat::JsonSchema {
                json_schema: JsonSchemaFormat {
                    name: format["name"].as_str().map(str::to_string),
                    description: format["description"].as_str().map(str::to_string),
                    schema: format.get("schema").cloned(),
                },
            }),
            _ => None,
        }
    }

    fn note_ignored(&self) {
        super::note_ignored_fields(&[
            ("temperature", self.temperature.is_some()),
            ("top_p", self.top_p.is_some()),
            (
                "parallel_tool_calls",
                self.parallel_tool_calls == Some(false),
            ),
            ("include", self.include.is_some()),
            ("prompt_cache_key", self.prompt_cache_key.is_some()),
            ("truncation", self.truncation.is_some()),
            ("service_tier", self.service_tier.is_some()),
            ("max_tool_calls", self.max_tool_calls.is_some()),
            ("safety_identifier", self.safety_identifier.is_some()),
            ("user", self.user.is_some()),
        ]);
    }
}

/// The Responses API as a [`Codec`].
pub struct Responses;

impl Codec for Responses {
    const DIALECT: Dialect = DIALECT;
    type Meta = ResponseMeta;
    type Stream = ResponseStream;

    fn parse(body: &[u8], ctx: &Context) -> Result<Parsed<ResponseMeta>, ApiError> {
        let request = ResponsesRequest::parse(body).map_err(|e| ApiError::invalid(e.0, DIALECT))?;
        Responses::translate(request, ctx)
    }

    fn body(meta: &ResponseMeta, answer: &Completion) -> Value {
        output::body(meta, answer)
    }

    fn kept(meta: &ResponseMeta, response: &Value) -> Option<Kept> {
        meta.kept(response)
    }

    fn stream(meta: ResponseMeta) -> ResponseStream {
        ResponseStream::new(meta)
    }
}

impl Responses {
    /// A parsed request into the job to run, with what the route looked up
    /// of the stored state it names (`ctx.stored`): no I/O.
    pub fn translate(
        request: ResponsesRequest,
        ctx: &Context,
    ) -> Result<Parsed<ResponseMeta>, ApiError> {
        let invalid = |e: InvalidRequest| ApiError::invalid(e.0, DIALECT);
        request.note_ignored();
        let previous = match &request.previous_response_id {
            Some(id) => Some(previous(ctx, id)?),
            None => None,
        };
        let conversation = match request.conversation_id() {
            Some(id) => Some((id.to_string(), conversation(ctx, id)?)),
            None => None,
        };
        let own = output::with_ids(resolve_references(ctx, request.input_items())?);
        let history = match (previous, &conversation) {
            (Some(p), _) => p.conversation(),
            (None, Some((_, items))) => items.clone(),
            (None, None) => Vec::new(),
        };
        let (defs, names) =
            tools::tool_defs(request.tools.as_deref().unwrap_or_default()).map_err(invalid)?;
        let skip = history.len();
        let mut all = history.clone();
        all.extend(own.iter().cloned());
        let translated = items::translate(&all, &names, |i| match i.checked_sub(skip) {
            Some(i) => format!("input[{i}]"),
            None => format!("previous_response_id ({i})"),
        })
        .map_err(invalid)?;
        if !translated
            .turns
            .iter()
            .any(|t| t.role == crate::prompt::Role::User)
        {
            return Err(invalid(InvalidRequest(
                "input: the conversation must contain a user message".into(),
            )));
        }
        let mut system: Vec<String> = request.instructions.iter().cloned().collect();
        system.extend(translated.system.iter().cloned());
        let format = request.format();
        system.extend(format.as_ref().and_then(json_instruction));
        let spec = super::Conversation {
            system: system.join("\n\n"),
            model: resolve_model(request.model.as_deref(), &ctx.default_model),
            turns: &translated.turns,
            thinking_budget: request.effort().and_then(thinking_budget).unwrap_or(0),
            max_tokens: request.max_output_tokens,
            tool_choice: tools::choice(request.tool_choice.as_ref(), &names),
            tools: &defs,
            stop_sequences: Vec::new(),
        }
        .into_spec(ctx);
        let store = (request.store.unwrap_or(true) || ctx.connection_local) && ctx.stored.can_store;
        let conversation = conversation.map(|(id, _)| id);
        let keep = (store || conversation.is_some()).then(|| output::Keep {
            store,
            scope: ctx.scope.clone(),
            input: own,
            context: history,
            conversation,
        });
        let mut meta =
            ResponseMeta::new(&request, &ctx.default_model, names, format.is_some(), keep);
        meta.id = ctx.new_id("resp_");
        Ok(Parsed {
            spec,
            stream: request.stream.unwrap_or(false),
            meta,
        })
    }
}

/// Input items with each `item_reference` replaced by the stored item it
/// names (the Vercel AI SDK sends earlier answers that way), as the route
/// looked it up.
fn resolve_references(ctx: &Context, items: Vec<Value>) -> Result<Vec<Value>, ApiError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            if item["type"] != "item_reference" {
                return Ok(item);
            }
            let id = item["id"].as_str().unwrap_or_default();
            ctx.stored.items.get(id).cloned().ok_or_else(|| {
                ApiError::invalid(
                    format!("input[{i}]: Item with id '{id}' not found."),
                    DIALECT,
                )
                .with_param("input")
            })
        })
        .collect()
}

/// The items of the conversation a request belongs to.
fn conversation(ctx: &Context, id: &str) -> Result<Vec<Value>, ApiError> {
    ctx.stored.conversation.clone().ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("Conversation with id '{id}' not found."),
            DIALECT,
        )
        .with_param("conversation")
    })
}

/// The stored response a request continues.
fn previous(ctx: &Context, id: &str) -> Result<StoredResponse, ApiError> {
    ctx.stored.previous.clone().ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!("Previous response with id '{id}' not found."),
            DIALECT,
        )
        .with_param("previous_response_id")
    })
}

#[cfg(test)]
mod tests;
