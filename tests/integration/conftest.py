"""Fixtures for integration tests: a real engine, the base built once.

Every test that builds goes through the real ``nublado-build`` CLI and a
real Docker engine with BuildKit. The base image is built once per run
(``nublado-jupyterlab-base:test``); payload images are tagged ``*:test``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_TAG, require

REPO = Path(__file__).resolve().parents[2]
PAYLOADS = REPO / "payloads"
BASE_TAG = f"nublado-jupyterlab-base:{TEST_TAG}"


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


@pytest.fixture(scope="session")
def contract() -> Callable[..., dict[str, Any]]:
    """Return a function that runs ``nublado-build test`` and returns its summary."""

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
        assert junit.is_file()
        return summary

    return run
