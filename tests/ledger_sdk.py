"""Sends requests with the official Python SDKs under two keys and prints,
as JSON, the tokens each key's answers reported (what the SDKs parsed).

Usage: .tools/pyenv/bin/python tests/ledger_sdk.py BASE KEY_A KEY_B

Run by tests/integration/real_cli/ledger_e2e.rs, which compares the sums with the usage ledger.
Key A uses the Anthropic SDK (plain and streamed), key B the OpenAI SDK
(plain and streamed with include_usage).
"""

import json
import sys

import anthropic
import openai

MODEL = "claude-haiku-4-5"


def main():
    base, key_a, key_b = sys.argv[1:4]
    a = anthropic.Anthropic(base_url=base, api_key=key_a, max_retries=0)
    o = openai.OpenAI(base_url=base + "/v1", api_key=key_b, max_retries=0)
    totals = {"a": [0, 0, 0], "b": [0, 0, 0]}

    def add(who, inp, out):
        t = totals[who]
        t[0] += 1
        t[1] += inp
        t[2] += out

    for i in range(3):
        msg = a.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": f"ledger sdk a {i} [[words:{3 + i}]]"}],
        )
        add("a", msg.usage.input_tokens, msg.usage.output_tokens)
    with a.messages.stream(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": "ledger sdk a streamed [[words:6]]"}],
    ) as stream:
        final = stream.get_final_message()
    add("a", final.usage.input_tokens, final.usage.output_tokens)

    chat = o.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "ledger sdk b [[words:4]]"}],
    )
    add("b", chat.usage.prompt_tokens, chat.usage.completion_tokens)
    usage = None
    for chunk in o.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "ledger sdk b streamed [[words:9]]"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
    add("b", usage.prompt_tokens, usage.completion_tokens)
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
