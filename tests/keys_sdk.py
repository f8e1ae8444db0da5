"""Named keys, limits and the admin API through the official Python SDKs.

Usage: .tools/pyenv/bin/python tests/keys_sdk.py BASE_URL

Run by tests/integration/real_cli/keys_e2e.rs against a daemon with the real CLI and the fake
upstream, configured with an admin key `admin-secret-1`, a key `alice`
(`alice-secret-1`, requests_per_minute = 2 over a 4 s window) and a key `bob`
(`bob-secret-1`, only claude-haiku-4-5). Every check runs; each prints `ok`
or `FAIL`, and the exit status is 1 if any failed.
"""

import json
import sys
import time
import traceback

import urllib.error
import urllib.request

import anthropic
import openai

MODEL = "claude-haiku-4-5"
ADMIN = "admin-secret-1"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Reply:
    def __init__(self, status, text):
        self.status_code = status
        self.text = text

    def json(self):
        return json.loads(self.text)


def call(base, method, path, body=None, headers=None):
    """A plain HTTP call (the admin API has no SDK)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req) as res:
            return Reply(res.status, res.read().decode())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.read().decode())


class Admin:
    def __init__(self, base, headers):
        self.base, self.headers = base, headers

    def get(self, path):
        return call(self.base, "GET", path, headers=self.headers)

    def post(self, path, json=None):
        return call(self.base, "POST", path, json, self.headers)

    def patch(self, path, json=None):
        return call(self.base, "PATCH", path, json, self.headers)

    def delete(self, path):
        return call(self.base, "DELETE", path, headers=self.headers)


def clients(base, key):
    a = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    o = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    return a, o


def ask(a, text="hi"):
    return a.messages.with_raw_response.create(
        model=MODEL, max_tokens=32, messages=[{"role": "user", "content": text}]
    )


def rate_limits_answer_429_with_retry_after_and_reset(base):
    a, o = clients(base, "alice-secret-1")
    # A fresh window (an earlier check may have used it).
    time.sleep(4.2)
    first = ask(a)
    check(first.headers["anthropic-ratelimit-requests-limit"] == "2", f"{first.headers}")
    check(first.headers["anthropic-ratelimit-requests-remaining"] == "1", f"{first.headers}")
    check("anthropic-ratelimit-requests-reset" in first.headers, f"{first.headers}")
    second = o.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    check(second.headers["x-ratelimit-limit-requests"] == "2", f"{second.headers}")
    check(second.headers["x-ratelimit-remaining-requests"] == "0", f"{second.headers}")
    try:
        ask(a)
        raise AssertionError("a third request within the window passed")
    except anthropic.RateLimitError as e:
        check(e.status_code == 429, f"status {e.status_code}")
        body = e.response.json()
        check(body["error"]["type"] == "rate_limit_error", f"{body}")
        check("requests_per_minute = 2" in body["error"]["message"], f"{body}")
        retry = int(e.response.headers["retry-after"])
        check(1 <= retry <= 4, f"retry-after {retry}")
        check(e.response.headers["anthropic-ratelimit-requests-remaining"] == "0", "remaining")
    try:
        o.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("the OpenAI dialect passed too")
    except openai.RateLimitError as e:
        body = e.response.json()
        check(body["error"]["code"] == "rate_limit_exceeded", f"{body}")
        retry = int(e.response.headers["retry-after"])
    # After Retry-After the window has room again.
    time.sleep(retry + 0.2)
    again = ask(a)
    check(again.parse().content[0].text, "an answer after the window")
    # Another key is not held back by alice's limit.
    b, _ = clients(base, "bob-secret-1")
    ask(b)


def a_key_gets_only_its_models(base):
    b, o = clients(base, "bob-secret-1")
    try:
        b.messages.create(
            model="claude-sonnet-5", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
        raise AssertionError("bob used a model he may not")
    except anthropic.PermissionDeniedError as e:
        msg = e.response.json()["error"]["message"]
        check("claude-haiku-4-5" in msg and "claude-sonnet-5" in msg, msg)
    try:
        o.chat.completions.create(model="opus", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("bob used opus")
    except openai.PermissionDeniedError as e:
        check(e.response.json()["error"]["param"] == "model", f"{e.response.text}")


def admin_and_client_keys_are_apart(base):
    admin = Admin(base, {"x-api-key": ADMIN})
    client_on_admin = call(base, "GET", "/admin/keys", headers={"x-api-key": "alice-secret-1"})
    check(client_on_admin.status_code == 403, f"client key on /admin: {client_on_admin.status_code}")
    check("client key" in client_on_admin.json()["error"]["message"], client_on_admin.text)
    nokey = call(base, "GET", "/admin/keys")
    check(nokey.status_code == 401, f"no key on /admin: {nokey.status_code}")
    a, _ = clients(base, ADMIN)
    try:
        ask(a)
        raise AssertionError("the admin key ran a job")
    except anthropic.AuthenticationError as e:
        check("admin key" in e.response.json()["error"]["message"], e.response.text)
    listed = admin.get("/admin/keys").json()["data"]
    names = [k["name"] for k in listed]
    check(names == ["alice", "bob"] or set(names) >= {"alice", "bob"}, f"{names}")
    text = json.dumps(listed)
    check("alice-secret-1" not in text and "secret_sha256" not in text, text)
    alice = next(k for k in listed if k["name"] == "alice")
    check(alice["source"] == "config" and alice["effective_limits"]["requests_per_minute"] == 2, f"{alice}")
    check(alice["last_used_at"], f"last use: {alice}")
    # Config keys are read-only; unknown keys are 404; bad bodies name the field.
    r = admin.patch("/admin/keys/alice", json={"weight": 3})
    check(r.status_code == 409, f"patch config key: {r.status_code} {r.text}")
    r = admin.delete("/admin/keys/nobody")
    check(r.status_code == 404, f"delete unknown: {r.status_code}")
    r = admin.post("/admin/keys", json={"name": "x", "limits": {"rpm": 3}})
    check(r.status_code == 400 and "rpm" in r.text, f"bad limit: {r.status_code} {r.text}")
    r = admin.post("/admin/keys", json={"name": "has space"})
    check(r.status_code == 400 and "name" in r.text, f"bad name: {r.text}")
    r = admin.post("/admin/keys", json={"name": "alice"})
    check(r.status_code == 409, f"taken name: {r.status_code}")


def keys_made_by_the_api_work_until_revoked(base):
    admin = Admin(base, {"authorization": "Bearer " + ADMIN})
    r = admin.post("/admin/keys", json={"name": "carol", "limits": {"max_concurrent": 1}})
    check(r.status_code == 201, f"create: {r.status_code} {r.text}")
    made = r.json()
    secret = made["secret"]
    check(secret.startswith("cpk_") and len(secret) == 68, secret)
    check(made["prefix"] == secret[:12], f"{made}")
    listed = admin.get("/admin/keys").text
    check(secret not in listed and secret[12:] not in listed, "the secret is shown once")
    a, o = clients(base, secret)
    ask(a)
    o.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    r = admin.patch("/admin/keys/carol", json={"models": ["sonnet"]})
    check(r.status_code == 200 and r.json()["models"] == ["sonnet"], r.text)
    try:
        ask(a)
        raise AssertionError("carol's new model list did not apply")
    except anthropic.PermissionDeniedError:
        pass
    r = admin.delete("/admin/keys/carol")
    check(r.status_code == 200, f"revoke: {r.status_code}")
    try:
        a.messages.create(model="sonnet", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("a revoked key passed")
    except anthropic.AuthenticationError as e:
        check(e.status_code == 401, f"{e.status_code}")
    r = admin.delete("/admin/keys/carol")
    check(r.status_code == 404, f"revoke twice: {r.status_code}")


def an_expired_key_is_refused(base):
    admin = Admin(base, {"x-api-key": ADMIN})
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
    r = admin.post("/admin/keys", json={"name": "dave", "expires_at": at})
    check(r.status_code == 201, r.text)
    a, _ = clients(base, r.json()["secret"])
    ask(a)
    time.sleep(4)
    try:
        ask(a)
        raise AssertionError("an expired key passed")
    except anthropic.AuthenticationError as e:
        check("expired" in e.response.json()["error"]["message"], e.response.text)


CHECKS = [
    rate_limits_answer_429_with_retry_after_and_reset,
    a_key_gets_only_its_models,
    admin_and_client_keys_are_apart,
    keys_made_by_the_api_work_until_revoked,
    an_expired_key_is_refused,
]


def main():
    base = sys.argv[1]
    failed = 0
    for check_fn in CHECKS:
        try:
            check_fn(base)
            print(f"ok   {check_fn.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {check_fn.__name__}\n{traceback.format_exc()}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
