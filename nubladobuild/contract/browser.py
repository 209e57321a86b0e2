"""A small headless-Chromium driver over the DevTools protocol (CDP).

Only what the contract's browser check needs: open a page, evaluate
JavaScript until a condition holds, take a screenshot. Chromium comes from
the system (Debian's ``chromium`` package); nothing is downloaded. The
protocol runs over a websocket (``websocket-client``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from nubladobuild.errors import TestFailed

#: Executables tried in order (``NUBLADO_CHROMIUM`` first when set).
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Flags that work in containers and CI: no sandbox (root), no GPU, no
#: background traffic, a fresh profile.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


class BrowserError(TestFailed):
    """Chromium could not be started or driven (a failed check, exit 1)."""


def find_chromium() -> str | None:
    """Return the Chromium executable to use, or None when there is none."""
    chosen = os.environ.get("NUBLADO_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).is_file() else shutil.which(chosen)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """A headless Chromium with one page, driven through CDP.

    Use as a context manager; the browser and its profile are removed on
    exit.

    Parameters
    ----------
    executable
        The Chromium binary.
    width, height
        The window size (and so the screenshot size).
    """

    def __init__(self, executable: str, width: int = 1400, height: int = 900) -> None:
        self.executable = executable
        self.size = (width, height)
        # Chromium's helper processes may still write to the profile while
        # it is removed: a leftover file is no reason to fail a check.
        self._profile = tempfile.TemporaryDirectory(prefix="nublado-chromium-",
                                                    ignore_cleanup_errors=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._next_id = 0

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def start(self, timeout: float = 60) -> None:
        """Start Chromium and connect to its first page."""
        import websocket  # websocket-client

        profile = Path(self._profile.name)
        argv = [self.executable, *FLAGS, f"--user-data-dir={profile}",
                "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        log = (profile / "chromium.log").open("wb")
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"chromium did not start: {self.log_tail()}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page_ws = ""
        while not page_ws:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                targets = json.loads(resp.read())
            page_ws = next((t["webSocketDebuggerUrl"] for t in targets
                            if t.get("type") == "page"), "")
            if not page_ws:
                if time.monotonic() > deadline:
                    raise BrowserError("chromium has no page target")
                time.sleep(0.2)
        self._ws = websocket.create_connection(page_ws, timeout=30,
                                               suppress_origin=True)
        self.call("Page.enable")
        self.call("Runtime.enable")

    def log_tail(self, chars: int = 2000) -> str:
        """Return the end of Chromium's own output."""
        path = Path(self._profile.name) / "chromium.log"
        return path.read_text(errors="replace")[-chars:] if path.is_file() else ""

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result (events are skipped)."""
        if self._ws is None:
            raise BrowserError("browser not started")
        self._next_id += 1
        ident = self._next_id
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") != ident:
                continue
            if "error" in message:
                raise BrowserError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    def navigate(self, url: str) -> None:
        """Open ``url`` in the page."""
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its (JSON) value."""
        result = self.call("Runtime.evaluate", expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 90,
                 interval: float = 0.5) -> Any:
        """Evaluate ``expression`` until it is truthy; return its value.

        Raises
        ------
        TimeoutError
            When it stays falsy for ``timeout`` seconds.

        """
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout} s still false: {expression}")
            time.sleep(interval)

    def screenshot(self, path: Path) -> Path:
        """Save a PNG screenshot of the page to ``path``."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Stop Chromium and remove its profile."""
        if self._ws is not None:
            try:
                self._ws.close()
            except OSError:
                pass
            self._ws = None
        if self._proc is not None:
            # Stop the whole process group: renderer and helper processes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
            self._proc = None
        self._profile.cleanup()
