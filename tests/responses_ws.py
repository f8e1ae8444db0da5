"""Drives a running claude-pool daemon's Responses API over a WebSocket:
with the official `openai` Python SDK (`responses.connect()`) and with a
plain WebSocket client (`websockets`).

Usage: .tools/pyenv/bin/python tests/responses_ws.py http://127.0.0.1:PORT [idle | ledger KEY]

Run by tests/integration/real_cli/responses_e2e.rs against a daemon using the real CLI and the
fake upstream, whose `[[marker]]`s script the replies. Every check runs;
each prints `ok` or `FAIL` with the reason; exit status 1 if any failed.
"""

import json
import sys
import traceback

import openai
from websockets.sync.client import connect

MODEL = "claude-haiku-4-5"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def until_done(conn):
    """The events of one response, up to its final one."""
    events = []
    for event in conn:
        events.append(event)
        if event.type in ("response.completed", "response.incomplete", "response.failed", "error"):
            return events
    raise AssertionError(f"the socket closed mid-response: {[e.type for e in events]}")


def sdk_turns_tools_and_resume(o):
    with o.responses.connect() as conn:
        conn.response.create(model=MODEL, input="my name is Ada", store=False)
        first = until_done(conn)
        kinds = [e.type for e in first]
        check(kinds[:2] == ["response.created", "response.in_progress"], f"events: {kinds}")
        check(kinds[-1] == "response.completed", f"events: {kinds}")
        text = "".join(e.delta for e in first if e.type == "response.output_text.delta")
        check(text == "Hello! You said: my name is Ada", f"text: {text!r}")
        done = first[-1].response
        # store: false, yet the socket continues it by id with the new input only.
        conn.response.create(model=MODEL, input="and again", store=False, previous_response_id=done.id)
        second = until_done(conn)[-1]
        check(second.type == "response.completed", f"second: {second}")
        check(second.response.previous_response_id == done.id, f"echo: {second.response}")
        # A tool round: the call ends the response, its output resumes the turn.
        conn.response.create(
            model=MODEL,
            input="weather? [[tool:get_weather]]",
            tools=[WEATHER],
            previous_response_id=second.response.id,
            store=False,
        )
        called = until_done(conn)[-1].response
        calls = [i for i in called.output if i.type == "function_call"]
        check(len(calls) == 1 and calls[0].name == "get_weather", f"output: {called.output}")
        conn.response.create(
            model=MODEL,
            tools=[WEATHER],
            previous_response_id=called.id,
            store=False,
            input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C sunny"}],
        )
        resumed = until_done(conn)[-1].response
        check(resumed.output_text == "Tool results: 18C sunny", f"text: {resumed.output_text!r}")
    try:
        o.responses.retrieve(done.id)
        check(False, "a store: false response reached the store")
    except openai.NotFoundError:
        pass


def ws_url(base):
    return base.replace("http://", "ws://", 1) + "/v1/responses"


def recv_until_done(ws):
    events = []
    while True:
        event = json.loads(ws.recv(timeout=60))
        events.append(event)
        if event["type"] in ("response.completed", "response.failed", "error"):
            return events


