"""Drives a running claude-pool daemon with the official Python SDKs.

Usage: .tools/pyenv/bin/python tests/sdk_compat.py http://127.0.0.1:PORT

Run by tests/integration/real_cli/sdk_compat.rs against a daemon using the real CLI and the fake
upstream (tests/common/upstream.rs), whose `[[marker]]`s script the replies.
Every check runs; each prints `ok` or `FAIL` with the reason, and the exit
status is 1 if any failed.
"""

import json
import sys
import traceback

import anthropic
import openai

MODEL = "claude-haiku-4-5"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def anthropic_create(a, _o):
    msg = a.messages.create(
        model=MODEL,
        max_tokens=64,
        system="You are terse.",
        messages=[{"role": "user", "content": "sdk hello"}],
    )
    check(msg.type == "message" and msg.role == "assistant", f"shape: {msg}")
    check(msg.content[0].type == "text", f"first block: {msg.content}")
    check(msg.content[0].text == "Hello! You said: sdk hello", f"text: {msg.content[0].text!r}")
    check(msg.stop_reason == "end_turn", f"stop_reason: {msg.stop_reason}")
    check(msg.usage.input_tokens > 0, f"usage: {msg.usage}")
    check(msg.usage.output_tokens > 0, f"usage: {msg.usage}")
    check(msg.model == MODEL, f"model: {msg.model}")


def anthropic_stream(a, _o):
    with a.messages.stream(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": "count [[words:6]]"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(text == "w0 w1 w2 w3 w4 w5 ", f"streamed text: {text!r}")
    check(final.content[0].text == text, f"final text: {final.content}")
    check(final.stop_reason == "end_turn", f"stop_reason: {final.stop_reason}")
    check(final.usage.output_tokens == 6, f"usage: {final.usage}")
    check(final.usage.input_tokens > 0, f"usage: {final.usage}")


def anthropic_error(a, _o):
    try:
        a.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "limit me [[status:429]]"}],
        )
    except anthropic.RateLimitError as e:
        check(e.status_code == 429, f"status: {e.status_code}")
        check(e.body["error"]["type"] == "rate_limit_error", f"body: {e.body}")
        return
    raise AssertionError("no RateLimitError raised")


def anthropic_bad_request(a, _o):
    try:
        a.messages.create(model=MODEL, max_tokens=64, messages=[])
    except anthropic.BadRequestError as e:
        check(e.body["error"]["type"] == "invalid_request_error", f"body: {e.body}")
        return
    raise AssertionError("no BadRequestError raised")


def anthropic_models(a, _o):
    ids = [m.id for m in a.models.list()]
    check(MODEL in ids and "sonnet" in ids, f"ids: {ids}")
    check(len(ids) == len(set(ids)), f"pagination repeated models: {ids}")
    one = a.models.retrieve(MODEL)
    check(one.id == MODEL and one.display_name, f"retrieve: {one}")


def anthropic_count_tokens(a, _o):
    count = a.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "Hello, world"}]
    )
    check(count.input_tokens == 14, f"input_tokens: {count.input_tokens}")


def openai_create(_a, o):
    res = o.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "openai sdk hello"},
        ],
    )
    choice = res.choices[0]
    check(choice.message.role == "assistant", f"message: {choice.message}")
    check(
        choice.message.content == "Hello! You said: openai sdk hello",
        f"content: {choice.message.content!r}",
    )
    check(choice.finish_reason == "stop", f"finish_reason: {choice.finish_reason}")
    check(res.usage.prompt_tokens > 0, f"usage: {res.usage}")
    check(
        res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens,
        f"usage: {res.usage}",
    )


def openai_stream(_a, o):
    stream = o.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count [[words:5]]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices
    )
    check(content == "w0 w1 w2 w3 w4 ", f"content: {content!r}")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check(finishes == ["stop"], f"finish reasons: {finishes}")
    usage = chunks[-1]
    check(usage.choices == [] and usage.usage is not None, f"last chunk: {usage}")
    check(usage.usage.completion_tokens == 5, f"usage: {usage.usage}")
    check(usage.usage.prompt_tokens > 0, f"usage: {usage.usage}")
    check(all(c.usage is None for c in chunks[:-1]), "usage only on the last chunk")


def openai_tools(_a, o):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Looks up the weather",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                },
            },
        }
    ]
    messages = [{"role": "user", "content": "weather in Lima? [[tool:get_weather]]"}]
    first = o.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    choice = first.choices[0]
    check(choice.finish_reason == "tool_calls", f"finish_reason: {choice.finish_reason}")
    calls = choice.message.tool_calls or []
    check(len(calls) == 1, f"tool_calls: {calls}")
    call = calls[0]
    check(call.type == "function" and call.function.name == "get_weather", f"call: {call}")
    check(
        json.loads(call.function.arguments) == {"query": "get_weather-input"},
        f"arguments: {call.function.arguments!r}",
    )
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append(
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}
    )
    second = o.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    done = second.choices[0]
    check(done.finish_reason == "stop", f"finish_reason: {done.finish_reason}")
    check(
        "18C and sunny" in (done.message.content or ""),
        f"content: {done.message.content!r}",
    )


def openai_error(_a, o):
    try:
        o.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "limit me [[status:429]]"}],
        )
    except openai.RateLimitError as e:
        check(e.status_code == 429, f"status: {e.status_code}")
        return
    raise AssertionError("no RateLimitError raised")


def openai_models(_a, o):
    ids = [m.id for m in o.models.list()]
    check(MODEL in ids, f"ids: {ids}")
    one = o.models.retrieve(MODEL)
    check(one.id == MODEL and one.owned_by == "anthropic", f"retrieve: {one}")


# The 429 checks come last: a 429 marks the pool's account rate-limited, and
# the daemon then answers 429 at once until the limit ends.
CHECKS = [
    anthropic_create,
    anthropic_stream,
    anthropic_bad_request,
    anthropic_models,
    anthropic_count_tokens,
    openai_create,
    openai_stream,
    openai_tools,
    openai_models,
    anthropic_error,
    openai_error,
]


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} BASE_URL")
    base = sys.argv[1].rstrip("/")
    print(f"anthropic {anthropic.__version__}, openai {openai.__version__}, daemon {base}")
    a = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0, timeout=60)
    o = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=60)
    failed = []
    for fn in CHECKS:
        try:
            fn(a, o)
            print(f"ok    {fn.__name__}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failed.append(fn.__name__)
            print(f"FAIL  {fn.__name__}: {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stdout)
    if failed:
        print(f"{len(failed)} of {len(CHECKS)} SDK checks failed: {', '.join(failed)}")
        sys.exit(1)
    print(f"all {len(CHECKS)} SDK checks passed")


if __name__ == "__main__":
    main()
