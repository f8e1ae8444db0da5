//! Stored batches as the Message Batches API shows them: the
//! `message_batch` object and the lines of a results file. Here, not in
//! `api::batches`, because they read the batch store's records, and the
//! pure `api` layer must not depend on the `batches` feature that runs
//! through it.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::batches::store::{Batch, ResultRow};

/// A stored time (Unix milliseconds) as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// `processing_status`.
pub fn processing_status(batch: &Batch) -> &'static str {
    match (batch.ended_at, batch.cancel_initiated_at) {
        (Some(_), _) => "ended",
        (None, Some(_)) => "canceling",
        (None, None) => "in_progress",
    }
}

/// The `message_batch` object. `base_url` is the daemon's address as the
/// client reaches it (`results_url` is absolute: the SDKs fetch it as is).
///
/// As Anthropic documents, requests count as `processing` until the whole
/// batch has ended; only then do they move to their outcomes.
pub fn batch_object(batch: &Batch, base_url: &str) -> Value {
    let ended = batch.ended_at.is_some();
    let c = &batch.counts;
    let counts = if ended {
        json!({"processing": 0, "succeeded": c.succeeded, "errored": c.errored,
               "canceled": c.canceled, "expired": c.expired})
    } else {
        json!({"processing": c.total, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    };
    json!({
        "id": batch.id,
        "type": "message_batch",
        "processing_status": processing_status(batch),
        "request_counts": counts,
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.expires_at),
        "ended_at": batch.ended_at.map(rfc3339),
        "cancel_initiated_at": batch.cancel_initiated_at.map(rfc3339),
        "archived_at": batch.archived_at.map(rfc3339),
        "results_url": ended.then(|| results_url(base_url, &batch.id)),
    })
}

/// Where a batch's results are served.
pub fn results_url(base_url: &str, id: &str) -> String {
    format!(
        "{}/v1/messages/batches/{id}/results",
        base_url.trim_end_matches('/')
    )
}

/// One line of the results file: `{"custom_id", "result"}` and a newline.
pub fn result_line(row: &ResultRow) -> String {
    let result = match (&row.result, row.state.as_str()) {
        (Some(stored), _) => stored.clone(),
        (None, state) => json!({ "type": state }).to_string(),
    };
    let custom_id = Value::String(row.custom_id.clone());
    format!("{{\"custom_id\":{custom_id},\"result\":{result}}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::batches::{errored, succeeded};
    use crate::batches::store::Counts;

    fn batch(ended: Option<i64>, cancel: Option<i64>) -> Batch {
        Batch {
            seq: 1,
            id: "msgbatch_x".into(),
            created_at: 1_700_000_000_123,
            expires_at: 1_700_086_400_123,
            cancel_initiated_at: cancel,
            ended_at: ended,
            archived_at: None,
            counts: Counts {
                total: 4,
                succeeded: 2,
                errored: 1,
                canceled: 1,
                expired: 0,
            },
        }
    }

    #[test]
    fn the_batch_object_has_every_field() {
        let running = batch_object(&batch(None, None), "http://h:1/");
        assert_eq!(running["type"], "message_batch");
        assert_eq!(running["processing_status"], "in_progress");
        assert_eq!(running["created_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(running["expires_at"], "2023-11-15T22:13:20.123Z");
        assert_eq!(running["request_counts"]["processing"], 4);
        assert_eq!(running["request_counts"]["succeeded"], 0);
        for null in [
            "ended_at",
            "cancel_initiated_at",
            "archived_at",
            "results_url",
        ] {
            assert!(running[null].is_null(), "{null}: {running}");
        }
        let canceling = batch_object(&batch(None, Some(1_700_000_001_000)), "http://h:1");
        assert_eq!(canceling["processing_status"], "canceling");
        assert_eq!(canceling["cancel_initiated_at"], "2023-11-14T22:13:21.000Z");
        let ended = batch_object(&batch(Some(1_700_000_002_000), None), "http://h:1/");
        assert_eq!(ended["processing_status"], "ended");
        assert_eq!(
            ended["request_counts"],
            json!({"processing": 0, "succeeded": 2, "errored": 1, "canceled": 1, "expired": 0})
        );
        assert_eq!(
            ended["results_url"],
            "http://h:1/v1/messages/batches/msgbatch_x/results"
        );
    }

    #[test]
    fn result_lines_carry_the_custom_id_and_the_result() {
        let row = |state: &str, result: Option<String>| ResultRow {
            idx: 0,
            custom_id: "q\"1".into(),
            state: state.into(),
            result,
        };
        let line = result_line(&row("succeeded", Some(succeeded(&json!({"id": "msg_1"})))));
        assert!(line.ends_with('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["custom_id"], "q\"1");
        assert_eq!(
            v["result"],
            json!({"type": "succeeded", "message": {"id": "msg_1"}})
        );
        let v: Value = serde_json::from_str(&result_line(&row("canceled", None))).unwrap();
        assert_eq!(v["result"], json!({"type": "canceled"}));
        let e = json!({"type": "error", "error": {"type": "api_error", "message": "m"}});
        let v: Value =
            serde_json::from_str(&result_line(&row("errored", Some(errored(&e))))).unwrap();
        assert_eq!(v["result"]["error"], e);
    }
}
