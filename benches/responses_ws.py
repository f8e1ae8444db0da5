"""One Codex-style session of TURNS turns against a claude-pool daemon, over
HTTP (POST /v1/responses with the whole input each turn, store: false, as
Codex sends it) or over the WebSocket (response.create with
previous_response_id and only the new input). Prints one JSON line per turn:
{"ms": latency to response.completed, "bytes": request bytes sent}.

Usage: python benches/responses_ws.py http|ws http://127.0.0.1:PORT TURNS TAG
Run by benches/responses_ws.rs.
"""

import json
import sys
import time

import http.client
from urllib.parse import urlparse
from websockets.sync.client import connect

MODEL = "claude-haiku-4-5"
INSTRUCTIONS = "You are a coding agent. " + "Follow the repository's conventions. " * 40
TOOLS = [{
    "type": "function", "name": "exec_command", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
}]


def user(text):
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def question(tag, turn):
    return f"{tag} turn {turn}: look at the next file and tell me what it does, briefly."


def body(items, **extra):
    return {"model": MODEL, "instructions": INSTRUCTIONS, "tools": TOOLS, "input": items,
            "store": False, "stream": True, **extra}


def over_http(base, turns, tag):
    history = []
    where = urlparse(base)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=120)
    for turn in range(turns):
        history.append(user(question(tag, turn)))
        payload = json.dumps(body(history))
        start = time.monotonic()
        final = None
        conn.request("POST", "/v1/responses", body=payload, headers={"content-type": "application/json"})
        r = conn.getresponse()
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "response.completed":
                    final = event["response"]
        print(json.dumps({"ms": (time.monotonic() - start) * 1000, "bytes": len(payload)}), flush=True)
        history.extend(final["output"])
    conn.close()


def over_socket(base, turns, tag):
    url = base.replace("http://", "ws://", 1) + "/v1/responses"
    previous = None
    with connect(url, max_size=None) as ws:
        for turn in range(turns):
            message = body([user(question(tag, turn))], type="response.create")
            del message["stream"]
            if previous:
                message["previous_response_id"] = previous
            payload = json.dumps(message)
            start = time.monotonic()
            ws.send(payload)
            while True:
                event = json.loads(ws.recv(timeout=120))
                if event["type"] == "response.completed":
                    previous = event["response"]["id"]
                    break
                if event["type"] in ("error", "response.failed"):
                    raise SystemExit(f"turn {turn}: {event}")
            print(json.dumps({"ms": (time.monotonic() - start) * 1000, "bytes": len(payload)}), flush=True)


if __name__ == "__main__":
    mode, base, turns, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    (over_http if mode == "http" else over_socket)(base, turns, tag)
