//! One soak client's request: its body with the fault markers, sent as its
//! kind asks, and what came back judged.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::upstream::faults;
use crate::common::{parse_sse, sse_text, Rng};
use crate::mix::{Fault, Got, Kind, Outcome};
use serde_json::{json, Value};

pub(crate) fn words(n: u64) -> String {
    (0..n).map(|i| format!("w{i} ")).collect()
}

/// 529/503 as a rejection, anything else but `expected` as an error.
pub(crate) fn status_outcome(status: u16, expected: u16, body: &str) -> Option<Outcome> {
    match status {
        s if s == expected => None,
        529 | 503 => Some(Outcome::Rejected(status)),
        s => Some(Outcome::Errored(format!(
            "status {s}: {}",
            &body[..body.len().min(300)]
        ))),
    }
}

pub(crate) fn run_one(
    http: &reqwest::blocking::Client,
    base: &str,
    kind: Kind,
    rng: &mut Rng,
    fault_percent: u64,
) -> (Outcome, Option<Fault>, Option<Got>) {
    let started = Instant::now();
    let n = 1 + rng.below(30);
    let once = faults::once();
    let fault = match kind {
        Kind::Messages | Kind::Chat | Kind::Stream => Fault::pick(rng, fault_percent),
        _ => None,
    };
    let markers = fault
        .map(|f| f.markers(1 + rng.below(4)))
        .unwrap_or_default();
    let soak = format!("soak {once} {markers} [[words:{n}]]");
    let (outcome, text) = send_one(http, base, kind, rng, n, &soak, fault, started);
    let got = text.map(|text| Got { once, text });
    (outcome, fault, got)
}

/// One request of `kind` whose answering text is `soak`; the outcome, and
/// the text of an answer got whole.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_one(
    http: &reqwest::blocking::Client,
    base: &str,
    kind: Kind,
    rng: &mut Rng,
    n: u64,
    soak: &str,
    fault: Option<Fault>,
    started: Instant,
) -> (Outcome, Option<String>) {
    let outcome = |o| (o, None);
    let messages_url = format!("{base}/v1/messages");
    let ask = |text: String, stream: bool| {
        json!({"model": "claude-haiku-4-5", "max_tokens": 256, "stream": stream,
               "messages": [{"role": "user", "content": text}]})
    };
    let sent = match kind {
        Kind::Messages => http
            .post(&messages_url)
            .json(&ask(soak.to_string(), false))
            .send(),
        Kind::Chat => http
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "claude-haiku-4-5",
                          "messages": [{"role": "user", "content": soak}]}))
            .send(),
        Kind::Stream => http
            .post(&messages_url)
            .json(&ask(soak.to_string(), true))
            .send(),
        Kind::DropStream => http
            .post(&messages_url)
            .json(&ask("soak drop [[slow:50]]".into(), true))
            .send(),
        Kind::DropWaiting => http
            .post(&messages_url)
            .timeout(Duration::from_millis(200 + rng.below(600)))
            .json(&ask("soak wait [[slow:50]]".into(), false))
            .send(),
        Kind::Bad => {
            let (content_type, body): (&str, &[u8]) = match rng.below(4) {
                0 => ("application/json", b"{\"messages\":[{\"role\":\"user\""),
                1 => ("application/json", b"{\"model\":\"claude-haiku-4-5\"}"),
                2 => ("text/plain", b"{\"messages\":[]}"),
                _ => ("application/json", b"\xff\xfe not json"),
            };
            http.post(&messages_url)
                .header("content-type", content_type)
                .body(body.to_vec())
                .send()
        }
    };
    let mut res = match sent {
        Ok(res) => res,
        Err(e) if kind == Kind::DropWaiting && e.is_timeout() => {
            return outcome(Outcome::Abandoned)
        }
        Err(e) => return outcome(Outcome::Errored(format!("no response: {e}"))),
    };
    let status = res.status().as_u16();
    if fault == Some(Fault::Drop) {
        let body = res.text().unwrap_or_default();
        return outcome(match status {
            502 if body.contains("api_error") || body.contains("server_error") => {
                Outcome::UpstreamFailed
            }
            _ => status_outcome(status, 502, &body).unwrap_or(Outcome::UpstreamFailed),
        });
    }
    let (result, text) = match kind {
        Kind::Bad => {
            let body = res.text().unwrap_or_default();
            if matches!(status, 400 | 415) && body.contains("invalid_request_error") {
                (Outcome::Refused, None)
            } else {
                (
                    Outcome::Errored(format!("bad body got {status}: {body}")),
                    None,
                )
            }
        }
        Kind::Messages | Kind::Chat | Kind::DropWaiting => {
            let body = match res.text() {
                Ok(body) => body,
                Err(e) if kind == Kind::DropWaiting && e.is_timeout() => {
                    return outcome(Outcome::Abandoned)
                }
                Err(e) => return outcome(Outcome::Errored(format!("reading the body: {e}"))),
            };
            if let Some(o) = status_outcome(status, 200, &body) {
                return outcome(o);
            }
            let json: Value = serde_json::from_str(&body).unwrap_or_default();
            let text = match kind {
                Kind::Chat => &json["choices"][0]["message"]["content"],
                _ => &json["content"][0]["text"],
            };
            let ok = match kind {
                Kind::DropWaiting => text.as_str().is_some_and(|t| t.contains("word19")),
                _ => text.as_str() == Some(words(n).as_str()),
            };
            let text = text.as_str().map(str::to_string);
            if ok {
                (Outcome::Completed(started.elapsed()), text)
            } else {
                (Outcome::Errored(format!("wrong answer: {body}")), None)
            }
        }
        Kind::Stream => {
            let body = match res.text() {
                Ok(body) => body,
                Err(e) => return outcome(Outcome::Errored(format!("reading the stream: {e}"))),
            };
            if let Some(o) = status_outcome(status, 200, &body) {
                return outcome(o);
            }
            let events = parse_sse(&body);
            let last = events.last();
            let broke_off = last.is_some_and(|(name, data)| {
                name == "error" && data["error"]["type"] == "api_error"
            });
            if last.map(|(name, _)| name.as_str()) == Some("message_stop")
                && sse_text(&events) == words(n)
            {
                (
                    Outcome::Completed(started.elapsed()),
                    Some(sse_text(&events)),
                )
            } else if broke_off && fault.is_some() {
                (Outcome::Interrupted, None)
            } else {
                (Outcome::Errored(format!("incomplete stream: {body}")), None)
            }
        }
        Kind::DropStream => {
            if status != 200 {
                let body = res.text().unwrap_or_default();
                return outcome(status_outcome(status, 200, &body).unwrap_or(Outcome::Abandoned));
            }
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                match res.read(&mut buf) {
                    Ok(0) => {
                        return outcome(Outcome::Errored(format!(
                            "stream ended before a text delta: {}",
                            String::from_utf8_lossy(&seen)
                        )))
                    }
                    Ok(n) => {
                        seen.extend(&buf[..n]);
                        if String::from_utf8_lossy(&seen).contains("text_delta") {
                            drop(res);
                            return outcome(Outcome::Abandoned);
                        }
                    }
                    Err(e) => return outcome(Outcome::Errored(format!("reading the stream: {e}"))),
                }
            }
        }
    };
    (result, text)
}
