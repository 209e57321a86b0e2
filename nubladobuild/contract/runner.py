"""Run the contract suite (and a payload's own tests) with pytest."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from nubladobuild.engine import engine
from nubladobuild.errors import InputError
from nubladobuild.loader import load_payload
from nubladobuild.resources import contract_dir


@dataclass
class Summary:
    """Counts of a contract run."""

    image: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    exit_code: int = 0
    failures: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed (and at least one ran)."""
        return self.exit_code == 0 and self.failed == 0 and self.errors == 0 \
            and self.passed > 0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        return {"image": self.image, "passed": self.passed, "failed": self.failed,
                "skipped": self.skipped, "errors": self.errors,
                "failures": self.failures, "skips": self.skips,
                "contract_ok": self.ok}

    def text(self) -> str:
        """Return a one-line human summary."""
        verdict = "meets the contract" if self.ok else "FAILS the contract"
        return (f"{self.image} {verdict}: {self.passed} passed, {self.failed} "
                f"failed, {self.skipped} skipped, {self.errors} errors")


class _Collector:
    """A pytest plugin object that counts outcomes."""

    def __init__(self, summary: Summary) -> None:
        self.summary = summary

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.passed:
                self.summary.passed += 1
            elif report.skipped:
                self.summary.skipped += 1
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) \
                    else str(report.longrepr)
                self.summary.skips.append(f"{report.nodeid}: {reason}")
            elif report.when == "setup":
                self.summary.errors += 1
                self.summary.failures.append(report.nodeid)
            else:
                self.summary.failed += 1
                self.summary.failures.append(report.nodeid)


def run_contract(image: str, payload_dir: Path | None, *,
                 junit_xml: Path | None = None, keyword: str | None = None,
                 quiet: bool = False) -> Summary:
    """Run the shipped contract and the payload's own tests against an image.

    Parameters
    ----------
    image
        The image to check.
    payload_dir
        The payload directory; its ``tests:`` directory runs too.
    junit_xml
        Where to write a JUnit XML report.
    keyword
        A pytest ``-k`` expression to select checks.
    quiet
        Suppress pytest's own output.
    """
    try:
        engine().images.get(image)
    except docker.errors.ImageNotFound:
        raise InputError(f"{image}: no such image on the engine. Build it with "
                         "`nublado-build build PAYLOAD_DIR --tag ...` or pull "
                         "it first.") from None
    paths = [str(contract_dir())]
    args = ["-p", "nubladobuild.contract.plugin", "--nublado-image", image,
            "-p", "no:cacheprovider", "-p", "no:pytest11.testinfra",
            "-o", "python_files=test_*.py",
            "--rootdir", str(contract_dir()), "-o", "addopts=", "-o", "testpaths="]
    if payload_dir is not None:
        loaded = load_payload(payload_dir)
        args += ["--nublado-payload", str(payload_dir)]
        if loaded.model.tests:
            tests = payload_dir / loaded.model.tests
            if not any(tests.glob("test_*.py")):
                raise InputError(f"{loaded.yaml_path}: tests: {tests} has no "
                                 "test_*.py files; add testinfra tests or drop "
                                 "the field.")
            paths.append(str(tests))
    if junit_xml is not None:
        args += ["--junit-xml", str(junit_xml)]
    if keyword:
        args += ["-k", keyword]
    args += ["-q", "-rfE"] if quiet else ["-v"]
    summary = Summary(image=image)
    # In quiet (JSON) mode stdout carries only the result: pytest's report
    # goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
        code = pytest.main([*args, *paths], plugins=[_Collector(summary)])
    summary.exit_code = int(code)
    return summary
