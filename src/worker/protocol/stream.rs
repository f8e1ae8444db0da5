//! The upstream's stream events, as the CLI relays them in `stream_event`
//! lines (docs/cli-protocol.md §3.2).

use serde::Deserialize;

use crate::job::{ContentBlock, Delta, StopReason, Usage};

/// A raw Messages API stream event, as the CLI relays it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiStreamEvent {
    MessageStart {
        message: StreamedMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<Usage>,
    },
    MessageStop,
    /// A keep-alive of the upstream's stream.
    Ping,
    /// An event this daemon does not know (yet): logged and ignored.
    #[serde(untagged)]
    Unknown(UnknownEvent),
}

/// What is known of an event of a kind this daemon does not know: its
/// name, for the log.
#[derive(Debug, Clone, Deserialize)]
pub struct UnknownEvent {
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamedMessage {
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: Usage,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(event: &str) -> ApiStreamEvent {
        serde_json::from_str(event).unwrap()
    }

    #[test]
    fn a_new_event_or_a_new_delta_reads_as_unknown_by_its_name() {
        assert!(matches!(parse(r#"{"type":"ping"}"#), ApiStreamEvent::Ping));
        for (event, kind) in [
            (r#"{"type":"brand_new_event","x":1}"#, "brand_new_event"),
            (
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
                "content_block_delta",
            ),
        ] {
            match parse(event) {
                ApiStreamEvent::Unknown(unknown) => assert_eq!(unknown.kind, kind),
                other => panic!("{other:?}"),
            }
        }
    }
}
