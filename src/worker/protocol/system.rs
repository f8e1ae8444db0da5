//! The CLI's `system` lines, by subtype (docs/cli-protocol.md §3.2).

use serde::Deserialize;

/// A `system` line. The CLI adds subtypes from one version to the next: a
/// subtype this daemon does not know reads as [`SystemMessage::Unknown`],
/// never as an unreadable line.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "subtype", rename_all = "snake_case")]
pub enum SystemMessage {
    /// Written at the start of every turn (and in a `/clear`'s answer).
    Init {
        #[serde(default)]
        session_id: Option<String>,
        #[serde(default)]
        model: Option<String>,
    },
    /// `requesting`: the CLI is calling the upstream.
    Status {
        #[serde(default)]
        status: Option<String>,
    },
    /// The upstream refused a call, and the CLI tries again after a delay.
    ApiRetry(ApiRetry),
    /// The CLI switched to another model (the upstream was overloaded).
    ModelFallback {
        #[serde(default)]
        original_model: Option<String>,
        #[serde(default)]
        fallback_model: Option<String>,
    },
    /// The CLI's estimate of the thinking tokens of the running call.
    ThinkingTokens {
        #[serde(default)]
        estimated_tokens: Option<u64>,
    },
    /// Where the CLI compacted a conversation (docs/cli-protocol.md §13).
    CompactBoundary {},
    /// A subtype this daemon does not know (yet): logged and ignored.
    #[serde(untagged)]
    Unknown(UnknownSubtype),
}

/// A `system/api_retry` line.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiRetry {
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub retry_delay_ms: Option<f64>,
    /// The upstream's HTTP status; `null` for a timeout or a broken
    /// connection.
    #[serde(default)]
    pub error_status: Option<u16>,
    /// `rate_limit`, `server_error`, `overloaded`, `authentication_failed`,
    /// `unknown`.
    #[serde(default)]
    pub error: Option<String>,
}

/// What is known of a line of a kind this daemon does not know: its name,
/// for the log.
#[derive(Debug, Clone, Deserialize)]
pub struct UnknownSubtype {
    #[serde(default)]
    pub subtype: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> SystemMessage {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn known_subtypes_are_typed_and_a_new_one_is_named() {
        let retry = parse(
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":1000,"error_status":429,"error":"rate_limit"}"#,
        );
        assert!(matches!(
            retry,
            SystemMessage::ApiRetry(ApiRetry {
                attempt: Some(1),
                error_status: Some(429),
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"type":"system","subtype":"compact_boundary","compact_metadata":{}}"#),
            SystemMessage::CompactBoundary {}
        ));
        match parse(r#"{"type":"system","subtype":"brand_new","x":[1]}"#) {
            SystemMessage::Unknown(unknown) => assert_eq!(unknown.subtype, "brand_new"),
            other => panic!("{other:?}"),
        }
    }
}
