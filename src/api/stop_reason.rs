//! How each dialect says why a turn ended: the one place a
//! [`StopReason`] is mapped.

use serde_json::Value;

use crate::job::StopReason;

/// Anthropic's `stop_reason`: the reason as the API named it (`null` for
/// none).
pub fn anthropic(stop: Option<&StopReason>) -> Value {
    stop.map_or(Value::Null, |s| Value::String(s.as_str().to_string()))
}

/// OpenAI Chat Completions' `finish_reason`.
pub fn chat_completions(stop: Option<&StopReason>) -> &'static str {
    match stop {
        Some(StopReason::MaxTokens | StopReason::ModelContextWindowExceeded) => "length",
        Some(StopReason::ToolUse) => "tool_calls",
        Some(StopReason::Refusal) => "content_filter",
        // end_turn, stop_sequence, pause_turn, none or anything new.
        _ => "stop",
    }
}

/// The Responses API's `status` and `incomplete_details.reason`.
pub fn responses(stop: Option<&StopReason>) -> (&'static str, Option<&'static str>) {
    match stop {
        Some(StopReason::MaxTokens | StopReason::ModelContextWindowExceeded) => {
            ("incomplete", Some("max_output_tokens"))
        }
        Some(StopReason::Refusal) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dialect_maps_every_reason() {
        let table = [
            ("end_turn", "stop", ("completed", None)),
            ("stop_sequence", "stop", ("completed", None)),
            ("pause_turn", "stop", ("completed", None)),
            ("tool_use", "tool_calls", ("completed", None)),
            (
                "max_tokens",
                "length",
                ("incomplete", Some("max_output_tokens")),
            ),
            (
                "model_context_window_exceeded",
                "length",
                ("incomplete", Some("max_output_tokens")),
            ),
            (
                "refusal",
                "content_filter",
                ("incomplete", Some("content_filter")),
            ),
            ("something_new", "stop", ("completed", None)),
        ];
        for (name, finish, outcome) in table {
            let stop = StopReason::from(name);
            assert_eq!(anthropic(Some(&stop)), name);
            assert_eq!(chat_completions(Some(&stop)), finish, "{name}");
            assert_eq!(responses(Some(&stop)), outcome, "{name}");
        }
        assert_eq!(anthropic(None), Value::Null);
        assert_eq!(chat_completions(None), "stop");
        assert_eq!(responses(None), ("completed", None));
    }
}
