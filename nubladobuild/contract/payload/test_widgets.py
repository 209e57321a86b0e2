"""Widgets in a real browser: the frontend in the lab, the kernel in the payload.

A headless Chromium (the system's, driven by Playwright) opens the lab,
creates a notebook with the payload kernel from the launcher and runs
cells in it, as a user would:

- an ``ipywidgets.IntSlider(value=7)`` renders as a slider; dragging its
  handle with the mouse changes ``slider.value`` in the kernel (printed by
  the next cell), and a value set in the kernel moves the slider: a comm
  round trip across the two Pythons;
- an ipympl figure (``%matplotlib widget``) renders as a canvas with the
  plotted line drawn on it (without the lab's ipympl frontend, ipympl
  falls back to a static PNG: that fails the check).

No output may say "Error displaying widget" or "Model not found" (what
JupyterLab shows when the lab's frontend and the payload's kernel half
disagree). The checks run only when the payload's kernel can import
``ipywidgets`` (and, for the figure, ``ipympl``); otherwise they are
skipped with that reason. Screenshots go to the artifacts directory.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from nubladobuild.contract.browser import Browser
from nubladobuild.contract.plugin import (
    ARTIFACTS,
    LEGACY_START,
    Container,
    ImageInfo,
    finish_lab,
    lab_get,
    run_kernel,
    start_lab,
)

#: What JupyterLab shows when a widget's frontend is missing or disagrees.
WIDGET_ERRORS = re.compile(r"error displaying widget|model not found", re.IGNORECASE)
#: The kernel-side packages the checks need, and matplotlib for the figure.
_PACKAGES = ("ipywidgets", "ipympl", "matplotlib")
_VERSIONS = f"""
import importlib.metadata as metadata, json
found = {{}}
for name in {_PACKAGES!r}:
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""
#: Where a widget frontend comes from, for failure messages.
_FRONTEND_HINT = ("belongs in the lab venv: the base's standard profile, or the "
                  "payload's lab.extensions")
#: matplotlib's first colour ("C0", #1f77b4), the plotted line's.
_LINE_RGB = (31, 119, 180)
#: How many of a canvas's pixels have the line's colour (0 when none).
_LINE_PIXELS = """([root, rgb]) => {
  let best = 0;
  for (const canvas of root.querySelectorAll('canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d')
        .getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) < 30
          && Math.abs(data[i + 1] - rgb[1]) < 30
          && Math.abs(data[i + 2] - rgb[2]) < 30) count++;
    }
    best = Math.max(best, count);
  }
  return best;
}"""
#: Seconds the kernel may take to start, and each cell to run.
KERNEL_SECONDS = 180
CELL_SECONDS = 90


@pytest.fixture(scope="module")
def payload_packages(image_info: ImageInfo) -> dict[str, str | None]:
    """Return the versions of the widget packages the payload kernel imports.

    Asked of the payload's default kernel itself (its wrapper and setup
    run), in a one-off container: None for a package it does not have.
    """
    box = Container(image_info.image)
    try:
        result = run_kernel(box, image_info.kernel, _VERSIONS)
        legacy = box.exec("test", "-e", LEGACY_START).returncode == 0
    finally:
        box.close()
    assert result["status"] == "ok", result
    found: dict[str, str | None] = json.loads(result["stdout"].strip().splitlines()[-1])
    found["legacy-start"] = "yes" if legacy else None
    return found


def _need(packages: dict[str, str | None], *names: str) -> None:
    """Skip, naming the package, when the payload kernel lacks one of ``names``."""
    for name in names:
        if packages[name] is None:
            pytest.skip(f"the payload kernel cannot import {name}: no widget "
                        f"browser check for it")


