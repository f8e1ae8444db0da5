"""The dashboard in a real browser: headless Chromium through chromedriver
(tests/webdriver.py), with the official Anthropic SDK as the client whose
requests the page shows.

Usage: .tools/pyenv/bin/python tests/dashboard_browser.py SCENARIO BASE
       ADMIN_KEY CLIENT_KEY CLIENT_NAME POOL_SIZE LIMITED_ACCOUNT SCREENSHOT_DIR

SCENARIO is `tour` (every view) or `restart` (the page reconnects after the
daemon restarts: the script prints RESTART and waits for a line on its
standard input, which the test writes once the new daemon listens).

Run by tests/integration/real_cli/dashboard_browser.rs against a daemon with the real CLI and
the fake upstream, whose account LIMITED_ACCOUNT answers 429 (retry-after: 60).
Each scenario prints one `ok` line; a screenshot of each view is saved.
"""

import json
import os
import re
import sys
import time
import urllib.request

import anthropic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import ENTER, Browser  # noqa: E402

MODEL = "claude-haiku-4-5"
scenario, base, admin_key, client_key, client_name, pool_size, limited, shots = sys.argv[1:9]
pool_size = int(pool_size)
os.makedirs(shots, exist_ok=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def sdk(key):
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)


def ask(key, text):
    return sdk(key).messages.with_raw_response.create(
        model=MODEL, max_tokens=32, messages=[{"role": "user", "content": text}])


def health():
    req = urllib.request.Request(base + "/health", headers={"x-api-key": admin_key})
    with urllib.request.urlopen(req) as res:
        return json.loads(res.read())


def shot(b, name):
    size = b.screenshot(os.path.join(shots, f"{name}.png"))
    print(f"   screenshot {name}.png ({size} bytes)")


def rows(b, table):
    return b.js(f"return document.querySelectorAll('#{table} tbody tr').length;")


def view(b, name):
    b.click(f'#nav button[data-view="{name}"]')
    b.wait(f"the {name} view", lambda: b.js(f"return !document.querySelector('#view-{name}').hidden;"))


def sign_in(b, key):
    b.js("document.querySelector('#key').value = '';")
    b.type("#key", key)
    b.click('#signin button[type="submit"]')


def signs_in_and_a_client_key_is_refused(b):
    b.go(base + "/admin")
    sign_in(b, client_key)
    refusal = b.wait("the refusal", lambda: b.text("#signin-error"))
    check("client key" in refusal and "admin key" in refusal, f"refusal: {refusal}")
    check(b.js("return document.querySelector('#nav').hidden;"), "no views for a client key")
    check(b.js("return sessionStorage.length;") == 0, "a refused key is not kept")
    shot(b, "signin-refused")
    sign_in(b, admin_key)
    b.wait("the views", lambda: not b.js("return document.querySelector('#nav').hidden;"))
    check(b.js("return sessionStorage.getItem('claude-pool-admin-key');") == admin_key,
          "the key is kept in the tab's session storage")
    check(b.js("return document.cookie;") == "", "no cookies")
    b.wait("the live stream", lambda: b.text("#live") == "live")
    print("ok a client key is refused with a clear message; the admin key signs in; stream live")


def shows_the_pool(b):
    view(b, "pool")
    b.wait(f"{pool_size} workers", lambda: rows(b, "workers") == pool_size)
    b.wait("workers ready", lambda: b.js(
        "return [...document.querySelectorAll('#workers tbody tr td:nth-child(2)')]"
        ".every(td => td.textContent !== 'starting');"), limit=60)
    accounts = b.js("return [...document.querySelectorAll('#workers tbody tr td:nth-child(5)')]"
                    ".map(td => td.textContent).sort();")
    check(accounts == ["a", "b"], f"each worker's account: {accounts}")
    held = b.js("return [...document.querySelectorAll('#workers tbody tr td.holds')]"
                ".map(td => td.textContent);")
    check(held == ["blank"] * pool_size, f"before any request every worker is blank: {held}")
    print(f"ok the worker table shows pool.size = {pool_size} workers, their accounts, all blank")


