//! Where the balancer sends a client's requests: a session's turns, the
//! results of its parked tool calls, conversations and Responses WebSockets
//! all reach the node that holds them.

use super::*;

#[test]
fn sessions_stay_on_one_node_and_tool_results_find_their_parked_turn() {
    let cluster = Cluster::start(3);
    let url = cluster.url("/v1/messages");

    // Ten turns of one pinned conversation: one node answers them all.
    let mut messages = Vec::new();
    let mut nodes = Vec::new();
    for turn in 0..10 {
        messages.push(json!({"role": "user", "content": format!("session turn {turn}")}));
        let body = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "messages": messages});
        let reply = post(&url, &body, Some("chat-42"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        messages.push(json!({"role": "assistant", "content": reply.body["content"]}));
        nodes.push(reply.node);
    }
    assert!(nodes.iter().all(|n| n == &nodes[0]), "{nodes:?}");
    assert!(nodes[0].starts_with('n'), "{nodes:?}");

    // 25 conversations of two tool rounds each: 50 continuations.
    let mut first_nodes = Vec::new();
    let mut continuations = 0;
    for conversation in 0..25 {
        let request = tool_request(&format!("ROUND-{conversation} [[tool:get_weather]]"));
        let first = post(&url, &request, None);
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.body["stop_reason"], "tool_use", "{}", first.body);
        first_nodes.push(first.node.clone());
        let (request, id) = with_result(request, &first.body, "again [[tool:get_weather]]");
        assert!(id.starts_with(&format!("toolu_{}_", first.node)), "{id}");
        let second = post(&url, &request, None);
        assert_eq!(second.status, 200, "{}", second.body);
        assert_eq!(second.body["stop_reason"], "tool_use", "{}", second.body);
        assert_eq!(second.node, first.node, "continuation left its node");
        let (request, _) = with_result(request, &second.body, "sunny");
        let last = post(&url, &request, None);
        assert_eq!(last.status, 200, "{}", last.body);
        assert_eq!(last.node, first.node, "continuation left its node");
        assert_eq!(last.body["content"][0]["text"], "Tool results: sunny");
        continuations += 2;
    }
    assert_eq!(continuations, 50);
    let distinct: std::collections::HashSet<&String> = first_nodes.iter().collect();
    assert!(
        distinct.len() >= 2,
        "new conversations were not balanced: {first_nodes:?}"
    );
    // Every continuation resumed its parked turn: the upstream saw the
    // results as tool_result blocks of the live CLI conversation, never a
    // conversation replayed as history (the fallback).
    let calls: Vec<_> = cluster
        .upstream
        .message_calls()
        .into_iter()
        .filter(|c| c.all_text().contains("ROUND-"))
        .collect();
    assert_eq!(calls.len(), 75, "one upstream call per request");
    let fallbacks = calls
        .iter()
        .filter(|c| c.all_text().contains("<conversation_history"))
        .count();
    assert_eq!(fallbacks, 0, "continuations replayed as history");
    eprintln!(
        "new conversations per node: {:?}",
        ["n1", "n2", "n3"].map(|n| first_nodes.iter().filter(|f| *f == n).count())
    );
}

/// The node tag of an id `<prefix><node>_…`.
fn node_in(id: &str, prefix: &str) -> String {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.split('_').next())
        .unwrap_or_default()
        .to_string()
}

/// One WebSocket turn through the balancer with Codex's `session-id`
/// header; the completed response's id.
fn websocket_turn(cluster: &Cluster, session: &str) -> String {
    let python = python();
    let script = r#"
import json, sys
from websockets.sync.client import connect
with connect(sys.argv[1], additional_headers={"session-id": sys.argv[2]}) as ws:
    ws.send(json.dumps({"type": "response.create", "model": "claude-haiku-4-5", "input": "hi"}))
    while True:
        event = json.loads(ws.recv(timeout=60))
        if event["type"] in ("response.completed", "error"):
            print(json.dumps(event))
            break
"#;
    let url = cluster.base.replace("http://", "ws://") + "/v1/responses";
    let out = Command::new(&python)
        .args(["-c", script, &url, session])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(event["type"], "response.completed", "{event}");
    event["response"]["id"].as_str().unwrap().to_string()
}

#[test]
fn conversations_and_websockets_reach_their_node() {
    let cluster = Cluster::start(2);
    let made = post(&cluster.url("/v1/conversations"), &json!({}), None);
    assert_eq!(made.status, 200, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_string();
    assert_eq!(node_in(&id, "conv_"), made.node, "{id}");
    for turn in 0..4 {
        let res = client()
            .get(cluster.url(&format!("/v1/conversations/{id}")))
            .send()
            .unwrap();
        assert_eq!(
            (res.status().as_u16(), node_of(&res)),
            (200, made.node.clone())
        );
        let body = json!({"model": "claude-haiku-4-5", "input": format!("turn {turn}"),
                          "conversation": {"id": id}});
        let reply = post(&cluster.url("/v1/responses"), &body, None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.node, made.node,
            "a conversation's turn went elsewhere"
        );
    }
    // A session's sockets meet on one node.
    let first = websocket_turn(&cluster, "codex-session-1");
    for _ in 0..3 {
        let again = websocket_turn(&cluster, "codex-session-1");
        assert_eq!(node_in(&again, "resp_"), node_in(&first, "resp_"));
    }
}
