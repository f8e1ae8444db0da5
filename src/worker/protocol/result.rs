//! The `result` line that ends every turn (docs/cli-protocol.md §3.2).

use serde::Deserialize;
use serde_json::Value;

use crate::job::{StopReason, Usage};

/// The `result` line that ends every turn (including `/clear`).
#[derive(Debug, Clone, Deserialize)]
pub struct ResultMessage {
    pub subtype: ResultSubtype,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default)]
    pub api_error_status: Option<u16>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub errors: Vec<Value>,
    #[serde(default)]
    pub terminal_reason: Option<String>,
    /// The CLI conversation's id; `/clear` answers with a new one.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// How a turn ended, as the CLI names it. An upstream failure is a
/// `Success` with `is_error` set (docs/cli-protocol.md §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultSubtype {
    Success,
    ErrorMaxTurns,
    ErrorMaxBudgetUsd,
    /// An interrupt, a denied tool and an interrupt, a failed resume.
    ErrorDuringExecution,
    ErrorMaxStructuredOutputRetries,
    /// One this daemon does not know (yet): an error like the others.
    #[serde(untagged)]
    Unknown(String),
}

impl ResultSubtype {
    /// The CLI's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Success => "success",
            Self::ErrorMaxTurns => "error_max_turns",
            Self::ErrorMaxBudgetUsd => "error_max_budget_usd",
            Self::ErrorDuringExecution => "error_during_execution",
            Self::ErrorMaxStructuredOutputRetries => "error_max_structured_output_retries",
            Self::Unknown(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtypes_read_as_the_cli_names_them() {
        for name in [
            "success",
            "error_max_turns",
            "error_max_budget_usd",
            "error_during_execution",
            "error_max_structured_output_retries",
            "error_brand_new",
        ] {
            let subtype: ResultSubtype = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(subtype.as_str(), name);
            assert_eq!(
                matches!(subtype, ResultSubtype::Unknown(_)),
                name == "error_brand_new"
            );
        }
    }
}
