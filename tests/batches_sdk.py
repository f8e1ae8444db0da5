"""Drives claude-pool's Message Batches API with the official Python SDK.

Usage: .tools/pyenv/bin/python tests/batches_sdk.py http://127.0.0.1:PORT SCENARIO

Run by tests/integration/real_cli/batches_e2e.rs against a daemon with the real CLI and the fake
upstream (tests/common/upstream.rs), whose `[[marker]]`s script the replies.
Scenarios:
- lifecycle: create (one request the upstream fails) -> poll -> results per
  custom_id -> list (paged) -> delete; invalid batches are refused by name.
- cancel: cancel a batch mid-way; queued requests end canceled.
Prints what it checked; exits 1 on the first failure.
"""

import sys
import time

import anthropic

MODEL = "claude-haiku-4-5"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def params(text):
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
    }


def wait_ended(client, batch_id, limit=180):
    deadline = time.time() + limit
    while time.time() < deadline:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not end within {limit}s: {batch}")


def results_by_id(client, batch_id):
    seen = {}
    for line in client.messages.batches.results(batch_id):
        check(line.custom_id not in seen, f"custom_id {line.custom_id} twice in the results")
        seen[line.custom_id] = line.result
    return seen


def lifecycle(client):
    ids = [f"item-{i}" for i in range(4)]
    requests = [{"custom_id": i, "params": params(f"tell {i}")} for i in ids]
    requests.append({"custom_id": "broken", "params": params("fail me [[status:400]]")})
    batch = client.messages.batches.create(requests=requests)
    check(batch.id.startswith("msgbatch_"), f"id: {batch.id}")
    check(batch.type == "message_batch", f"type: {batch.type}")
    check(batch.processing_status == "in_progress", f"status: {batch.processing_status}")
    check(batch.request_counts.processing == 5, f"counts: {batch.request_counts}")
    check(batch.results_url is None, f"results_url before the end: {batch.results_url}")
    check((batch.expires_at - batch.created_at).total_seconds() == 86400, "expires 24 h later")
    try:
        client.messages.batches.delete(batch.id)
        raise AssertionError("deleting a batch in progress succeeded")
    except anthropic.BadRequestError as e:
        check("still processing" in e.body["error"]["message"], f"delete refusal: {e.body}")
    print("ok created", batch.id)

    ended = wait_ended(client, batch.id)
    counts = ended.request_counts
    check((counts.succeeded, counts.errored, counts.processing) == (4, 1, 0), f"counts: {counts}")
    check(ended.ended_at is not None and ended.ended_at >= ended.created_at, "ended_at")
    check(ended.results_url.startswith("http://127.0.0.1:"), f"results_url: {ended.results_url}")
    check(ended.results_url.endswith(f"/v1/messages/batches/{batch.id}/results"), "results_url path")
    print("ok ended", counts)

    results = results_by_id(client, batch.id)
    check(sorted(results) == sorted(ids + ["broken"]), f"custom_ids: {sorted(results)}")
    for i in ids:
        r = results[i]
        check(r.type == "succeeded", f"{i}: {r}")
        check(r.message.content[0].text == f"Hello! You said: tell {i}", f"{i}: {r.message.content}")
        check(r.message.model == MODEL and r.message.usage.output_tokens > 0, f"{i}: {r.message}")
    broken = results["broken"]
    check(broken.type == "errored", f"broken: {broken}")
    check(broken.error.error.type == "invalid_request_error", f"broken: {broken.error}")
    print("ok results", {k: v.type for k, v in results.items()})

    second = client.messages.batches.create(requests=[{"custom_id": "one", "params": params("again")}])
    listed = client.messages.batches.list(limit=1)
    check([b.id for b in listed.data] == [second.id], f"newest first: {listed.data}")
    check(listed.has_more and listed.first_id == second.id, f"page: {listed}")
    every = [b.id for b in client.messages.batches.list(limit=1)]  # auto-pagination
    check(every[:2] == [second.id, batch.id], f"all pages: {every}")
    print("ok list", every)

    deleted = client.messages.batches.delete(batch.id)
    check(deleted.id == batch.id and deleted.type == "message_batch_deleted", f"deleted: {deleted}")
    try:
        client.messages.batches.retrieve(batch.id)
        raise AssertionError("a deleted batch is still there")
    except anthropic.NotFoundError:
        pass
    wait_ended(client, second.id)
    print("ok deleted")

    for bad, why in [
        ([{"custom_id": "a", "params": params("x")}, {"custom_id": "a", "params": params("y")}],
         "requests[1]"),
        ([{"custom_id": "no spaces", "params": params("x")}], "requests[0]"),
        ([{"custom_id": "a", "params": {"model": MODEL, "max_tokens": 5, "messages": []}}],
         "requests[0]: (a) params.messages"),
    ]:
        try:
            client.messages.batches.create(requests=bad)
            raise AssertionError(f"accepted: {bad}")
        except anthropic.BadRequestError as e:
            check(e.body["error"]["message"].startswith(why), f"{why}: {e.body}")
    print("ok invalid batches refused")


def cancel(client):
    n = 12
    requests = [{"custom_id": f"c{i}", "params": params(f"slow {i} [[slow:50]]")} for i in range(n)]
    batch = client.messages.batches.create(requests=requests)
    time.sleep(1.5)  # let the first request start; the rest wait for the one worker
    canceling = client.messages.batches.cancel(batch.id)
    check(canceling.processing_status in ("canceling", "ended"), f"status: {canceling}")
    check(canceling.cancel_initiated_at is not None, "cancel_initiated_at")
    ended = wait_ended(client, batch.id)
    counts = ended.request_counts
    check(counts.succeeded >= 1 and counts.canceled >= n - 4, f"counts: {counts}")
    check(counts.succeeded + counts.canceled == n, f"counts: {counts}")
    results = results_by_id(client, batch.id)
    check(len(results) == n, f"one result per request: {len(results)}")
    kinds = [results[f"c{i}"].type for i in range(n)]
    check(set(kinds) == {"succeeded", "canceled"}, f"kinds: {kinds}")
    print("ok canceled mid-way", counts)


def main():
    base, scenario = sys.argv[1], sys.argv[2]
    client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0, timeout=60)
    {"lifecycle": lifecycle, "cancel": cancel}[scenario](client)
    print("PASS", scenario)


if __name__ == "__main__":
    main()
