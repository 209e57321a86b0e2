"""A real browser opens the running lab and finds the payload kernel.

Headless Chromium (the system's ``chromium``) loads ``/lab?token=...``; the
check passes when the launcher offers the payload kernel's display name. A
screenshot of the page is saved as an artifact (``--nublado-artifacts``).
Without Chromium the check is skipped, or fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nubladobuild.contract.browser import Browser, BrowserError, find_chromium
from nubladobuild.contract.plugin import (
    ARTIFACTS,
    ImageInfo,
    Lab,
    finish_lab,
    lab_get,
    start_lab,
)

LEGACY_START = "/opt/lsst/software/jupyterlab/runlab.sh"
LAUNCHER_LABELS = """(() => {
  const labels = Array.from(document.querySelectorAll('.jp-LauncherCard-label'));
  return labels.length ? labels.map(e => e.innerText.trim()) : null;
})()"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Return the Chromium executable; skip (fail under CI) when missing."""
    path = find_chromium()
    if path is None:
        reason = ("no Chromium found (apt-get install chromium, or set "
                  "NUBLADO_CHROMIUM)")
        if _in_ci():
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture
def browser_lab(image_info: ImageInfo, lab_token: str, chromium: str, host: Any
                ) -> Iterator[Lab]:
    """Start the lab as the controller would (legacy start when the image has it).

    The server log is checked when the test ends: an error line fails it.
    """
    legacy = host.file(LEGACY_START).exists
    lab = start_lab(image_info, lab_token, "arbitrary-uid-read-only",
                    command=[LEGACY_START] if legacy else None)
    try:
        yield lab
    finally:
        finish_lab(lab)


def test_browser_launcher_offers_payload_kernel(
        browser_lab: Lab, chromium: str, lab_token: str,
        image_info: ImageInfo, artifacts_dir: Path, record_property: Any) -> None:
    """A real browser's launcher offers the payload kernel."""
    base = browser_lab.base
    spec = lab_get(base, f"/api/kernelspecs/{image_info.kernel}", lab_token)
    display_name = spec["spec"]["display_name"]
    shot = artifacts_dir / f"launcher-{image_info.payload or 'image'}.png"
    start = time.monotonic()
    labels: list[str] = []
    with Browser(chromium) as browser:
        try:
            browser.navigate(f"{base}/lab?token={lab_token}")
            deadline = start + 120
            while time.monotonic() < deadline:
                labels = browser.wait_for(LAUNCHER_LABELS, timeout=120)
                if display_name in labels:
                    break
                time.sleep(0.5)
        except (TimeoutError, BrowserError) as exc:
            browser.screenshot(shot)
            pytest.fail(f"launcher did not render ({exc}); screenshot {shot}; "
                        f"chromium: {browser.log_tail(500)}")
        browser.screenshot(shot)
    seconds = time.monotonic() - start
    ARTIFACTS.append((f"launcher screenshot ({image_info.image})", shot))
    record_property("screenshot", str(shot))
    record_property("launcher_seconds", f"{seconds:.1f}")
    print(f"launcher rendered in {seconds:.1f} s; screenshot: {shot}")
    assert shot.stat().st_size > 10_000, "screenshot is empty"
    assert display_name in labels, (
        f"launcher offers {json.dumps(labels)}, not {display_name!r}; "
        f"screenshot {shot}")
