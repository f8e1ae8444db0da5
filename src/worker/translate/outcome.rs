//! How a turn ended: the `result` line read as the job's last event, and
//! the usage it reports.

use super::TurnTranslator;
use crate::error::JobError;
use crate::job::{Completion, JobEvent, Usage};
use crate::worker::protocol::{ResultMessage, ResultSubtype};
use serde_json::Value;

impl TurnTranslator {
    /// The job ends here because the model called the caller's tools: the
    /// completion to report, with the usage of this job's upstream calls.
    pub fn pause_for_tools(&self) -> Completion {
        Completion {
            stop_reason: Some(crate::job::StopReason::ToolUse),
            usage: self.streamed_usage,
            ..Completion::default()
        }
    }

    /// The usage reported by this job so far plus what came before it.
    pub fn reported_usage(&self) -> Usage {
        add_usage(self.already_reported, self.streamed_usage)
    }

    pub(super) fn on_result(&mut self, result: &ResultMessage) -> JobEvent {
        if let Some(error) = result_error(result, self.auth_failed) {
            return JobEvent::Failed(error);
        }
        JobEvent::Finished(Completion {
            stop_reason: result
                .stop_reason
                .clone()
                .or_else(|| self.stop_reason.clone()),
            stop_sequence: self.stop_sequence.clone(),
            // The CLI's sum leaves non-streamed calls out; this job's own
            // count has them (and never a given-up call).
            usage: match self.unstreamed_call {
                true => self.streamed_usage,
                false => sub_usage(result.usage, self.already_reported),
            },
            // Filled in by the session's assembler, which sees what the
            // client got.
            content: Vec::new(),
        })
    }
}

pub(super) fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
    }
}

fn sub_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens.saturating_sub(b.input_tokens),
        output_tokens: a.output_tokens.saturating_sub(b.output_tokens),
        cache_creation_input_tokens: a
            .cache_creation_input_tokens
            .saturating_sub(b.cache_creation_input_tokens),
        cache_read_input_tokens: a
            .cache_read_input_tokens
            .saturating_sub(b.cache_read_input_tokens),
    }
}

/// The error a `result` line reports, if it reports one. `auth_failed`:
/// the turn's made-up assistant message said the credentials failed, which
/// is the only sign of a CLI that is not logged in at all (no API status).
pub fn result_error(result: &ResultMessage, auth_failed: bool) -> Option<JobError> {
    let succeeded = result.subtype == ResultSubtype::Success;
    if !result.is_error && succeeded {
        return None;
    }
    if let ResultSubtype::Unknown(name) = &result.subtype {
        log::info!("the CLI ended a turn with a new result subtype: {name}");
    }
    let text = result
        .result
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            result
                .errors
                .iter()
                .filter_map(Value::as_str)
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| result.subtype.as_str().to_string());
    if auth_failed || matches!(result.api_error_status, Some(401 | 403)) {
        return Some(JobError::Credentials(text));
    }
    // No status and no timeout: the connection failed or broke off
    // ("Unable to connect to API (ECONNRESET)", "Connection closed
    // mid-response"); a timeout says "Request timed out".
    if result.api_error_status.is_none()
        && succeeded
        && !text.to_ascii_lowercase().contains("timed out")
    {
        return Some(JobError::UpstreamBroken(text));
    }
    if result.api_error_status.is_some() || succeeded {
        return Some(JobError::Upstream {
            status: result.api_error_status,
            message: text,
        });
    }
    Some(JobError::TurnFailed(match &result.terminal_reason {
        Some(reason) => format!("{} ({reason})", result.subtype.as_str()),
        None => result.subtype.as_str().to_string(),
    }))
}