def a_request_appears_in_the_live_tail(b):
    view(b, "requests")
    raw = ask(client_key, "hello dashboard")
    done = time.time()
    message = raw.parse()
    request_id = raw.headers["request-id"]
    row = f'#requests tbody tr[data-id="{request_id}"]'
    b.wait("the request's row", lambda: b.js(f"return !!document.querySelector('{row}');"), limit=2.0)
    seen = time.time() - done
    key = b.text(f"{row} td.key")
    tokens = b.text(f"{row} td.tokens")
    check(key == client_name, f"key column: {key}")
    numbers = [int(n.replace(",", "")) for n in re.findall(r"[\d,]+", tokens)]
    check(numbers == [message.usage.input_tokens, message.usage.output_tokens],
          f"tokens column {tokens!r} vs usage {message.usage}")
    # Keyboard: the row takes focus and Enter opens its details.
    b.js(f"window.renders = 0; new MutationObserver(() => window.renders++)"
         f".observe(document.querySelector('#requests tbody'), {{childList: true}});")
    b.cmd("POST", f"/element/{b.find(row)}/value", {"text": ENTER})
    print("   re-renders around the key press:", b.js("return window.renders;"))
    b.wait("the details", lambda: b.js("return document.querySelector('#dialog').open;"))
    check(request_id in b.text("#dialog-body"), "details name the request")
    shot(b, "request-details")
    b.click("#dialog-close")
    # The worker that answered now holds the request's system prompt.
    view(b, "pool")
    b.wait("a worker holding a prompt", lambda: b.js(
        "return [...document.querySelectorAll('#workers tbody tr td.holds')]"
        ".some(td => td.textContent.startsWith('prompt '));"), limit=5)
    view(b, "requests")
    # The status filter: only the errors (the client key's refused sign-in).
    b.click('#filter-status option[value="error"]')
    b.wait("errors only", lambda: b.js(
        "const rows = [...document.querySelectorAll('#requests tbody tr')];"
        "return rows.length > 0 && rows.every(r => r.classList.contains('err'));"))
    b.click('#filter-status option[value=""]')
    b.wait("every row again", lambda: b.js(f"return !!document.querySelector('{row}');"))
    shot(b, "requests")
    print(f"ok the SDK's request is in the live tail {seen:.2f} s after it returned, "
          f"with key {key} and tokens {tokens}")
    return seen


def a_key_made_in_the_page_works_until_revoked_there(b):
    view(b, "keys")
    b.type("#new-key-name", "made-in-browser")
    b.type("#new-key-day", "1000000")
    b.click('#new-key button[type="submit"]')
    secret = b.wait("the new secret", lambda: b.text("#secret"))
    check(secret.startswith("cpk_"), f"secret: {secret}")
    check(b.js("return !!document.querySelector('#copy-secret');"), "a copy button")
    b.click("#dialog-close")
    reply = ask(secret, "from a key made in the browser").parse()
    check(reply.content[0].text, "the new key works")
    row = 'tr[data-key="made-in-browser"]'
    b.wait("the key's row", lambda: b.js(f"return !!document.querySelector('{row}');"))
    b.wait("its usage bar", lambda: b.js(
        f"return Number(document.querySelector('{row} [role=meter]').getAttribute('aria-valuenow')) > 0;"),
        limit=5)
    shot(b, "keys")
    b.click(f"{row} button.limits")
    b.type('#dialog-body input[name="tokens_month"]', "5000000")
    b.click('#dialog-body button[type="submit"]')
    b.wait("the month bar against the new limit", lambda: b.js(
        f"const m = document.querySelectorAll('{row} [role=meter]');"
        "return m.length === 2 && m[1].getAttribute('aria-valuemax') === '5000000';"))
    b.click(f"{row} button.revoke")
    b.wait("the confirm", b.alert_open)
    b.accept_alert()
    b.wait("the row gone", lambda: not b.js(f"return !!document.querySelector('{row}');"))
    try:
        ask(secret, "after revoke")
        raise AssertionError("a revoked key was served")
    except anthropic.AuthenticationError as e:
        check(e.status_code == 401, f"status {e.status_code}")
    print("ok a key made in the page (secret shown once) served the SDK; its limit changed in the page; "
          "revoked there, the SDK got 401")


def a_limited_account_shows_its_countdown(b):
    for i in range(8):
        accounts = {a["name"]: a for a in health()["accounts"]}
        if accounts[limited]["status"] == "limited":
            break
        ask(client_key, f"spread {i}")
    check(accounts[limited]["status"] == "limited", f"never limited: {accounts}")
    view(b, "accounts")
    countdown = f'tr[data-account="{limited}"] .countdown'
    first = b.wait("the countdown", lambda: b.text(countdown))
    check(re.fullmatch(r"(\d+ min )?\d+ s", first), f"countdown: {first}")

    def left(text):
        m = re.fullmatch(r"(?:(\d+) min )?(\d+) s", text)
        return int(m[1] or 0) * 60 + int(m[2])

    until = {a["name"]: a for a in health()["accounts"]}[limited]["limited_until"]
    expected = until - time.time()
    check(abs(left(first) - expected) <= 3 and expected > 20,
          f"countdown {first} vs limited_until in {expected:.0f} s")
    b.wait("the countdown to tick", lambda: left(b.text(countdown)) < left(first), limit=3)
    shot(b, "accounts")
    print(f"ok account {limited}, limited by the upstream's 429, counts down: {first}")


