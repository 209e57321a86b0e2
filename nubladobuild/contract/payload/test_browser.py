"""A real browser opens the running lab and finds the payload kernel.

Headless Chromium (the system's ``chromium``, driven by Playwright) loads
``/lab?token=...``; the check passes when the launcher offers the payload
kernel's display name. A screenshot of the page is saved as an artifact
(``--nublado-artifacts``). Without Chromium the check is skipped, or fails
under ``CI=true``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nubladobuild.contract.browser import Browser
from nubladobuild.contract.plugin import (
    ARTIFACTS,
    LEGACY_START,
    ImageInfo,
    Lab,
    finish_lab,
    lab_get,
    start_lab,
)

#: The launcher's card labels (JupyterLab 4).
LAUNCHER_LABEL = ".jp-LauncherCard-label"


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
        image_info: ImageInfo, artifacts_dir: Path,
        request: pytest.FixtureRequest) -> None:
    """A real browser's launcher offers the payload kernel."""
    base = browser_lab.base
    spec = lab_get(base, f"/api/kernelspecs/{image_info.kernel}", lab_token)
    display_name = spec["spec"]["display_name"]
    shot = artifacts_dir / f"launcher-{image_info.payload or 'image'}.png"
    start = time.monotonic()
    with Browser(chromium) as browser:
        with browser.step(f"find {display_name!r} in the launcher", shot) as page:
            page.goto(f"{base}/lab?token={lab_token}")
            cards = page.locator(LAUNCHER_LABEL)
            cards.filter(has_text=re.compile(f"^{re.escape(display_name)}$")
                         ).first.wait_for(timeout=120_000)
            labels = [label.strip() for label in cards.all_inner_texts()]
        browser.screenshot(shot)
    seconds = time.monotonic() - start
    ARTIFACTS.append((f"launcher screenshot ({image_info.image})", shot))
    request.node.user_properties.append(("screenshot", str(shot)))
    request.node.user_properties.append(("launcher_seconds", f"{seconds:.1f}"))
    print(f"launcher rendered in {seconds:.1f} s; screenshot: {shot}")
    assert shot.stat().st_size > 10_000, "screenshot is empty"
    assert display_name in labels, (
        f"launcher offers {labels}, not {display_name!r}; screenshot {shot}")
