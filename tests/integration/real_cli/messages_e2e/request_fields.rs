//! What a request asks for is what the model gets: slash commands as plain
//! text, stop sequences, thinking only when asked, max_tokens.

use super::*;

#[test]
fn slash_commands_from_clients_are_plain_text() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let res = daemon.post(&message_body("/cost"));
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    assert_eq!(body["content"][0]["text"], "Hello! You said: /cost");
    assert_eq!(
        upstream.message_calls().len(),
        1,
        "the text must reach the model"
    );
}

#[test]
fn stop_sequences_end_the_answer_where_they_appear() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let mut body = message_body("count [[slow:20]]");
    body["stop_sequences"] = json!(["word5", "never"]);
    let res = daemon.post(&body);
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().unwrap();
    assert_eq!(
        reply["content"][0]["text"],
        "word0 word1 word2 word3 word4 "
    );
    assert_eq!(reply["stop_reason"], "stop_sequence");
    assert_eq!(reply["stop_sequence"], "word5");

    body["stream"] = json!(true);
    let text = daemon.post(&body).text().unwrap();
    let events = parse_sse(&text);
    assert_eq!(sse_text(&events), "word0 word1 word2 word3 word4 ");
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(events.last().unwrap().0, "message_stop");

    // OpenAI's `stop` does the same.
    let chat = json!({"model": "claude-haiku-4-5", "stop": "word2",
                      "messages": [{"role": "user", "content": "count [[slow:20]]"}]});
    let res = daemon.post_to("/v1/chat/completions", &chat);
    let reply: Value = res.json().unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], "word0 word1 ");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");

    // The interrupted worker is cleared and serves the next request.
    assert_eq!(daemon.post(&message_body("after")).status(), 200);
    // An answer ended by a stop sequence ended normally: all four jobs
    // count as completed, none as failed (the worker reports the outcome
    // once the interrupted turn is over, after the client has its answer).
    let health = daemon.wait_health(Duration::from_secs(30), |h| {
        h["jobs"]["completed"].as_u64().unwrap_or(0) + h["jobs"]["failed"].as_u64().unwrap_or(0)
            >= 4
    });
    assert_eq!(health["jobs"]["failed"], 0, "{health}");
    assert_eq!(health["jobs"]["completed"], 4, "{health}");
    assert_eq!(health["restarts"], 0);
}

#[test]
fn thinking_nobody_asked_for_is_not_returned() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let reply: Value = daemon
        .post(&message_body("think anyway [[think]]"))
        .json()
        .unwrap();
    let content = reply["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{reply}");
    assert_eq!(content[0]["type"], "text");

    let mut body = message_body("think anyway [[think]]");
    body["stream"] = json!(true);
    let events = parse_sse(&daemon.post(&body).text().unwrap());
    assert!(!events
        .iter()
        .any(|(_, d)| d["delta"]["type"] == "thinking_delta"));
    let starts: Vec<u64> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(starts, [0], "the text block is block 0");
}

#[test]
fn max_tokens_reaches_the_model_per_request() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let sent_max = |upstream: &FakeUpstream| {
        upstream.message_calls().last().unwrap().body["max_tokens"].clone()
    };
    let mut body = message_body("short please");
    body["max_tokens"] = json!(7);
    assert_eq!(daemon.post(&body).status(), 200);
    assert_eq!(sent_max(&upstream), 7);
    body["max_tokens"] = json!(300);
    assert_eq!(daemon.post(&body).status(), 200);
    assert_eq!(sent_max(&upstream), 300);
    // Without a limit (allowed in Chat Completions), the CLI's default again.
    let chat = json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(daemon.post_to("/v1/chat/completions", &chat).status(), 200);
    let default = sent_max(&upstream).as_u64().unwrap();
    assert!(
        default > 300,
        "the CLI's own default, not the last job's: {default}"
    );
    let mut chat = chat;
    chat["max_completion_tokens"] = json!(42);
    assert_eq!(daemon.post_to("/v1/chat/completions", &chat).status(), 200);
    assert_eq!(sent_max(&upstream), 42);
}