def a_batch_progress_bar_reaches_100(b):
    batch = sdk(client_key).messages.batches.create(requests=[
        {"custom_id": f"r{i}", "params": {"model": MODEL, "max_tokens": 16,
                                          "messages": [{"role": "user", "content": f"batch {i}"}]}}
        for i in range(3)])
    view(b, "batches")
    bar = f'tr[data-batch="{batch.id}"] [role=progressbar]'
    b.wait("the batch row", lambda: b.js(f"return !!document.querySelector('{bar}');"), limit=5)
    b.wait("100 %", lambda: b.js(
        f"return document.querySelector('{bar}').getAttribute('aria-valuenow') === '100';"), limit=120)
    check(b.text(f'tr[data-batch="{batch.id}"] .badge') == "ended", "ended")
    shot(b, "batches")
    slow = sdk(client_key).messages.batches.create(requests=[
        {"custom_id": f"s{i}", "params": {"model": MODEL, "max_tokens": 16, "messages": [
            {"role": "user", "content": f"slow {i} [[slow:40]]"}]}} for i in range(8)])
    row = f'tr[data-batch="{slow.id}"]'
    b.wait("the slow batch", lambda: b.js(f"return !!document.querySelector('{row} button.cancel');"), limit=5)
    b.click(f"{row} button.cancel")
    b.wait("the confirm", b.alert_open)
    b.accept_alert()
    b.wait("ended", lambda: b.text(f"{row} .badge") == "ended", limit=60)
    title = b.js(f"return document.querySelector('{row} [role=progressbar]').title;")
    canceled = int(re.search(r"(\d+) canceled", title)[1])
    check(canceled > 0, f"nothing canceled: {title}")
    print(f"ok batch {batch.id}'s progress bar reached 100 % from the event stream; "
          f"another, canceled in the page, ended with {canceled} of 8 canceled")


def usage_and_phone_width(b):
    view(b, "usage")
    b.wait("usage bars", lambda: b.js("return document.querySelectorAll('#usage-by-key rect').length > 0;"))
    check(client_name in b.text("#usage-by-key"), "the key is in the legend")
    shot(b, "usage")
    view(b, "pool")
    shot(b, "pool")
    b.resize(390, 844)
    time.sleep(0.3)
    overflow = b.js("return document.documentElement.scrollWidth - window.innerWidth;")
    check(overflow <= 1, f"the page is {overflow} px wider than a phone")
    shot(b, "pool-phone")
    b.resize(1280, 900)
    b.cmd("POST", "/goog/cdp/execute", {"cmd": "Emulation.setEmulatedMedia", "params": {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]}})
    background = b.wait("dark colours", lambda: b.js(
        "const c = getComputedStyle(document.body).backgroundColor;"
        "return c === 'rgb(20, 20, 23)' ? c : null;"))
    shot(b, "pool-dark")
    print(f"ok usage charts drawn; the page fits a 390 px phone; dark when the system prefers ({background})")


def reconnects_after_a_restart(b):
    b.go(base + "/admin")
    sign_in(b, admin_key)
    b.wait("the live stream", lambda: b.text("#live") == "live")
    boot = b.wait("the boot", lambda: b.js("return state.boot;"))
    view(b, "requests")
    print("RESTART", flush=True)
    sys.stdin.readline()
    b.wait("the page to notice", lambda: b.js("return state.boot;") != boot, limit=20)
    b.wait("the stream live again", lambda: b.text("#live") == "live")
    raw = ask(client_key, "after the restart")
    done = time.time()
    row = f'#requests tbody tr[data-id="{raw.headers["request-id"]}"]'
    b.wait("the new daemon's request", lambda: b.js(f"return !!document.querySelector('{row}');"), limit=2.0)
    shot(b, "after-restart")
    print(f"ok after a restart the page reconnected by itself (boot {boot} -> "
          f"{b.js('return state.boot;')}) and showed a new request {time.time() - done:.2f} s after it returned")


def main():
    b = Browser()
    try:
        if scenario == "restart":
            reconnects_after_a_restart(b)
        else:
            signs_in_and_a_client_key_is_refused(b)
            shows_the_pool(b)
            a_request_appears_in_the_live_tail(b)
            a_key_made_in_the_page_works_until_revoked_there(b)
            a_limited_account_shows_its_countdown(b)
            a_batch_progress_bar_reaches_100(b)
            usage_and_phone_width(b)
    except Exception:
        try:
            shot(b, f"failure-{scenario}")
            print("console:", *b.console(), sep="\n  ")
        finally:
            b.quit()
        raise
    b.quit()


if __name__ == "__main__":
    main()