@dataclass
class Notebook:
    """A notebook open in the browser, with the payload kernel."""

    browser: Browser
    page: Page
    shots: Path
    payload: str
    open_seconds: float

    def shot(self, name: str) -> Path:
        """Save a screenshot ``widgets-PAYLOAD-NAME.png``; list it as an artifact."""
        path = self.shots / f"widgets-{self.payload}-{name}.png"
        self.browser.screenshot(path)
        ARTIFACTS.append((f"widgets screenshot ({name})", path))
        return path

    def run(self, code: str, timeout: float = CELL_SECONDS) -> Locator:
        """Type ``code`` into the last (empty) cell, run it, wait until it ran.

        Returns
        -------
        Locator
            The cell that ran (its outputs are in ``.jp-OutputArea-output``).

        """
        cells = self.page.locator(".jp-Notebook .jp-Cell")
        cell = cells.nth(cells.count() - 1)
        editor = cell.locator(".cm-content")
        editor.click()
        # Inserted, not typed: no auto-indent or auto-closed brackets.
        self.page.keyboard.insert_text(code)
        self.page.keyboard.press("Shift+Enter")
        expect(cell.locator(".jp-InputPrompt")).to_have_text(
            re.compile(r"^\s*\[\d+\]:\s*$"), timeout=timeout * 1000)
        # Errors and stderr share a mime type; a warning on stderr (a font
        # cache being built) is no failure, a traceback is.
        stderr = cell.locator(".jp-OutputArea-output"
                              "[data-mime-type='application/vnd.jupyter.stderr']")
        for text in stderr.all_inner_texts():
            if "Traceback" in text:
                raise AssertionError(f"cell {code!r} failed: {text[-2000:]}")
        return cell

    def output(self, cell: Locator) -> str:
        """Return the text of a cell's outputs."""
        return "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts())

    def assert_no_widget_errors(self) -> None:
        """Fail when any output says a widget could not be displayed."""
        text = self.page.locator(".jp-Notebook").inner_text()
        found = WIDGET_ERRORS.search(text)
        assert found is None, (f"the notebook says {found.group(0)!r}: the lab's "
                               f"widget frontend and the payload's kernel half "
                               f"disagree or one is missing")


@pytest.fixture(scope="module")
def notebook(payload_packages: dict[str, str | None], image_info: ImageInfo,
             lab_token: str, chromium: str, artifacts_dir: Path) -> Iterator[Notebook]:
    """Start the lab as the controller does, open a notebook with the payload kernel.

    One lab and one notebook serve the module's checks; the server log is
    checked when they are done (an error line fails the last check).
    """
    _need(payload_packages, "ipywidgets")
    lab = start_lab(image_info, lab_token, "arbitrary-uid-read-only",
                    command=[LEGACY_START] if payload_packages["legacy-start"]
                    else None)
    try:
        spec = lab_get(lab.base, f"/api/kernelspecs/{image_info.kernel}", lab_token)
        display_name = spec["spec"]["display_name"]
        shot = artifacts_dir / f"widgets-{image_info.payload}-open-failed.png"
        with Browser(chromium) as browser:
            start = time.monotonic()
            with browser.step(f"open a notebook with {display_name!r}", shot) as page:
                page.goto(f"{lab.base}/lab?token={lab_token}")
                label = re.compile(f"^{re.escape(display_name)}$")
                cards = page.locator(".jp-LauncherCard[data-category='Notebook']")
                card = cards.filter(has=page.locator(".jp-LauncherCard-label",
                                                     has_text=label))
                card.first.click(timeout=120_000)
                page.locator(".jp-Notebook .jp-Cell .cm-content").first.wait_for(
                    timeout=120_000)
                # A cell run before the kernel is connected is dropped; the
                # toolbar's indicator says "idle" even before there is a
                # kernel, the status bar names the kernel and its state.
                page.locator(".jp-StatusBar-TextItem", has_text=re.compile(
                    f"^{re.escape(display_name)} \\| Idle$")).wait_for(
                        timeout=KERNEL_SECONDS * 1000)
            yield Notebook(browser=browser, page=page, shots=artifacts_dir,
                           payload=image_info.payload,
                           open_seconds=time.monotonic() - start)
    finally:
        finish_lab(lab)


def _record(request: pytest.FixtureRequest, name: str, value: str) -> None:
    # The node's user properties, not the record_property fixture: that one
    # warns under the xunit2 JUnit family `nublado-build test` writes.
    request.node.user_properties.append((name, value))


def _timed(request: pytest.FixtureRequest, name: str, start: float) -> None:
    seconds = time.monotonic() - start
    _record(request, f"{name}_seconds", f"{seconds:.1f}")
    print(f"{name}: {seconds:.1f} s")


