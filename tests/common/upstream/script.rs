//! What a request asks the fake model for: the markers in its last text,
//! the tool results it carries, the tool calls and words of the answer.

use super::*;

/// The text of the final text block of the last user message, system
/// reminders (the CLI's context notes, a client's system messages) aside.
pub(super) fn last_text(body: &Value) -> String {
    let Some(messages) = body["messages"].as_array() else {
        return String::new();
    };
    let Some(last) = messages.iter().rev().find(|m| m["role"] == "user") else {
        return String::new();
    };
    let text = match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .rev()
            .filter(|b| b["type"] == "text")
            .map(|b| b["text"].as_str().unwrap_or_default())
            .find(|text| !text.trim_start().starts_with("<system-reminder>"))
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    // Only the latest message of a rendered history carries instructions.
    match text.rfind("</conversation_history>") {
        Some(at) => text[at..].to_string(),
        None => text,
    }
}

pub(super) fn marker<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("[[{name}");
    let start = text.find(&open)? + open.len();
    let rest = &text[start..];
    let end = rest.find("]]")?;
    Some(rest[..end].trim_start_matches(':'))
}

pub(super) fn estimate_tokens(body: &Value) -> u64 {
    (body.to_string().len() / 4) as u64
}

/// A tool call the fake model makes: (id, API tool name, input).
pub(super) type Call = (String, String, Value);

pub(super) static NEXT_TOOL_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Every `[[name:…]]` marker's argument, in order.
fn markers(text: &str, name: &str) -> Vec<String> {
    let open = format!("[[{name}:");
    text.match_indices(&open)
        .filter_map(|(at, _)| {
            let rest = &text[at + open.len()..];
            rest.find("]]").map(|end| rest[..end].to_string())
        })
        .collect()
}

/// Tool results already answered, by tool_use id: the CLI merges
/// consecutive user messages, so older results reappear next to new ones.
static SEEN_RESULTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The text of the new `tool_result` blocks of the last user message.
fn tool_results(body: &Value) -> Option<Vec<String>> {
    let last = body["messages"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["role"] == "user")?;
    let blocks = last["content"].as_array()?;
    let mut seen = SEEN_RESULTS.lock().unwrap();
    let results: Vec<String> = blocks
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .filter(|b| {
            let id = b["tool_use_id"].as_str().unwrap_or_default().to_string();
            let new = !seen.contains(&id);
            seen.push(id);
            new
        })
        .map(|b| {
            let mut out = String::new();
            collect_text(&b["content"], &mut out);
            if b["is_error"] == true {
                out.insert_str(0, "ERROR ");
            }
            out.trim().to_string()
        })
        .collect();
    (!results.is_empty()).then_some(results)
}

/// Tool calls for the NAMEs, resolved against the tools the request offers
/// (the CLI prefixes them `mcp__<server>__`).
fn tool_calls(body: &Value, names: &[String]) -> Vec<Call> {
    let offered: Vec<String> = body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names
        .iter()
        .filter_map(|name| {
            let api_name = offered
                .iter()
                .find(|o| *o == name || o.ends_with(&format!("__{name}")))?
                .clone();
            let n = NEXT_TOOL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some((
                format!("toolu_fake_{n}"),
                api_name,
                json!({"query": format!("{name}-input")}),
            ))
        })
        .collect()
}

/// Calls from `NAME:JSON` markers, for tools the request offers.
fn explicit_calls(body: &Value, specs: &[String]) -> Vec<Call> {
    specs
        .iter()
        .filter_map(|spec| {
            let (name, input) = spec.split_once(':')?;
            let input: Value = serde_json::from_str(input).ok()?;
            let mut call = tool_calls(body, &[name.to_string()]).pop()?;
            call.2 = input;
            Some(call)
        })
        .collect()
}

/// Calls from `NAME:JSON` markers, whatever the request offers.
fn forced_calls(specs: &[String]) -> Vec<Call> {
    specs
        .iter()
        .filter_map(|spec| {
            let (name, input) = spec.split_once(':')?;
            let input: Value = serde_json::from_str(input).ok()?;
            let n = NEXT_TOOL_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some((format!("toolu_fake_{n}"), name.to_string(), input))
        })
        .collect()
}

pub(super) struct Script {
    pub(super) words: Vec<String>,
    pub(super) calls: Vec<Call>,
    pub(super) delay: Duration,
    pub(super) thinking: bool,
    pub(super) stop_reason: &'static str,
}

pub(super) fn script_for(body: &Value, text: &str) -> Script {
    let mut words: Vec<String> = format!("Hello! You said: {}", excerpt(text))
        .split_inclusive(' ')
        .map(str::to_string)
        .collect();
    let mut delay = Duration::ZERO;
    if let Some(ms) = marker(text, "slow") {
        delay = Duration::from_millis(ms.parse().unwrap_or(100));
        words = (0..20).map(|i| format!("word{i} ")).collect();
    }
    if let Some(n) = marker(text, "words") {
        words = (0..n.parse().unwrap_or(5))
            .map(|i| format!("w{i} "))
            .collect();
    }
    let mut calls = tool_calls(body, &markers(text, "tool"));
    calls.extend(explicit_calls(body, &markers(text, "call")));
    calls.extend(forced_calls(&markers(text, "force")));
    if let Some(results) = tool_results(body) {
        let again: Vec<String> = results.iter().flat_map(|r| markers(r, "tool")).collect();
        calls = tool_calls(body, &again);
        let explicit: Vec<String> = results.iter().flat_map(|r| markers(r, "call")).collect();
        calls.extend(explicit_calls(body, &explicit));
        words = format!("Tool results: {}", results.join(" | "))
            .split_inclusive(' ')
            .map(str::to_string)
            .collect();
    }
    let stop_reason = if !calls.is_empty() {
        words = match marker(text, "tools_only") {
            Some(_) => Vec::new(),
            None => vec!["Calling ".into(), "tools.".into()],
        };
        "tool_use"
    } else if marker(text, "max_tokens").is_some() {
        "max_tokens"
    } else {
        "end_turn"
    };
    Script {
        words,
        calls,
        delay,
        thinking: body["thinking"]["type"] == "enabled" || marker(text, "think").is_some(),
        stop_reason,
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > 80 {
        chars[chars.len() - 80..].iter().collect()
    } else {
        text.to_string()
    }
}
