//! The fake prints the shapes of the recorded real sessions, in the fields
//! the daemon reads.

use super::*;

/// Every key path of `value` with the JSON type found there (array items
/// merged under `[]`), e.g. `message.usage.input_tokens: number`.
fn shape(value: &Value) -> std::collections::BTreeSet<String> {
    fn walk(value: &Value, path: &str, out: &mut std::collections::BTreeSet<String>) {
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{path}[]"), out);
                }
                "array"
            }
            Value::Object(map) => {
                for (key, v) in map {
                    let sub = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(v, &sub, out);
                }
                "object"
            }
        };
        if !path.is_empty() {
            out.insert(format!("{path}: {kind}"));
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// The lines with each run of deltas cut to its first (texts differ).
fn collapsed(lines: &[Value]) -> Vec<&Value> {
    let mut out: Vec<&Value> = Vec::new();
    for line in lines {
        let delta = |l: &Value| l["event"]["type"] == "content_block_delta";
        if delta(line) && out.last().is_some_and(|l| delta(l)) {
            continue;
        }
        out.push(line);
    }
    out
}

/// The key paths of CLI output that the daemon's parser reads.
const READ_BY_THE_DAEMON: &[&str] = &[
    "subtype",
    "session_id",
    "model",
    "is_error",
    "api_error_status",
    "num_turns",
    "result",
    "stop_reason",
    "terminal_reason",
    "usage.input_tokens",
    "usage.output_tokens",
    "response.subtype",
    "response.request_id",
    "event.type",
    "event.index",
    "event.delta.type",
    "event.delta.text",
    "event.delta.stop_reason",
    "event.content_block.type",
    "event.message.id",
    "event.message.model",
    "event.message.usage.input_tokens",
    "event.usage.output_tokens",
    "message.id",
    "message.model",
    "message.role",
    "message.content",
    "message.content[].type",
    "message.content[].text",
    "message.usage.input_tokens",
];
/// The recorded exchange of `fixture`: (stdin line, stdout lines after it).
fn recorded(fixture: &str) -> Vec<(Value, Vec<Value>)> {
    let path = format!(
        "{}/tests/fixtures/cli-transcripts/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut out: Vec<(Value, Vec<Value>)> = Vec::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        if let Some(sent) = line.strip_prefix(">> ") {
            out.push((serde_json::from_str(sent).unwrap(), Vec::new()));
        } else if let Some(printed) = line.strip_prefix("<< ") {
            let last = out.last_mut().expect("a line sent first");
            last.1.push(serde_json::from_str(printed).unwrap());
        }
    }
    out
}

#[test]
fn the_fake_prints_the_recorded_shapes() {
    // Each recorded exchange, replayed to the fake; a prompt gets the
    // marker that makes the fake do what the real upstream was scripted to.
    // (05, thinking, is not compared: the fake does not think.)
    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("01-turn-probe-init-clear.jsonl", &[]),
        (
            "02-upstream-error-400.jsonl",
            &[("please fail with 400", "[[error:400]] please fail with 400")],
        ),
        (
            "04-interrupt-mid-stream.jsonl",
            &[("take your time", "[[slow:200]] take your time")],
        ),
    ];
    let mut differences = Vec::new();
    for (fixture, markers) in cases {
        let mut fake = Fake::spawn();
        for (i, (mut sent, real)) in recorded(fixture).into_iter().enumerate() {
            if let Some(text) = sent["message"]["content"].as_str() {
                if let Some((_, marked)) = markers.iter().find(|(t, _)| *t == text) {
                    sent["message"]["content"] = json!(marked);
                }
            }
            if sent["request"]["subtype"] == "interrupt" {
                // Recorded after three deltas; the fake has sent its first.
                fake.until(|l| l["event"]["type"] == "content_block_delta");
            }
            fake.send(sent.clone());
            let Some(last_kind) = kinds(&real).last().cloned() else {
                continue;
            };
            let printed = fake.until(|l| kinds(std::slice::from_ref(l))[0] == last_kind);
            let (real, printed) = (collapsed(&real), collapsed(&printed));
            let kinds_of =
                |lines: &[&Value]| kinds(&lines.iter().map(|l| (*l).clone()).collect::<Vec<_>>());
            if kinds_of(&real) != kinds_of(&printed) {
                differences.push(format!(
                    "{fixture} #{i} lines:\n  real {:?}\n  fake {:?}",
                    kinds_of(&real),
                    kinds_of(&printed)
                ));
                continue;
            }
            for (r, f) in real.iter().zip(&printed) {
                let fake_shape = shape(f);
                let missing: Vec<String> = shape(r)
                    .into_iter()
                    .filter(|p| {
                        let path = p.split(": ").next().unwrap_or_default();
                        READ_BY_THE_DAEMON.contains(&path)
                    })
                    .filter(|p| !fake_shape.contains(p))
                    .collect();
                if !missing.is_empty() {
                    differences.push(format!(
                        "{fixture} #{i} {}: the fake lacks {missing:?}",
                        kinds(std::slice::from_ref(*f))[0]
                    ));
                }
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
