"""Headless Chromium driven over its DevTools protocol: how long a page takes to load and to draw.

``--dump-dom`` and ``--screenshot`` cannot time anything; this opens the page in a real browser, waits
for the load event, then for a condition in the page (e.g. every trace drawn), and can take a screenshot.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

__all__ = ["Browser"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,900", "--remote-debugging-port=0"]


class Browser:
    def __init__(self) -> None:
        chromium = shutil.which("chromium")
        if chromium is None:
            raise FileNotFoundError("Debian's chromium is needed (bash .ci/browser installs it)")
        self.profile = tempfile.mkdtemp(prefix="bench-chromium-")
        self.process = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._port()
        import websocket

        targets = json.loads(_get(f"http://127.0.0.1:{port}/json"))
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=600, suppress_origin=True)
        self._id = 0
        self.call("Page.enable")

    def _port(self) -> str:
        path = os.path.join(self.profile, "DevToolsActivePort")
        for _ in range(300):
            if os.path.exists(path) and open(path).read().strip():
                return open(path).read().split()[0]
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    def call(self, method: str, **params: Any) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                return msg.get("result", {})

    def _event(self, name: str) -> None:
        while json.loads(self.ws.recv()).get("method") != name:
            pass

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str, drawn: str, timeout: float = 300) -> tuple[float, float]:
        """``(seconds to the load event, seconds until the JS expression ``drawn`` is true)`` for ``url``."""
        start = time.perf_counter()
        self.call("Page.navigate", url=url)
        self._event("Page.loadEventFired")
        loaded = time.perf_counter() - start
        while not self.evaluate(drawn):
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"{url} did not draw within {timeout:.0f}s")
            time.sleep(0.02)
        return loaded, time.perf_counter() - start

    def screenshot(self, path: str) -> str:
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        self.ws.close()
        self.process.terminate()
        self.process.wait(30)
        shutil.rmtree(self.profile, ignore_errors=True)


def _get(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()
