"""The contract's browser driver: Playwright on the system's Chromium.

These start a real headless Chromium (no lab needed): without one they
skip, and fail under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nubladobuild.contract.browser import Browser, BrowserError, find_chromium
from nubladobuild.errors import EXIT_FAILED, TestFailed
from tests.conftest import require


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = find_chromium()
    require(path is not None, "no Chromium (apt-get install chromium)")
    assert path is not None
    with Browser(path, width=800, height=600, timeout=20) as started:
        yield started


def test_browser_error_is_a_failed_check() -> None:
    assert issubclass(BrowserError, TestFailed)
    assert BrowserError("x").exit_code == EXIT_FAILED


def test_find_chromium_honours_the_variable(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    chosen = tmp_path / "my-chromium"
    chosen.write_text("")
    monkeypatch.setenv("NUBLADO_CHROMIUM", str(chosen))
    assert find_chromium() == str(chosen)
    monkeypatch.setenv("NUBLADO_CHROMIUM", "no-such-chromium-anywhere")
    assert find_chromium() is None


def test_an_executable_that_is_not_chromium_fails_to_start(tmp_path: Path) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BrowserError, match="did not start under Playwright"):
        Browser(str(fake), timeout=20).start()


def test_the_system_chromium_renders_a_page(browser: Browser, tmp_path: Path) -> None:
    page = browser.page
    page.set_content("<p id='here'>nublado</p>")
    assert page.inner_text("#here") == "nublado"
    shot = browser.screenshot(tmp_path / "page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert browser.version.split(".")[0].isdigit()


def test_a_timeout_in_a_step_fails_with_screenshot_and_console(
        browser: Browser, tmp_path: Path) -> None:
    shot = tmp_path / "failed.png"
    browser.page.set_content("<script>console.log('hello from the page')</script>")
    with pytest.raises(BrowserError) as caught, \
            browser.step("find the missing element", shot) as page:
        page.locator("#missing").wait_for(timeout=300)
    message = caught.value.message
    assert message.startswith("browser check could not find the missing element: ")
    assert f"screenshot {shot}" in message
    assert "log: hello from the page" in message
    assert shot.is_file()


def test_a_failed_assertion_in_a_step_is_a_browser_error(
        browser: Browser, tmp_path: Path) -> None:
    shot = tmp_path / "assert.png"
    with pytest.raises(BrowserError, match="could not count: 1 != 2"), \
            browser.step("count", shot):
        raise AssertionError("1 != 2")
    assert shot.is_file()
