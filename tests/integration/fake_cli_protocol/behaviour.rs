//! What the fake does with what it is sent: the probe and a turn, `/clear`,
//! invalid JSON, an interrupt, the upstream-error and crash markers.

use super::*;

#[test]
fn probe_then_turn_streams_like_the_cli_and_eof_exits_0() {
    let mut fake = Fake::spawn();
    fake.control("probe-1", "get_binary_version");
    let reply = fake.until(|_| true).remove(0);
    assert_eq!(reply["response"]["request_id"], "probe-1");
    assert_eq!(reply["response"]["subtype"], "success");
    assert!(reply["response"]["response"]["version"].is_string());

    fake.user("hello world");
    let lines = fake.turn();
    assert_eq!(
        kinds(&lines),
        [
            "system/init",
            "system/status",
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "assistant",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "result"
        ]
    );
    assert_eq!(lines[0]["model"], "m-test");
    let start = &lines[2]["event"]["message"];
    assert_eq!(start["model"], "m-test");
    assert_eq!(start["usage"]["input_tokens"], 12);
    let result = lines.last().unwrap();
    assert_eq!(text_deltas(&lines), "fake reply #1: hello world");
    assert_eq!(result["result"], "fake reply #1: hello world");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["usage"]["output_tokens"], 5);
    assert_eq!(result["terminal_reason"], "completed");

    drop(fake.stdin.take());
    assert_eq!(fake.wait().code(), Some(0));
}

#[test]
fn clear_resets_the_turn_counter_history_and_session() {
    let mut fake = Fake::spawn();
    fake.user("first");
    assert_eq!(
        fake.turn().last().unwrap()["result"],
        "fake reply #1: first"
    );
    fake.user("second");
    let before = fake.turn();
    assert_eq!(before.last().unwrap()["result"], "fake reply #2: second");

    fake.user("/clear");
    let clear = fake.turn();
    assert_eq!(kinds(&clear), ["system/init", "assistant", "result"]);
    assert_eq!(clear[1]["message"]["model"], "<synthetic>");
    assert_eq!(clear[2]["num_turns"], 0);
    assert_eq!(clear[2]["result"], "");
    assert_ne!(clear[0]["session_id"], before[0]["session_id"]);

    fake.user("third");
    assert_eq!(
        fake.turn().last().unwrap()["result"],
        "fake reply #1: third"
    );
    fake.user("[[history]]");
    assert_eq!(fake.turn().last().unwrap()["result"], "third | [[history]]");
}

#[test]
fn invalid_json_on_stdin_exits_1() {
    let mut fake = Fake::spawn();
    fake.send_raw("{not json");
    assert_eq!(fake.wait().code(), Some(1));
    let mut stderr = String::new();
    fake.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("Error parsing streaming input line"),
        "{stderr}"
    );
}

#[test]
fn interrupt_stops_a_slow_turn_within_one_delay() {
    let mut fake = Fake::spawn();
    fake.user("[[slow:200]] take your time");
    fake.until(|l| l["event"]["type"] == "content_block_delta");
    let sent = Instant::now();
    fake.control("int-1", "interrupt");
    let lines = fake.turn();
    // Unstopped, the 20 words would take 3.8 s more.
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        kinds(&lines),
        ["control_response", "assistant", "user", "result"]
    );
    assert_eq!(lines[0]["response"]["request_id"], "int-1");
    assert_eq!(
        lines[2]["message"]["content"][0]["text"],
        "[Request interrupted by user]"
    );
    let result = &lines[3];
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["terminal_reason"], "aborted_streaming");

    // The process stays usable.
    fake.user("again");
    assert_eq!(
        fake.turn().last().unwrap()["result"],
        "fake reply #2: again"
    );
}

#[test]
fn upstream_error_and_crash_markers() {
    let mut fake = Fake::spawn();
    fake.user("[[error:529]] please");
    let lines = fake.turn();
    assert_eq!(
        kinds(&lines),
        ["system/init", "system/status", "assistant", "result"]
    );
    assert_eq!(lines[2]["message"]["model"], "<synthetic>");
    let result = &lines[3];
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 529);
    assert_eq!(result["result"], "API Error: 529 fake error");

    fake.user("[[crash]]");
    let lines = fake.until(|l| l["event"]["type"] == "content_block_delta");
    assert_eq!(text_deltas(&lines), "fake ");
    assert_eq!(fake.wait().code(), Some(3));
}
