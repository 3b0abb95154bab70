"""A real `mlflow ui` on a store, and a real headless Chromium that renders its pages (browser tests).

No browser driver library: Chromium is driven over its DevTools protocol (JSON over a websocket), which
is enough to open a page, wait until MLflow has fetched and drawn it, read its DOM and screenshot it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Where the screenshots go (gitignored): a CI job can upload the folder.
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
INSTALL_HINT = "`make test-browser` installs it (Debian: apt-get install chromium)"


def chromium() -> str | None:
    """The Chromium (or Chrome) executable on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(db: Path, timeout_s: float = 90.0) -> Iterator[str]:
    """`mlflow ui` on the sqlite store `db`; yields its base URL and stops it afterwards.

    One worker and no job runner: the UI needs neither more, and each costs a process on a 2-core box.
    """
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db}"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = db.parent / "mlflow-ui.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow ui did not come up on {url}; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)  # the server and its worker processes
        proc.wait(timeout=30)


class Page:
    """One tab of a headless Chromium, driven over the DevTools protocol (a websocket, JSON calls)."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws  # an open websockets.sync.client connection, closed by its owner
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:  # events arrive in between; the reply carries our id
            msg = json.loads(self._ws.recv(timeout=120))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        """A fresh load: between two links of one single-page app a navigation only changes the hash,
        and the old page's DOM would answer `wait_for` until the new one is drawn."""
        self.call("Page.navigate", url="about:blank")
        self.wait_for("document.readyState === 'complete' && location.href === 'about:blank'")
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout_s: float = 90.0) -> None:
        """Poll the JavaScript `expression` until it is true: MLflow fetches and draws asynchronously."""
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''") or ""
                raise AssertionError(f"timed out waiting for {expression}; the page says:\n{text[:2000]}")
            time.sleep(0.5)

    def html(self) -> str:
        return self.evaluate("document.documentElement.outerHTML")

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path


@contextlib.contextmanager
def browser(height: int = 3600, timeout_s: float = 60.0) -> Iterator[Page]:
    """A headless Chromium with one tab; a tall window, since MLflow draws only the charts in view."""
    exe = chromium()
    if exe is None:
        raise RuntimeError(f"no Chromium on PATH: {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
        cmd += [f"--window-size=1600,{height}", "--remote-debugging-port=0", f"--user-data-dir={profile}"]
        proc = subprocess.Popen(
            [*cmd, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout_s
            while not (port_file.is_file() and port_file.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Chromium did not open its DevTools port ({' '.join(cmd)})")
                time.sleep(0.2)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                tabs = [t for t in json.loads(r.read()) if t.get("type") == "page"]
            from websockets.sync.client import connect

            with connect(tabs[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
                yield Page(ws)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
