"""A small W3C WebDriver client (the JSON-over-HTTP protocol chromedriver
speaks), standard library only, for tests/dashboard_browser.py.

Written here rather than installed: the dozen commands the dashboard's
tests need are a few lines each, and it pins nothing (Selenium's Python
package pins a recent certifi and downloads drivers by itself).
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
ENTER = "\ue007"


class WebDriverError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_program(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(
        f"none of {names} is installed: apt-get install chromium chromium-driver "
        "(scripts/test.sh does)"
    )


class Browser:
    """Headless Chromium driven through chromedriver."""

    def __init__(self, width=1280, height=900):
        chromium = find_program("chromium", "chromium-browser")
        driver = find_program("chromedriver")
        port = free_port()
        self.driver = subprocess.Popen(
            [driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            try:
                if self._call("GET", "/status").get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if time.time() > deadline:
                raise AssertionError("chromedriver did not start")
            time.sleep(0.1)
        args = ["--headless=new", f"--window-size={width},{height}", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"]
        if os.geteuid() == 0:
            # Chromium's own sandbox refuses to run as root; only then.
            args.append("--no-sandbox")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "unhandledPromptBehavior": "ignore",
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                payload = json.loads(res.read() or b"{}")
        except urllib.error.HTTPError as e:
            payload = json.loads(e.read() or b"{}")
            value = payload.get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message')}")
        return payload.get("value", payload)

    def cmd(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def find(self, css):
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        self.cmd("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css, text):
        self.cmd("POST", f"/element/{self.find(css)}/value", {"text": text})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css)

    def accept_alert(self):
        self.cmd("POST", "/alert/accept", {})

    def alert_open(self):
        try:
            self.cmd("GET", "/alert/text")
            return True
        except WebDriverError:
            return False

    def console(self):
        """What the page wrote to its console (chromedriver's log endpoint)."""
        try:
            return [e["message"] for e in self.cmd("POST", "/se/log", {"type": "browser"})]
        except WebDriverError as e:
            return [str(e)]

    def resize(self, width, height):
        self.cmd("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path):
        png = base64.b64decode(self.cmd("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return len(png)

    def wait(self, what, pred, limit=10.0):
        """Polls pred() until it returns a true value, which it returns."""
        deadline = time.time() + limit
        last = None
        while time.time() < deadline:
            try:
                last = pred()
                if last:
                    return last
            except WebDriverError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"timed out after {limit} s waiting for {what} (last: {last!r})")

    def quit(self):
        try:
            self.cmd("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self.driver.terminate()
        self.driver.wait(10)