def test_browser_widget_slider_round_trip(
        request: pytest.FixtureRequest,
        payload_packages: dict[str, str | None]) -> None:
    """An IntSlider renders; dragging it and setting it go both ways through comms."""
    _need(payload_packages, "ipywidgets")
    nb: Notebook = request.getfixturevalue("notebook")
    _record(request, "notebook_open_seconds", f"{nb.open_seconds:.1f}")
    start = time.monotonic()
    page = nb.page
    failed = nb.shots / f"widgets-{nb.payload}-slider-failed.png"
    with nb.browser.step("show and drag an IntSlider", failed):
        cell = nb.run("import ipywidgets\n"
                      "slider = ipywidgets.IntSlider(value=7, min=0, max=100, "
                      "description='nublado')\n"
                      "slider")
        slider = cell.locator(".jp-OutputArea-output .widget-slider")
        try:
            slider.wait_for(timeout=60_000)
        except PlaywrightError as exc:
            raise AssertionError(
                f"no slider rendered; the output says: {nb.output(cell)!r} (a "
                f"text fallback means the lab has no widget frontend: "
                f"jupyterlab_widgets {_FRONTEND_HINT})") from exc
        readout = slider.locator(".widget-readout")
        expect(readout).to_have_text("7")
        nb.shot("slider")
        nb.assert_no_widget_errors()
        # Drag the handle most of the way along the track with the mouse.
        handle = slider.locator(".noUi-handle, .ui-slider-handle").first
        track = slider.locator(".noUi-target, .ui-slider").first
        grip, rail = handle.bounding_box(), track.bounding_box()
        assert grip is not None and rail is not None, "slider has no box"
        y = grip["y"] + grip["height"] / 2
        page.mouse.move(grip["x"] + grip["width"] / 2, y)
        page.mouse.down()
        page.mouse.move(rail["x"] + rail["width"] * 0.8, y, steps=15)
        page.mouse.up()
        expect(readout).not_to_have_text("7")
        moved = readout.inner_text().strip()
        nb.shot("slider-dragged")
        # The kernel's value is the dragged one (frontend -> kernel) ...
        printed = nb.output(nb.run("print(slider.value)")).strip()
        assert printed == moved, (f"the slider shows {moved} after the drag but "
                                  f"the kernel says slider.value = {printed}")
        # ... and a value set in the kernel moves the slider (kernel -> frontend).
        nb.run("slider.value = 3")
        expect(readout).to_have_text("3")
        slider.scroll_into_view_if_needed()
        nb.shot("slider-moved")
        nb.assert_no_widget_errors()
    assert int(moved) > 7, f"dragging right moved the slider to {moved}"
    _timed(request, "slider", start)


def test_browser_ipympl_figure(
        request: pytest.FixtureRequest,
        payload_packages: dict[str, str | None]) -> None:
    """An ipympl figure renders as a canvas with the plotted line on it."""
    _need(payload_packages, "ipywidgets", "ipympl", "matplotlib")
    nb: Notebook = request.getfixturevalue("notebook")
    start = time.monotonic()
    failed = nb.shots / f"widgets-{nb.payload}-ipympl-failed.png"
    with nb.browser.step("show an ipympl figure", failed) as page:
        cell = nb.run("%matplotlib widget\n"
                      "import matplotlib.pyplot as plt\n"
                      "fig, ax = plt.subplots(figsize=(5, 3))\n"
                      "ax.plot([0, 1, 2, 3], [0, 1, 4, 9], linewidth=4)\n"
                      "ax.set_title('nublado ipympl')\n"
                      "plt.show()")
        figure = cell.locator(".jp-OutputArea-output .jupyter-matplotlib").first
        try:
            figure.wait_for(timeout=60_000)
        except PlaywrightError as exc:
            raise AssertionError(
                f"no ipympl figure rendered; the output says: {nb.output(cell)!r} "
                f"(a text or static PNG fallback means the lab has no ipympl "
                f"frontend: ipympl "
                f"{_FRONTEND_HINT})") from exc
        page.wait_for_function(_LINE_PIXELS, arg=[figure.element_handle(),
                                                   list(_LINE_RGB)],
                               timeout=60_000)
        pixels = page.evaluate(_LINE_PIXELS, [figure.element_handle(),
                                              list(_LINE_RGB)])
        figure.scroll_into_view_if_needed()
        nb.shot("ipympl")
        nb.assert_no_widget_errors()
    _record(request, "line_pixels", str(pixels))
    assert pixels > 100, f"only {pixels} pixels of the line on the canvas"
    _timed(request, "ipympl", start)

