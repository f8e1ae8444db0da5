"""Drives a running claude-pool daemon's Responses API with the official
`openai` Python SDK.

Usage: .tools/pyenv/bin/python tests/responses_sdk.py http://127.0.0.1:PORT

Run by tests/integration/real_cli/responses_e2e.rs against a daemon using the real CLI and the
fake upstream (tests/common/upstream.rs), whose `[[marker]]`s script the
replies. Every check runs; each prints `ok` or `FAIL` with the reason, and
the exit status is 1 if any failed.
"""

import sys
import traceback

import openai

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


def create(o):
    r = o.responses.create(model=MODEL, instructions="Be terse.", input="sdk hello")
    check(r.id.startswith("resp_"), f"id: {r.id}")
    check(r.object == "response" and r.status == "completed", f"shape: {r}")
    check(r.output_text == "Hello! You said: sdk hello", f"text: {r.output_text!r}")
    check(r.output[0].type == "message" and r.output[0].role == "assistant", f"output: {r.output}")
    check(r.usage.input_tokens > 0 and r.usage.output_tokens > 0, f"usage: {r.usage}")
    check(r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, f"usage: {r.usage}")
    check(r.model == MODEL and r.instructions == "Be terse.", f"echo: {r.model} {r.instructions}")
    return r


def stream(o):
    with o.responses.stream(model=MODEL, input="count [[words:5]]") as s:
        kinds = []
        text = ""
        for event in s:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        final = s.get_final_response()
    check(text == "w0 w1 w2 w3 w4 ", f"streamed: {text!r}")
    check(kinds[:2] == ["response.created", "response.in_progress"], f"events: {kinds}")
    check(kinds[-1] == "response.completed", f"events: {kinds}")
    check(final.output_text == text and final.status == "completed", f"final: {final}")
    check(final.usage.output_tokens == 5, f"usage: {final.usage}")


def retrieve_and_items(o):
    r = o.responses.create(model=MODEL, input="keep me", metadata={"k": "v"})
    got = o.responses.retrieve(r.id)
    check(got.id == r.id and got.output_text == r.output_text, f"retrieved: {got}")
    check(got.metadata == {"k": "v"}, f"metadata: {got.metadata}")
    items = o.responses.input_items.list(r.id)
    check(len(items.data) == 1 and items.data[0].type == "message", f"items: {items}")
    check(items.data[0].content[0].text == "keep me", f"items: {items}")
    deleted = o.responses.delete(r.id)
    check(deleted is None or getattr(deleted, "deleted", True), f"deleted: {deleted}")
    try:
        o.responses.retrieve(r.id)
        check(False, "a deleted response is still there")
    except openai.NotFoundError as e:
        check("not found" in str(e), f"error: {e}")


def previous_response(o):
    first = o.responses.create(model=MODEL, input="my name is Ada")
    second = o.responses.create(model=MODEL, input="and again", previous_response_id=first.id)
    check(second.previous_response_id == first.id, f"echo: {second.previous_response_id}")
    check(second.output_text == "Hello! You said: and again", f"text: {second.output_text!r}")
    try:
        o.responses.create(model=MODEL, input="x", previous_response_id="resp_missing")
        check(False, "an unknown previous_response_id was accepted")
    except openai.BadRequestError as e:
        check(e.body.get("param") == "previous_response_id", f"error body: {e.body}")


def tool_round_trip(o):
    r = o.responses.create(model=MODEL, input="weather? [[tool:get_weather]]", tools=[WEATHER])
    calls = [item for item in r.output if item.type == "function_call"]
    check(len(calls) == 1, f"output: {r.output}")
    call = calls[0]
    check(call.name == "get_weather" and call.call_id, f"call: {call}")
    check(call.arguments and call.arguments.startswith("{"), f"arguments: {call.arguments!r}")
    done = o.responses.create(
        model=MODEL,
        previous_response_id=r.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C sunny"}],
    )
    check(done.output_text == "Tool results: 18C sunny", f"text: {done.output_text!r}")


