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

mod dialects;
mod transcripts;
mod upstream_errors;

use dialects::{post, post_stream, Api, StreamEnd};

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
