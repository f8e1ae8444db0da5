//! Parked turns: the model called the caller's tools, the job ended with
//! the calls, and the turn waits for their results (or is let go).

use super::*;

fn weather_tool() -> ToolSet {
    ToolSet::new(vec![json!({"name": "get_weather", "inputSchema": {}})])
}

impl Harness {
    /// The model calls the caller's tool `toolu_1`: the assistant message,
    /// then the CLI's `tools/call` (request `call-1`, JSON-RPC id 3).
    fn call_tool(&mut self, tools: &ToolSet) -> Vec<Effect> {
        let name = format!("{}get_weather", tools.api_prefix());
        self.line(
            json!({"type": "assistant", "message": {"id": "msg_1", "model": "m",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}]}}),
        );
        self.line(json!({"type": "control_request", "request_id": "call-1",
            "request": {"subtype": "mcp_message", "server_name": tools.server, "message": {
                "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "get_weather",
                    "_meta": {"claudecode/toolUseId": "toolu_1"}}}}}))
    }
}

#[test]
fn a_park_times_out_and_the_turn_is_abandoned() {
    let mut h = Harness::booted();
    let tools = weather_tool();
    let (job, _client) = job(JobSpec {
        tools: Some(tools.clone()),
        ..spec()
    });
    h.start(job);
    let effects = h.call_tool(&tools);
    assert_eq!(
        states(&effects),
        [WorkerState::Parked {
            holder: holder(),
            tool_use_ids: vec!["toolu_1".into()]
        }]
    );
    assert!(
        matches!(events(&effects)[..], [JobEvent::Finished(c)] if c.stop_reason == Some(crate::job::StopReason::ToolUse))
    );
    assert!(requests(&effects).is_empty(), "the call waits: {effects:?}");

    let park_timeout = h.settings.tools.park_timeout();
    assert!(h.tick_after(park_timeout).is_empty(), "not yet");
    let effects = h.tick_after(Duration::from_secs(1));
    assert_eq!(states(&effects), [clearing()]);
    assert!(effects.iter().any(is_interrupt), "{effects:?}");
    assert!(events(&effects).is_empty(), "the client has its answer");

    // The interrupted turn's result leads to `/clear`.
    let effects = h.line(interrupted("s1"));
    assert!(matches!(effects[..], [Effect::Write(Outgoing::Clear)]));
}

#[test]
fn a_released_park_is_abandoned_and_only_a_parked_worker_releases() {
    let mut h = Harness::booted();
    assert!(h.input(Input::ReleasePark).is_empty(), "nothing parked");
    let tools = weather_tool();
    let (job, _client) = job(JobSpec {
        tools: Some(tools.clone()),
        ..spec()
    });
    h.start(job);
    h.call_tool(&tools);
    let effects = h.input(Input::ReleasePark);
    assert_eq!(states(&effects), [clearing()]);
    assert!(effects.iter().any(is_interrupt), "{effects:?}");
    assert!(h.input(Input::ReleasePark).is_empty(), "released once");
    let effects = h.line(interrupted("s1"));
    assert!(matches!(effects[..], [Effect::Write(Outgoing::Clear)]));
}

#[test]
fn a_tool_round_resumes_the_parked_turn_with_the_callers_results() {
    let mut h = Harness::booted();
    let tools = weather_tool();
    let (first, _client) = job(JobSpec {
        tools: Some(tools.clone()),
        ..spec()
    });
    h.start(first);
    let effects = h.call_tool(&tools);
    // The job ends with the call, as the client names its tool.
    match events(&effects).last() {
        Some(JobEvent::Finished(answer)) => assert!(
            matches!(&answer.content[..], [crate::job::ContentBlock::ToolUse { name, .. }] if name == "get_weather"),
            "{answer:?}"
        ),
        other => panic!("{other:?}"),
    }

    let (second, _client) = job(JobSpec {
        tools: Some(tools),
        tool_results: vec![ToolResult {
            tool_use_id: "toolu_1".into(),
            content: vec![crate::job::ToolContent::text("Sunny")],
            is_error: false,
        }],
        ..spec()
    });
    let effects = h.input(Input::Job(second));
    let [Effect::Write(Outgoing::Reply {
        request_id,
        reply: Reply::Mcp(rpc),
    })] = &effects[..]
    else {
        panic!("{effects:?}")
    };
    assert_eq!(request_id, "call-1");
    assert_eq!(rpc.id, 3);
    assert_eq!(
        rpc.result,
        RpcResult::ToolCall {
            content: vec![crate::job::ToolContent::text("Sunny")],
            is_error: false
        }
    );

    h.line(answer("Sunny in Lima."));
    let effects = h.line(result("s1"));
    assert_eq!(reports(&effects)[0].job, Some(Outcome::Succeeded));
    assert!(matches!(events(&effects)[..], [JobEvent::Finished(_)]));
}
