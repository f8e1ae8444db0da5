//! Content shared by the two OpenAI dialects (Chat Completions and
//! Responses): images, PDFs, tool-call arguments, JSON output modes and
//! reasoning effort, as Anthropic content and job settings.

use serde_json::{json, Value};

use super::ResponseFormat;
use crate::api::InvalidRequest;

/// The image types the Messages API accepts.
pub(crate) const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The extended-thinking budget for a `reasoning_effort`; `None` for a
/// value OpenAI does not define. Without one, thinking is off, as for a
/// non-reasoning Chat Completions model.
pub(crate) fn thinking_budget(effort: &str) -> Option<u32> {
    match effort {
        "none" | "minimal" => Some(0),
        "low" => Some(1_024),
        "medium" => Some(8_192),
        "high" => Some(24_576),
        // The CLI's own default budget.
        "xhigh" => Some(31_999),
        _ => None,
    }
}

/// The system-prompt instruction that stands in for OpenAI's JSON modes.
/// Best effort: the model is asked, not constrained, to answer in JSON.
pub(crate) fn json_instruction(format: &ResponseFormat) -> Option<String> {
    match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(crate::api::json_instruction(None, None, None)),
        ResponseFormat::JsonSchema { json_schema } => Some(crate::api::json_instruction(
            json_schema.schema.as_ref(),
            json_schema.name.as_deref(),
            json_schema.description.as_deref(),
        )),
    }
}

/// A text block.
pub(crate) fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// The refusal of a content part the Messages API cannot carry: audio, or a
/// type neither OpenAI dialect defines.
pub(crate) fn unsupported_part(kind: &str, at: &str) -> InvalidRequest {
    InvalidRequest(match kind {
        "input_audio" => format!("{at}.type: audio input is not supported"),
        other => format!("{at}.type: unsupported content part type `{other}`"),
    })
}

/// A `data:` URL split into media type and base64 payload.
pub(crate) fn parse_data_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url.strip_prefix("data:").unwrap_or(url);
    let Some((header, data)) = rest.split_once(',') else {
        return Err("a data URL needs a `,` before its payload".into());
    };
    let Some(media_type) = header.strip_suffix(";base64") else {
        return Err("only base64 data URLs are supported (`data:<type>;base64,…`)".into());
    };
    Ok((media_type.trim(), data))
}

/// An image part's URL as an Anthropic image block.
pub(crate) fn image_block(url: &str) -> Result<Value, String> {
    let url = url.trim();
    if url.starts_with("data:") {
        let (media_type, data) = parse_data_url(url)?;
        let media_type = media_type.to_ascii_lowercase();
        let media_type = if media_type == "image/jpg" {
            "image/jpeg".to_string()
        } else {
            media_type
        };
        if !IMAGE_TYPES.contains(&media_type.as_str()) {
            return Err(format!(
                "unsupported image type `{media_type}`; use one of {}",
                IMAGE_TYPES.join(", ")
            ));
        }
        if data.is_empty() {
            return Err("the data URL has no image data".into());
        }
        Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}),
        )
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
    } else {
        Err("expected a `data:` URL or an http(s) URL".into())
    }
}

/// Tool-call arguments as JSON; text that is not JSON is kept as a string
/// rather than refused, since it only ever reaches the prompt.
pub(crate) fn parse_arguments(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()))
}

/// An inline PDF (a `data:application/pdf;base64,…` URL) as an Anthropic
/// document block titled `filename`; `at` names the field for errors.
pub(crate) fn pdf_block(
    data: &str,
    filename: Option<&str>,
    at: &str,
) -> Result<Value, InvalidRequest> {
    let (media_type, payload) =
        parse_data_url(data).map_err(|m| InvalidRequest(format!("{at}: {m}")))?;
    if media_type != "application/pdf" {
        return Err(InvalidRequest(format!(
            "{at}: unsupported file type `{media_type}`; only application/pdf is supported"
        )));
    }
    let mut block = json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": payload}});
    if let Some(name) = filename {
        block["title"] = Value::String(name.to_string());
    }
    Ok(block)
}
