"""Headless Chromium for the contract's browser checks, driven by Playwright.

Playwright (its sync API) drives the system's Chromium (Debian's
``chromium`` package) through ``executable_path``: no browser is
downloaded and ``playwright install`` is never needed. Playwright's own
errors (a selector that never appears, a page that does not load) become a
:class:`BrowserError` with a screenshot and the page's console, so a browser
check fails as a :class:`~nubladobuild.errors.TestFailed`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import ConsoleMessage, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from nubladobuild.errors import TestFailed

#: Executables tried in order (``NUBLADO_CHROMIUM`` first when set).
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Flags that work in containers and CI: no sandbox (root), no GPU, no
#: background traffic (no component or update downloads).
FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--mute-audio")
#: Console messages kept for failure reports.
_CONSOLE_KEPT = 200


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
    """A headless Chromium with one page, driven by Playwright.

    Use as a context manager; the browser, its driver and its profile go
    on exit.

    Parameters
    ----------
    executable
        The Chromium binary (see :func:`find_chromium`).
    width, height
        The viewport size (and so the screenshot size).
    timeout
        Seconds any single Playwright action or wait may take unless it
        says otherwise.

    """

    def __init__(self, executable: str, width: int = 1400, height: int = 900,
                 timeout: float = 60) -> None:
        self.executable = executable
        self.size = (width, height)
        self.timeout = timeout
        self.console: list[str] = []
        self._playwright: Playwright | None = None
        self._browser: PlaywrightBrowser | None = None
        self._page: Page | None = None

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start Chromium and open its page.

        Raises
        ------
        BrowserError
            When Playwright's driver or Chromium does not start.

        """
        try:
            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable, headless=True, args=list(FLAGS),
                timeout=self.timeout * 1000)
            context = self._browser.new_context(
                viewport={"width": self.size[0], "height": self.size[1]})
            context.set_default_timeout(self.timeout * 1000)
            self._page = context.new_page()
        except PlaywrightError as exc:
            self.close()
            raise BrowserError(f"chromium ({self.executable}) did not start under "
                               f"Playwright: {_first_lines(exc)}") from exc
        self._page.on("console", self._keep_console)
        self._page.on("pageerror", lambda exc: self._keep(f"pageerror: {exc}"))

    def _keep_console(self, message: ConsoleMessage) -> None:
        self._keep(f"{message.type}: {message.text}")

    def _keep(self, line: str) -> None:
        self.console.append(line)
        del self.console[:-_CONSOLE_KEPT]

    @property
    def page(self) -> Page:
        """Return the page (raises BrowserError before :meth:`start`)."""
        if self._page is None:
            raise BrowserError("browser not started")
        return self._page

    @property
    def version(self) -> str:
        """Return Chromium's version."""
        if self._browser is None:
            raise BrowserError("browser not started")
        return self._browser.version

    def console_tail(self, lines: int = 15) -> str:
        """Return the page's last console messages, one a line."""
        return "\n".join(self.console[-lines:])

    def screenshot(self, path: Path) -> Path:
        """Save a PNG screenshot of the page's viewport to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.page.screenshot(path=str(path))
        except PlaywrightError as exc:
            raise BrowserError(f"no screenshot {path}: {_first_lines(exc)}") from exc
        return path

    @contextlib.contextmanager
    def step(self, what: str, shot: Path) -> Iterator[Page]:
        """Run a part of a check; a Playwright error or failed assertion fails it.

        Parameters
        ----------
        what
            What the part does, for the message (``"open the launcher"``).
        shot
            Where to save the screenshot taken when it fails.

        Yields
        ------
        Page
            The page.

        Raises
        ------
        BrowserError
            When Playwright raises (a timeout included) or an assertion
            (Playwright's ``expect`` too) fails: the message says what
            failed, names the screenshot and ends with the page's console.

        """
        try:
            yield self.page
        except (PlaywrightError, AssertionError) as exc:
            saved = ""
            with contextlib.suppress(BrowserError):
                saved = f"; screenshot {self.screenshot(shot)}"
            raise BrowserError(f"browser check could not {what}: {_first_lines(exc)}"
                               f"{saved}; page console:\n{self.console_tail()}"
                               ) from exc

    def close(self) -> None:
        """Stop Chromium and Playwright's driver."""
        if self._browser is not None:
            with contextlib.suppress(PlaywrightError):
                self._browser.close()
            self._browser = None
        if self._playwright is not None:
            with contextlib.suppress(PlaywrightError):
                self._playwright.stop()
            self._playwright = None
        self._page = None


def _first_lines(exc: BaseException, lines: int = 6) -> str:
    """Return the start of Playwright's (often long) message."""
    text = str(exc).strip().splitlines()
    return "\n".join(text[:lines])
