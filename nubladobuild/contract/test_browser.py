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
    ARBITRARY_UID,
    ARTIFACTS,
    Container,
    ImageInfo,
    lab_get,
    wait_for_api,
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


@pytest.fixture(scope="module")
def browser_lab(image_info: ImageInfo, lab_token: str, chromium: str, host: Any
                ) -> Iterator[tuple[Container, str]]:
    """Start the lab as the controller would (legacy start when the image has it)."""
    legacy = host.file(LEGACY_START).exists
    box = Container(image_info.image, publish=True, read_only=True,
                    user=f"{ARBITRARY_UID}:{ARBITRARY_UID}",
                    env={"JUPYTER_TOKEN": lab_token},
                    command=[LEGACY_START] if legacy else [])
    try:
        base, _ = wait_for_api(box)
        yield box, base
    finally:
        box.close()


def test_browser_launcher_offers_payload_kernel(
        browser_lab: tuple[Container, str], chromium: str, lab_token: str,
        image_info: ImageInfo, artifacts_dir: Path, record_property: Any) -> None:
    _, base = browser_lab
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
