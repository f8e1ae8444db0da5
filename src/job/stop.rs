//! Why a turn that completed ended: the upstream API's `stop_reason`,
//! typed. Each dialect's rendering of it is in `api::stop_reason`, the
//! one place that maps it.

use serde::{Deserialize, Serialize};

/// The `stop_reason` of the Messages API (as the CLI reports it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    PauseTurn,
    Refusal,
    ModelContextWindowExceeded,
    /// One this daemon does not know yet, passed on as the API named it.
    #[serde(untagged)]
    Other(String),
}

impl StopReason {
    /// The API's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::EndTurn => "end_turn",
            Self::MaxTokens => "max_tokens",
            Self::StopSequence => "stop_sequence",
            Self::ToolUse => "tool_use",
            Self::PauseTurn => "pause_turn",
            Self::Refusal => "refusal",
            Self::ModelContextWindowExceeded => "model_context_window_exceeded",
            Self::Other(other) => other,
        }
    }
}

impl From<&str> for StopReason {
    fn from(name: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(name.to_string()))
            .unwrap_or_else(|_| Self::Other(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_and_write_back_as_the_api_spells_them() {
        for name in [
            "end_turn",
            "max_tokens",
            "stop_sequence",
            "tool_use",
            "pause_turn",
            "refusal",
            "model_context_window_exceeded",
            "something_new",
        ] {
            let reason: StopReason = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(reason.as_str(), name);
            assert_eq!(StopReason::from(name), reason);
            assert_eq!(serde_json::to_value(&reason).unwrap(), name);
        }
        assert_eq!(StopReason::from("tool_use"), StopReason::ToolUse);
        assert_eq!(
            StopReason::from("something_new"),
            StopReason::Other("something_new".into())
        );
    }
}