def plain_client_errors(base):
    with connect(ws_url(base), additional_headers={"Authorization": "Bearer unused"}) as ws:
        # Codex's prewarm: answered at once, no model turn.
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "prewarm only", "generate": False}))
        events = recv_until_done(ws)
        check([e["type"] for e in events][-1] == "response.completed", f"events: {events}")
        check(events[-1]["response"]["output"] == [], f"prewarm: {events[-1]}")
        create = {"type": "response.create", "model": MODEL, "input": "slowly [[slow:100]]"}
        ws.send(json.dumps(create))
        ws.send(json.dumps({**create, "input": "meanwhile"}))
        events = recv_until_done(ws)
        check(events[-1]["type"] == "error", f"events: {[e['type'] for e in events]}")
        error = events[-1]
        check(error["status"] == 400, f"error: {error}")
        check(error["error"]["code"] == "response_already_in_flight", f"error: {error}")
        check(error["error"]["type"] == "invalid_request_error", f"error: {error}")
        # The running response carries on to its end.
        events = recv_until_done(ws)
        check(events[-1]["type"] == "response.completed", f"events: {[e['type'] for e in events]}")
        words = events[-1]["response"]["output"][0]["content"][0]["text"].split()
        check(len(words) == 20, f"text: {words}")
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "x", "previous_response_id": "resp_nope"}))
        error = recv_until_done(ws)[-1]
        check(error["type"] == "error" and error["status"] == 400, f"error: {error}")
        check(error["error"]["code"] == "previous_response_not_found", f"error: {error}")
        check(error["error"]["param"] == "previous_response_id", f"error: {error}")
        ws.send(json.dumps({"type": "response.cancel"}))
        error = recv_until_done(ws)[-1]
        check(error["type"] == "error" and "response.cancel" in error["error"]["message"], f"error: {error}")
        ws.send("not json")
        error = recv_until_done(ws)[-1]
        check(error["type"] == "error" and error["status"] == 400, f"error: {error}")
        # The socket still serves.
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "still here"}))
        done = recv_until_done(ws)[-1]
        check(done["type"] == "response.completed", f"done: {done}")


def idle_release(base):
    """With pool.affinity_idle_secs = 1: the socket's worker is let go while
    the socket idles, and the next turn carries on regardless."""
    import time
    import urllib.request

    def bound():
        with urllib.request.urlopen(f"{base}/health") as r:
            return json.load(r)["workers"]["bound"]

    with connect(ws_url(base)) as ws:
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "remember TANGO", "store": False}))
        first = recv_until_done(ws)[-1]
        check(first["type"] == "response.completed", f"first: {first}")
        deadline = time.time() + 30
        while bound() != 0:
            check(time.time() < deadline, "the idle socket's worker was never let go")
            time.sleep(0.1)
        ws.send(json.dumps({
            "type": "response.create", "model": MODEL, "input": "after the pause", "store": False,
            "previous_response_id": first["response"]["id"],
        }))
        second = recv_until_done(ws)[-1]
        check(second["type"] == "response.completed", f"second: {second}")
        text = second["response"]["output"][0]["content"][0]["text"]
        check(text == "Hello! You said: after the pause", f"text: {text!r}")


def ledger_turns(o):
    """Two turns and one refused (a model the key may not use) on one
    socket, with the key given; prints each completed turn's usage as
    `USAGE {json}` for the test to compare with the ledger."""
    with o.responses.connect() as conn:
        conn.response.create(model=MODEL, input="first turn [[words:5]]", store=False)
        first = until_done(conn)[-1]
        check(first.type == "response.completed", f"first: {first}")
        conn.response.create(
            model=MODEL, input="second turn [[words:9]]", store=False,
            previous_response_id=first.response.id,
        )
        second = until_done(conn)[-1]
        check(second.type == "response.completed", f"second: {second}")
        conn.response.create(model="claude-sonnet-4-5", input="not my model", store=False)
        refused = until_done(conn)[-1]
        check(refused.type == "error", f"refused: {refused}")
        for done in (first, second):
            u = done.response.usage
            print("USAGE " + json.dumps({"input": u.input_tokens, "output": u.output_tokens}))


CHECKS = [
    lambda base, o: sdk_turns_tools_and_resume(o),
    lambda base, o: plain_client_errors(base),
]
NAMES = ["sdk_turns_tools_and_resume", "plain_client_errors"]


def main():
    base = sys.argv[1]
    key = "unused"
    if sys.argv[2:] == ["idle"]:
        CHECKS[:] = [lambda base, o: idle_release(base)]
        NAMES[:] = ["idle_release"]
    if sys.argv[2:3] == ["ledger"]:
        key = sys.argv[3]
        CHECKS[:] = [lambda base, o: ledger_turns(o)]
        NAMES[:] = ["ledger_turns"]
    o = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=60)
    failed = 0
    for name, fn in zip(NAMES, CHECKS):
        try:
            fn(base, o)
            print(f"ok   {name}")
        except Exception:
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
