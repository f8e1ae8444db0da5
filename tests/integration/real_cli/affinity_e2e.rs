//! Conversation affinity with the real CLI: the next turn of a conversation
//! goes to the worker that holds it and carries only the new message, while
//! anything that differs takes the normal path and sees nothing of it.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

fn chat(daemon: &Daemon, system: &str, messages: &[Value]) -> Value {
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "system": system, "messages": messages});
    let res = daemon.post(&body);
    assert_eq!(res.status(), 200);
    res.json().unwrap()
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// The roles of the messages of the last upstream call.
fn last_roles(upstream: &FakeUpstream) -> Vec<String> {
    let calls = upstream.message_calls();
    calls.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect()
}

fn last_text(upstream: &FakeUpstream) -> String {
    upstream.message_calls().last().unwrap().all_text()
}

#[test]
fn later_turns_continue_the_live_conversation() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let mut messages = vec![user("first question ALPHA")];
    let reply = chat(&daemon, "S", &messages);
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["bound"] == 1);

    // Turn 2, echoing the reply as a plain string.
    messages.push(json!({"role": "assistant", "content": reply["content"][0]["text"]}));
    messages.push(user("second question BRAVO"));
    let reply2 = chat(&daemon, "S", &messages);
    assert_eq!(
        last_roles(&upstream),
        ["user", "assistant", "user"],
        "real structured turns"
    );
    assert!(
        !last_text(&upstream).contains("<conversation_history>"),
        "no flattened transcript"
    );

    // Turn 3, echoing the reply as content blocks.
    messages.push(json!({"role": "assistant", "content": reply2["content"]}));
    messages.push(user("third question CHARLIE"));
    chat(&daemon, "S", &messages);
    assert_eq!(
        last_roles(&upstream),
        ["user", "assistant", "user", "assistant", "user"]
    );
    // Only the new message was sent: the first question is in the first
    // user message alone, not repeated in a rendered history.
    let calls = upstream.message_calls();
    let messages = calls.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .clone();
    let with_alpha: Vec<usize> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            m["role"] == "user" && m["content"].to_string().contains("first question ALPHA")
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(with_alpha, [0]);
    let h = daemon.health();
    assert_eq!(h["workers"]["bound"], 1, "{h}");
    assert_eq!(h["restarts"], 0);
}

#[test]
fn near_misses_never_reach_the_bound_conversation() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let first = vec![user("secret plan ZULU")];
    let reply = chat(&daemon, "S", &first);
    let answer = reply["content"][0]["text"].as_str().unwrap().to_string();
    assert!(answer.contains("ZULU"));
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["bound"] == 1);

    let continued = |assistant: &str| {
        vec![
            first[0].clone(),
            json!({"role": "assistant", "content": assistant}),
            user("and then?"),
        ]
    };
    let cases: Vec<(&str, Vec<Value>, Option<Value>)> = vec![
        ("edited history", continued("a different reply"), None),
        ("changed system prompt", continued(&answer), None),
        (
            "changed tools",
            continued(&answer),
            Some(json!([{"name": "t", "input_schema": {"type": "object"}}])),
        ),
    ];
    for (what, messages, tools) in cases {
        let system = if what == "changed system prompt" {
            "S2"
        } else {
            "S"
        };
        let mut body = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "system": system, "messages": messages});
        if let Some(tools) = tools {
            body["tools"] = tools;
        }
        let res = daemon.post(&body);
        assert_eq!(res.status(), 200, "{what}");
        let seen = last_text(&upstream);
        assert!(
            seen.contains("<conversation_history>"),
            "{what}: must take the normal path"
        );
        assert_eq!(
            last_roles(&upstream),
            ["user"],
            "{what}: a fresh conversation"
        );
        if what == "edited history" {
            assert!(
                !seen.contains(&answer),
                "{what}: the bound reply leaked: {seen}"
            );
        }
    }
    // Another client starting with the identical first message.
    chat(&daemon, "S", &first);
    assert_eq!(last_roles(&upstream), ["user"]);
    assert!(
        !last_text(&upstream).contains("Hello! You said"),
        "another client saw the bound reply"
    );
}

#[test]
fn bound_workers_expire_and_are_evicted_least_recently_used_first() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("pool.affinity_idle_secs = 2"),
        &upstream,
    );
    // A full pool of one bound worker: a new conversation still gets served.
    let a = vec![user("conversation A")];
    let reply_a = chat(&daemon, "S", &a);
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["bound"] == 1);
    chat(&daemon, "S", &[user("conversation B")]);
    assert!(!last_text(&upstream).contains("conversation A"), "B saw A");
    // A's next turn lost its worker: the history is rendered instead.
    let a2 = vec![
        a[0].clone(),
        json!({"role": "assistant", "content": reply_a["content"]}),
        user("A again"),
    ];
    chat(&daemon, "S", &a2);
    assert!(last_text(&upstream).contains("<conversation_history>"));
    // Idle bound workers are cleared after affinity_idle_secs.
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["bound"] == 1);
    daemon.wait_health(Duration::from_secs(10), |h| {
        h["workers"]["bound"] == 0 && h["workers"]["ready"] == 1
    });
}

#[test]
fn affinity_can_be_turned_off() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("pool.affinity = false"),
        &upstream,
    );
    let mut messages = vec![user("one")];
    let reply = chat(&daemon, "S", &messages);
    messages.push(json!({"role": "assistant", "content": reply["content"]}));
    messages.push(user("two"));
    chat(&daemon, "S", &messages);
    assert_eq!(last_roles(&upstream), ["user"]);
    assert!(last_text(&upstream).contains("<conversation_history>"));
    assert_eq!(daemon.health()["workers"]["bound"], 0);
}

#[test]
fn a_pinned_session_goes_to_its_worker_whatever_the_history() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let send = |messages: Value| {
        let body = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "system": "S", "messages": messages});
        let res = client()
            .post(daemon.url("/v1/messages"))
            .header("x-claude-pool-session", "session-42")
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200);
    };
    send(json!([user("pinned first")]));
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["bound"] == 1);
    // The client sends only its new message: the worker still holds the rest.
    send(json!([user("pinned second")]));
    assert_eq!(last_roles(&upstream), ["user", "assistant", "user"]);
    let seen = last_text(&upstream);
    assert!(
        seen.contains("pinned first") && seen.contains("pinned second"),
        "{seen}"
    );
}
