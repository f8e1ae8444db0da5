//! The requests the fake received, as a test reads them back.

use super::*;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub api_key: Option<String>,
    pub body: Value,
    /// When the handler had the whole body (benches split a turn's time
    /// with it). No test reads it.
    #[allow(dead_code)]
    pub received_at: std::time::Instant,
}

impl Recorded {
    /// Every piece of text the model was sent: system and all messages.
    pub fn all_text(&self) -> String {
        let mut out = String::new();
        collect_text(&self.body["system"], &mut out);
        collect_text(&self.body["messages"], &mut out);
        out
    }

    /// The texts of the system field's blocks.
    pub fn system_blocks(&self) -> Vec<String> {
        match &self.body["system"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_messages_call(&self) -> bool {
        self.path == "/v1/messages"
    }
}

pub(super) fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                if matches!(key.as_str(), "text" | "content" | "thinking") {
                    collect_text(v, out);
                }
            }
        }
        _ => {}
    }
}

pub(super) fn record(req: &HttpRequest, body: &Value, log: &Arc<Mutex<Vec<Recorded>>>) {
    log.lock().unwrap().push(Recorded {
        path: req.path().to_string(),
        api_key: req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: body.clone(),
        received_at: std::time::Instant::now(),
    });
}