def streamed_tool_call(o):
    with o.responses.stream(model=MODEL, input="weather? [[tool:get_weather]]", tools=[WEATHER]) as s:
        kinds = [event.type for event in s]
        final = s.get_final_response()
    check("response.function_call_arguments.delta" in kinds, f"events: {kinds}")
    check("response.function_call_arguments.done" in kinds, f"events: {kinds}")
    call = [item for item in final.output if item.type == "function_call"][0]
    # The history, not previous_response_id, carries the call this time.
    done = o.responses.create(
        model=MODEL,
        tools=[WEATHER],
        store=False,
        input=[
            {"role": "user", "content": "weather? [[tool:get_weather]]"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ],
    )
    check(done.output_text == "Tool results: rain", f"text: {done.output_text!r}")
    try:
        o.responses.retrieve(done.id)
        check(False, "store: false was stored")
    except openai.NotFoundError:
        pass


def background(o):
    import time

    r = o.responses.create(model=MODEL, input="later [[slow:20]]", background=True)
    check(r.background and r.status in ("queued", "in_progress"), f"created: {r}")
    deadline = time.time() + 60
    while r.status in ("queued", "in_progress"):
        check(time.time() < deadline, f"still {r.status}")
        time.sleep(0.05)
        r = o.responses.retrieve(r.id)
    check(r.status == "completed" and len(r.output_text.split()) == 20, f"polled: {r}")
    # Streamed back from sequence number 2 on.
    events = list(o.responses.retrieve(r.id, stream=True, starting_after=2))
    check(events[0].sequence_number == 3, f"events: {[e.type for e in events]}")
    check(events[-1].type == "response.completed", f"events: {[e.type for e in events]}")
    check(events[-1].response.output_text == r.output_text, f"final: {events[-1]}")
    slow = o.responses.create(model=MODEL, input="long [[slow:2000]]", background=True)
    cancelled = o.responses.cancel(slow.id)
    check(cancelled.status == "cancelled", f"cancelled: {cancelled}")
    try:
        o.responses.cancel(r.id)
        check(False, "a completed response was cancelled")
    except openai.BadRequestError as e:
        check(e.body.get("type") == "invalid_request_error", f"error body: {e.body}")


def conversations(o):
    conv = o.conversations.create(
        metadata={"topic": "demo"},
        items=[{"type": "message", "role": "user", "content": "my name is Grace"}],
    )
    check(conv.id.startswith("conv_") and conv.metadata == {"topic": "demo"}, f"created: {conv}")
    check(o.conversations.retrieve(conv.id).id == conv.id, "retrieve")
    first = o.responses.create(model=MODEL, conversation=conv.id, input="conversation turn one")
    check(first.output_text == "Hello! You said: conversation turn one", f"text: {first.output_text!r}")
    check(first.conversation.id == conv.id, f"echo: {first.conversation}")
    second = o.responses.create(model=MODEL, conversation={"id": conv.id}, input="conversation turn two")
    check(second.output_text == "Hello! You said: conversation turn two", f"text: {second.output_text!r}")
    items = o.conversations.items.list(conv.id, order="asc")
    kinds = [(i.type, getattr(i, "role", None)) for i in items.data]
    check(len(items.data) == 5, f"items: {kinds}")
    check(kinds[1] == ("message", "user") and kinds[2] == ("message", "assistant"), f"items: {kinds}")
    added = o.conversations.items.create(conv.id, items=[{"type": "message", "role": "user", "content": "noted"}])
    check(len(added.data) == 1 and added.data[0].id, f"added: {added}")
    got = o.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    check(got.id == added.data[0].id, f"item: {got}")
    o.conversations.items.delete(added.data[0].id, conversation_id=conv.id)
    check(len(o.conversations.items.list(conv.id).data) == 5, "item deleted")
    updated = o.conversations.update(conv.id, metadata={"topic": "changed"})
    check(updated.metadata == {"topic": "changed"}, f"updated: {updated}")
    try:
        o.responses.create(model=MODEL, conversation=conv.id, previous_response_id=first.id, input="x")
        check(False, "conversation and previous_response_id together were accepted")
    except openai.BadRequestError:
        pass
    deleted = o.conversations.delete(conv.id)
    check(deleted.deleted, f"deleted: {deleted}")
    try:
        o.conversations.retrieve(conv.id)
        check(False, "a deleted conversation is still there")
    except openai.NotFoundError:
        pass
    try:
        o.responses.create(model=MODEL, conversation=conv.id, input="x")
        check(False, "a deleted conversation was continued")
    except openai.NotFoundError as e:
        check(e.body.get("param") == "conversation", f"error body: {e.body}")


def input_tokens_and_fields(o):
    short = o.responses.input_tokens.count(model=MODEL, input="hello")
    longer = o.responses.input_tokens.count(model=MODEL, input="hello " * 200, tools=[WEATHER])
    check(short.object == "response.input_tokens" and short.input_tokens > 0, f"count: {short}")
    check(longer.input_tokens > short.input_tokens + 300, f"counts: {short} {longer}")
    r = o.responses.create(
        model=MODEL, input="fields", include=["reasoning.encrypted_content"], truncation="auto",
        max_tool_calls=2, parallel_tool_calls=False, prompt_cache_key="pk", safety_identifier="u1",
        service_tier="auto",
    )
    check(r.status == "completed" and r.max_tool_calls == 2 and r.safety_identifier == "u1", f"echo: {r}")
    check(r.truncation == "auto" and r.prompt_cache_key == "pk", f"echo: {r}")
    try:
        o.responses.create(model=MODEL, input="x", service_tier="gold")
        check(False, "an unknown service_tier was accepted")
    except openai.BadRequestError as e:
        check("service_tier" in str(e), f"error: {e}")


CHECKS = [
    create,
    input_tokens_and_fields,
    conversations,
    stream,
    retrieve_and_items,
    previous_response,
    tool_round_trip,
    streamed_tool_call,
    background,
]


def main():
    base = sys.argv[1]
    o = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)
    failed = 0
    for fn in CHECKS:
        try:
            fn(o)
            print(f"ok   {fn.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}\n{traceback.format_exc()}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
