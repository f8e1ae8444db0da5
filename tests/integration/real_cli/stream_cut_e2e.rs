//! An upstream stream interrupted mid-way (issue 23, item 1): the real CLI
//! repeats the call and settles on the repeat's answer; the client must get
//! exactly that answer, in every dialect, streaming and not.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::upstream::{faults, Answer};
use crate::common::{client, parse_sse, Daemon, DaemonConfig, FakeUpstream};
use serde_json::{json, Value};

/// Fails the case with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// Runs the real CLI (as workers run it) on one prompt against `upstream`
/// and returns the exchange in the fixtures' form: `>> ` the stdin line,
/// `<< ` each stdout line up to the `result`, working directory neutral.
fn cli_transcript(upstream: &FakeUpstream, prompt: &str) -> Vec<String> {
    let config = tempfile::tempdir().unwrap();
    let mut child = Command::new(crate::common::real_cli())
        .args(claude_pool::worker::spawn::LEAN_FLAGS)
        .args([
            "--input-format",
            "stream-json",
            "--include-partial-messages",
        ])
        .env("ANTHROPIC_BASE_URL", &upstream.url)
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("CLAUDE_CONFIG_DIR", config.path())
        .current_dir(config.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn claude");
    let line = serde_json::json!({"type": "user", "message": {"role": "user", "content": prompt},
        "parent_tool_use_id": null, "session_id": ""});
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{line}").unwrap();
    let mut lines = vec![format!(">> {line}")];
    let deadline = Instant::now() + Duration::from_secs(120);
    let neutral = config.path().display().to_string();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.starts_with(r#"{"type":"result""#);
        lines.push(format!(
            "<< {}",
            line.replace(&neutral, "/var/lib/claude-pool/work")
        ));
        if done || Instant::now() > deadline {
            break;
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// What the real CLI prints when the upstream's stream breaks: the source
/// of `docs/cli-protocol.md` §12, "Upstream stream interrupted mid-way", and of
/// the `stream-cut-*` fixtures. With `TRANSCRIPT_DIR` set, each case is written
/// there as `<name>.jsonl`; otherwise printed.
#[test]
#[ignore = "records what the real CLI prints; run by hand"]
fn record_cli_transcripts_of_broken_streams() {
    let upstream = FakeUpstream::start();
    let tool = r#"[[force:lookup:{"q":"abcdefgh"}]]"#;
    for (name, prompt) in [
        ("text-cut", format!("text cut {} [[cut:3]]", faults::once())),
        (
            "error-event",
            format!("error event {} [[sse_error:3]]", faults::once()),
        ),
        (
            "same-id",
            format!("same id {} [[reuse_id]] [[cut:3]]", faults::once()),
        ),
        (
            "tool-cut",
            format!(
                "tool cut {} [[cut:1]] [[tools_only]] {tool}",
                faults::once()
            ),
        ),
        (
            "cut-after-a-block",
            format!("cut after a block {} [[cut:3]] [[think]]", faults::once()),
        ),
        ("drop", "drop [[drop]]".to_string()),
    ] {
        let lines = cli_transcript(&upstream, &prompt).join("\n") + "\n";
        match std::env::var("TRANSCRIPT_DIR") {
            Ok(dir) => std::fs::write(format!("{dir}/{name}.jsonl"), lines).unwrap(),
            Err(_) => println!("===== {name}\n{lines}"),
        }
    }
}

/// One of the three dialects, as a client speaks it.
#[derive(Clone, Copy, Debug)]
enum Api {
    Messages,
    Chat,
    Responses,
}

impl Api {
    fn path(self) -> &'static str {
        match self {
            Api::Messages => "/v1/messages",
            Api::Chat => "/v1/chat/completions",
            Api::Responses => "/v1/responses",
        }
    }

    /// A request for `text`, offering the tool `lookup` if `tools`.
    fn request(self, text: &str, tools: bool, stream: bool) -> Value {
        let schema = json!({"type": "object", "properties": {"query": {"type": "string"}}});
        let mut body = match self {
            Api::Messages => json!({"model": "claude-haiku-4-5", "max_tokens": 200,
                "messages": [{"role": "user", "content": text}]}),
            Api::Chat => json!({"model": "claude-haiku-4-5",
                "messages": [{"role": "user", "content": text}]}),
            Api::Responses => json!({"model": "claude-haiku-4-5", "input": text, "store": false}),
        };
        if tools {
            body["tools"] = match self {
                Api::Messages => {
                    json!([{"name": "lookup", "description": "Looks up", "input_schema": schema}])
                }
                Api::Chat => {
                    json!([{"type": "function", "function": {"name": "lookup", "description": "Looks up", "parameters": schema}}])
                }
                Api::Responses => {
                    json!([{"type": "function", "name": "lookup", "description": "Looks up", "parameters": schema}])
                }
            };
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
    }

    /// The text of a whole answer.
    fn text(self, reply: &Value) -> String {
        let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
        match self {
            Api::Messages => items(&reply["content"])
                .iter()
                .filter(|b| b["type"] == "text")
                .map(|b| b["text"].as_str().unwrap().to_string())
                .collect(),
            Api::Chat => reply["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Api::Responses => items(&reply["output"])
                .iter()
                .filter(|i| i["type"] == "message")
                .flat_map(|i| items(&i["content"]))
                .filter_map(|c| c["text"].as_str().map(str::to_string))
                .collect(),
        }
    }

    /// The number of text blocks (message items) of a whole answer.
    fn text_parts(self, reply: &Value) -> usize {
        let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
        match self {
            Api::Messages => items(&reply["content"])
                .iter()
                .filter(|b| b["type"] == "text")
                .count(),
            Api::Chat => usize::from(reply["choices"][0]["message"]["content"].is_string()),
            Api::Responses => items(&reply["output"])
                .iter()
                .filter(|i| i["type"] == "message")
                .count(),
        }
    }

    /// The tool calls of a whole answer: (id, arguments).
    fn tool_calls(self, reply: &Value) -> Vec<(String, Value)> {
        let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let parse =
            |s: &Value| serde_json::from_str(s.as_str().unwrap_or("null")).unwrap_or(Value::Null);
        match self {
            Api::Messages => items(&reply["content"])
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| (b["id"].as_str().unwrap().to_string(), b["input"].clone()))
                .collect(),
            Api::Chat => items(&reply["choices"][0]["message"]["tool_calls"])
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap().to_string(),
                        parse(&c["function"]["arguments"]),
                    )
                })
                .collect(),
            Api::Responses => items(&reply["output"])
                .iter()
                .filter(|i| i["type"] == "function_call")
                .map(|i| {
                    (
                        i["call_id"].as_str().unwrap().to_string(),
                        parse(&i["arguments"]),
                    )
                })
                .collect(),
        }
    }

    /// (input, output) tokens of a whole answer.
    fn usage(self, reply: &Value) -> (u64, u64) {
        let n = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
        match self {
            Api::Messages => (
                n(&reply["usage"]["input_tokens"]),
                n(&reply["usage"]["output_tokens"]),
            ),
            Api::Chat => (
                n(&reply["usage"]["prompt_tokens"]),
                n(&reply["usage"]["completion_tokens"]),
            ),
            Api::Responses => (
                n(&reply["usage"]["input_tokens"]),
                n(&reply["usage"]["output_tokens"]),
            ),
        }
    }

    /// The follow-up request answering the tool call `id`.
    fn tool_result(self, request: &Value, reply: &Value, id: &str) -> Value {
        let mut next = request.clone();
        match self {
            Api::Messages => {
                let messages = next["messages"].as_array_mut().unwrap();
                messages.push(json!({"role": "assistant", "content": reply["content"]}));
                messages.push(json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": "sunny"}]}));
            }
            Api::Chat => {
                let messages = next["messages"].as_array_mut().unwrap();
                messages.push(reply["choices"][0]["message"].clone());
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": "sunny"}));
            }
            Api::Responses => {
                let mut input = vec![json!({"role": "user", "content": request["input"]})];
                input.extend(reply["output"].as_array().unwrap().iter().cloned());
                input.push(
                    json!({"type": "function_call_output", "call_id": id, "output": "sunny"}),
                );
                next["input"] = Value::Array(input);
            }
        }
        next
    }

    /// Whether a stream ended as a success, or with the dialect's error.
    fn stream_end(self, events: &[(String, Value)]) -> Result<StreamEnd, String> {
        let failed = events.iter().any(|(name, data)| match self {
            Api::Messages => name == "error",
            Api::Chat => data.get("error").is_some(),
            Api::Responses => name == "response.failed",
        });
        let completed = events.iter().any(|(name, data)| match self {
            Api::Messages => name == "message_stop",
            Api::Chat => data["choices"][0]["finish_reason"].is_string(),
            Api::Responses => name == "response.completed",
        });
        match (failed, completed) {
            (true, false) => Ok(StreamEnd::Failed),
            (false, true) => Ok(StreamEnd::Completed),
            other => Err(format!(
                "failed and completed, or neither: {other:?} {events:?}"
            )),
        }
    }

    /// The text deltas of a stream.
    fn stream_text(self, events: &[(String, Value)]) -> String {
        events
            .iter()
            .filter_map(|(name, data)| match self {
                Api::Messages => data["delta"]["text"].as_str(),
                Api::Chat => data["choices"][0]["delta"]["content"].as_str(),
                Api::Responses => (name == "response.output_text.delta")
                    .then(|| data["delta"].as_str())
                    .flatten(),
            })
            .collect()
    }

    /// The error type of a failed stream.
    fn stream_error_type(self, events: &[(String, Value)]) -> String {
        let (_, data) = events.last().unwrap();
        match self {
            Api::Messages => data["error"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Api::Chat => data["error"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Api::Responses => data["response"]["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

#[derive(Debug, PartialEq)]
enum StreamEnd {
    Completed,
    Failed,
}

fn post(daemon: &Daemon, api: Api, body: &Value) -> Result<Value, String> {
    let res = client().post(daemon.url(api.path())).json(body).send();
    let res = res.map_err(|e| e.to_string())?;
    let status = res.status();
    let reply: Value = res.json().map_err(|e| e.to_string())?;
    ensure!(status == 200, "status {status}: {reply}");
    Ok(reply)
}

fn post_stream(daemon: &Daemon, api: Api, body: &Value) -> Result<Vec<(String, Value)>, String> {
    let res = client().post(daemon.url(api.path())).json(body).send();
    let res = res.map_err(|e| e.to_string())?;
    ensure!(res.status() == 200, "status {}", res.status());
    let text = res.text().map_err(|e| e.to_string())?;
    Ok(parse_sse(&text)
        .into_iter()
        .filter(|(_, data)| !data.is_string()) // [DONE]
        .collect())
}

fn final_answer(upstream: &FakeUpstream, once: &str) -> Result<Answer, String> {
    upstream
        .final_answer(once)
        .ok_or_else(|| format!("no whole answer for {once}: {:?}", upstream.answers()))
}

/// The client's id for the CLI's tool_use id `cli`: `toolu_<node>_<rest>`.
fn is_client_id_of(client: &str, cli: &str) -> bool {
    client.ends_with(&format!("_{}", cli.strip_prefix("toolu_").unwrap()))
}

/// A whole text answer: only the repeat's text, in one part, with the
/// repeat's usage; `reuse_id`: the repeat has the broken call's id.
fn whole_text(api: Api, daemon: &Daemon, upstream: &FakeUpstream, reuse_id: bool) -> Case {
    let once = faults::once();
    let reuse = if reuse_id { "[[reuse_id]]" } else { "" };
    let request = api.request(&format!("text {once} {reuse} [[cut:3]]"), false, false);
    let reply = post(daemon, api, &request)?;
    let answer = final_answer(upstream, &once)?;
    ensure!(
        api.text(&reply) == answer.text,
        "text {:?} is not the repeat's {:?}",
        api.text(&reply),
        answer.text
    );
    ensure!(
        api.text_parts(&reply) == 1,
        "text in several parts: {reply}"
    );
    let usage = (answer.input_tokens, answer.output_tokens);
    ensure!(
        api.usage(&reply) == usage,
        "usage {:?} is not the repeat's {usage:?}",
        api.usage(&reply)
    );
    Ok(())
}

/// A whole answer calling a tool, cut mid-JSON: only the repeat's call,
/// and its result resumes the parked turn.
fn whole_tool_call(api: Api, daemon: &Daemon, upstream: &FakeUpstream) -> Case {
    let once = faults::once();
    let request = api.request(
        &format!("tool {once} [[tool:lookup]] [[tools_only]] [[cut:1]]"),
        true,
        false,
    );
    let reply = post(daemon, api, &request)?;
    let answer = final_answer(upstream, &once)?;
    let calls = api.tool_calls(&reply);
    ensure!(calls.len() == 1, "not the one call of the repeat: {reply}");
    ensure!(
        is_client_id_of(&calls[0].0, &answer.tool_ids[0]),
        "{calls:?} is not the repeat's {answer:?}"
    );
    ensure!(
        calls[0].1 == json!({"query": "lookup-input"}),
        "arguments: {reply}"
    );
    let started = Instant::now();
    let resumed = post(daemon, api, &api.tool_result(&request, &reply, &calls[0].0))?;
    ensure!(
        api.text(&resumed) == "Tool results: sunny",
        "not resumed: {resumed}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(20),
        "the parked turn was not resumed at once"
    );
    Ok(())
}

/// Streamed: what the client has of the broken call is never completed
/// with the repeat spliced on (nor passed off as the whole answer); the
/// stream ends with the dialect's api_error, and the worker is free.
fn streamed(api: Api, daemon: &Daemon, what: &str, tools: bool, markers: &str) -> Case {
    let once = faults::once();
    let request = api.request(&format!("{what} {once} {markers}"), tools, true);
    let events = post_stream(daemon, api, &request)?;
    ensure!(
        api.stream_end(&events)? == StreamEnd::Failed,
        "not failed: {events:?}"
    );
    let expected = match api {
        Api::Messages => "api_error",
        Api::Chat | Api::Responses => "server_error",
    };
    ensure!(
        api.stream_error_type(&events) == expected,
        "error type: {events:?}"
    );
    let streamed = api.stream_text(&events);
    ensure!(!streamed.contains("Hello!"), "spliced: {streamed}");
    // A parked turn is reported before the client sees the stream end.
    let h = daemon.health();
    ensure!(
        h["workers"]["parked"] == 0,
        "a turn is parked on the broken call: {h}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = daemon.health();
        if h["workers"]["busy"] == 0 && h["workers"]["parked"] == 0 {
            break;
        }
        ensure!(Instant::now() < deadline, "the worker stays held: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A stream that breaks nowhere is untouched.
fn unbroken(api: Api, daemon: &Daemon) -> Case {
    let events = post_stream(daemon, api, &api.request("all well", false, true))?;
    ensure!(
        api.stream_end(&events)? == StreamEnd::Completed,
        "{events:?}"
    );
    let text = api.stream_text(&events);
    ensure!(text == "Hello! You said: all well", "{text}");
    Ok(())
}

type Case = Result<(), String>;

/// Every case of one dialect against one daemon; all run, and the test
/// names each that failed.
fn broken_streams_in(api: Api) {
    let upstream = FakeUpstream::start();
    // A turn parked by mistake must not hold the one worker for long.
    let config = DaemonConfig::real(1).with_toml("tools.park_timeout_secs = 5");
    let daemon = Daemon::start(config, &upstream);
    let cases: Vec<(&str, Case)> = vec![
        ("whole text", whole_text(api, &daemon, &upstream, false)),
        (
            "whole text, repeat with the same id",
            whole_text(api, &daemon, &upstream, true),
        ),
        ("whole tool call", whole_tool_call(api, &daemon, &upstream)),
        (
            "streamed text",
            streamed(api, &daemon, "text", false, "[[cut:3]]"),
        ),
        (
            "streamed text, repeat with the same id",
            streamed(api, &daemon, "same id", false, "[[reuse_id]] [[cut:3]]"),
        ),
        (
            "streamed text, error event",
            streamed(api, &daemon, "error event", false, "[[sse_error:3]]"),
        ),
        (
            "streamed tool call",
            streamed(
                api,
                &daemon,
                "tool",
                true,
                "[[tool:lookup]] [[tools_only]] [[cut:1]]",
            ),
        ),
        ("unbroken stream", unbroken(api, &daemon)),
    ];
    let failed: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, case)| case.err().map(|why| format!("{api:?}, {name}: {why}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} case(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn messages_answers_carry_only_the_call_the_cli_settled_on() {
    broken_streams_in(Api::Messages);
}

#[test]
fn chat_completions_carry_only_the_call_the_cli_settled_on() {
    broken_streams_in(Api::Chat);
}

#[test]
fn responses_carry_only_the_call_the_cli_settled_on() {
    broken_streams_in(Api::Responses);
}

/// The value of `claude_pool_upstream_errors_total{kind="KIND"}`, 0 if absent.
fn upstream_errors(daemon: &Daemon, kind: &str) -> f64 {
    let prefix = format!("claude_pool_upstream_errors_total{{kind=\"{kind}\"}} ");
    daemon
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

#[test]
fn an_upstream_529_says_when_to_retry_and_a_dropped_connection_is_a_bad_gateway() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);

    let res = daemon.post(&crate::common::message_body("busy [[status:529]]"));
    assert_eq!(res.status(), 529);
    let after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        after.is_some_and(|s| s.parse::<u64>().unwrap() > 0),
        "{:?}",
        res.headers()
    );

    // The connection closes before any byte (the CLI gets ECONNRESET).
    let res = daemon.post(&crate::common::message_body("gone [[drop]]"));
    assert_eq!(res.status(), 502);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert_eq!(upstream_errors(&daemon, "upstream_connection"), 1.0);
    assert_eq!(upstream_errors(&daemon, "timeout"), 0.0);

    // A stream broken off after part of the answer went out counts the same.
    let request = Api::Messages.request(&format!("cut {} [[cut:3]]", faults::once()), false, true);
    let events = post_stream(&daemon, Api::Messages, &request).unwrap();
    assert_eq!(Api::Messages.stream_end(&events), Ok(StreamEnd::Failed));
    assert_eq!(upstream_errors(&daemon, "upstream_connection"), 2.0);
}
