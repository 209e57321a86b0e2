"""Run the contract suites (and a payload's own tests) with pytest.

The contract is split like docker-stacks' image hierarchy: the ``base``
suite checks what nublado-jupyterlab-base guarantees and runs on every
image; the ``payload`` suite runs on images with ``io.nublado.payload.*``
labels; the ``compat`` suite on images with an ``io.nublado.compat`` label;
``payload-tests`` are the payload's own tests (its ``tests:`` directory).
Which suites run is decided here, from the image's labels, and reported
in the summary.
"""

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

#: The suites, in the order they run.
SUITES = ("base", "payload", "compat", "payload-tests")
#: Name of the payload's own tests in the summary's test ids.
PAYLOAD_TESTS = "payload-tests"


@dataclass(frozen=True)
class Selection:
    """Which suites run on an image, and from where."""

    image_kind: str
    suites: tuple[str, ...]
    paths: dict[str, Path]


def select_suites(labels: dict[str, str], payload_tests: Path | None) -> Selection:
    """Choose the suites for an image from its labels.

    Parameters
    ----------
    labels
        The image's labels.
    payload_tests
        The payload's own tests directory, when there is one.

    Returns
    -------
    Selection
        ``image_kind`` (``base`` or ``payload``), the suites in order and
        the directory of each.

    """
    root = contract_dir()
    paths = {"base": root / "base"}
    is_payload = any(key.startswith("io.nublado.payload.") for key in labels)
    if is_payload:
        paths["payload"] = root / "payload"
        if labels.get("io.nublado.compat"):
            paths["compat"] = root / "compat"
        if payload_tests is not None:
            paths[PAYLOAD_TESTS] = payload_tests
    return Selection(image_kind="payload" if is_payload else "base",
                     suites=tuple(paths), paths=paths)


@dataclass
class Summary:
    """Outcome of a contract run: counts, suites and the test ids."""

    image: str
    image_kind: str = ""
    suites: list[str] = field(default_factory=list)
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    exit_code: int = 0
    failures: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    passed_tests: list[str] = field(default_factory=list)
    skipped_tests: list[str] = field(default_factory=list)
    xfailed: int = 0
    xfailed_tests: list[str] = field(default_factory=list)
    by_suite: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every check passed (and at least one ran)."""
        return self.exit_code == 0 and self.failed == 0 and self.errors == 0 \
            and self.passed > 0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        return {"image": self.image, "image_kind": self.image_kind,
                "suites": self.suites, "passed": self.passed,
                "failed": self.failed, "skipped": self.skipped,
                "errors": self.errors, "failures": self.failures,
                "skips": self.skips, "passed_tests": self.passed_tests,
                "skipped_tests": self.skipped_tests, "xfailed": self.xfailed,
                "xfailed_tests": self.xfailed_tests, "by_suite": self.by_suite,
                "contract_ok": self.ok}

    def text(self) -> str:
        """Return a one-line human summary."""
        verdict = "meets the contract" if self.ok else "FAILS the contract"
        return (f"{self.image} {verdict} (suites: {', '.join(self.suites)}): "
                f"{self.passed} passed, {self.failed} failed, {self.skipped} "
                f"skipped, {self.xfailed} known failures (xfail), {self.errors} "
                "errors")


class _Collector:
    """A pytest plugin object that records outcomes under stable test ids.

    A test id is ``SUITE/FILE::NAME[PARAM]`` (e.g.
    ``base/test_lab.py::test_lab_answers_api[default-user]``), whatever the
    install location. A failure at teardown (a lab server that logged an
    error) turns the test into a failure.
    """

    def __init__(self, summary: Summary, selection: Selection) -> None:
        self.summary = summary
        self.selection = selection
        self.ids: dict[str, str] = {}
        self.suite_of: dict[str, str] = {}
        for suite in selection.suites:
            summary.by_suite[suite] = {"passed": 0, "failed": 0, "skipped": 0,
                                       "xfailed": 0, "errors": 0}

    def _name(self, item: pytest.Item) -> tuple[str, str]:
        path = Path(item.path).resolve()
        for suite, root in self.selection.paths.items():
            with contextlib.suppress(ValueError):
                rel = path.relative_to(root.resolve()).as_posix()
                return suite, f"{suite}/{rel}::{item.nodeid.split('::', 1)[1]}"
        return "", item.nodeid

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            suite, name = self._name(item)
            self.ids[item.nodeid] = name
            self.suite_of[item.nodeid] = suite

    def _count(self, nodeid: str, outcome: str, delta: int = 1) -> None:
        setattr(self.summary, outcome, getattr(self.summary, outcome) + delta)
        suite = self.suite_of.get(nodeid, "")
        if suite in self.summary.by_suite:
            self.summary.by_suite[suite][outcome] += delta

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = self.ids.get(report.nodeid, report.nodeid)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.passed:
                self._count(report.nodeid, "passed")
                self.summary.passed_tests.append(name)
            elif report.skipped and hasattr(report, "wasxfail"):
                self._count(report.nodeid, "xfailed")
                self.summary.xfailed_tests.append(name)
            elif report.skipped:
                self._count(report.nodeid, "skipped")
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) \
                    else str(report.longrepr)
                self.summary.skipped_tests.append(name)
                self.summary.skips.append(f"{name}: {reason.removeprefix('Skipped: ')}")
            elif report.when == "setup":
                self._count(report.nodeid, "errors")
                self.summary.failures.append(name)
            else:
                self._count(report.nodeid, "failed")
                self.summary.failures.append(name)
        elif report.when == "teardown" and report.failed:
            # The test's own container failed its check at teardown (e.g.
            # an error in the lab server log): the test fails.
            if name in self.summary.passed_tests:
                self.summary.passed_tests.remove(name)
                self._count(report.nodeid, "passed", -1)
                self._count(report.nodeid, "failed")
                self.summary.failures.append(f"{name} (at teardown)")
            elif name not in self.summary.failures:
                self._count(report.nodeid, "errors")
                self.summary.failures.append(f"{name} (at teardown)")


def run_contract(image: str, payload_dir: Path | None, *,
                 junit_xml: Path | None = None, keyword: str | None = None,
                 quiet: bool = False) -> Summary:
    """Run the contract suites that apply to an image, and the payload's tests.

    Parameters
    ----------
    image
        The image to check.
    payload_dir
        The payload directory; its ``tests:`` directory runs too. Refused
        for a base image (no ``io.nublado.payload.*`` labels).
    junit_xml
        Where to write a JUnit XML report.
    keyword
        A pytest ``-k`` expression to select checks.
    quiet
        Suppress pytest's own output.

    Returns
    -------
    Summary
        Counts, the suites that ran, and the ids of passed and skipped tests.

    Raises
    ------
    InputError
        When the image is not on the engine, or a payload directory is given
        for a base image, or the payload's ``tests:`` has no test files.

    """
    try:
        labels = engine().images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        raise InputError(f"{image}: no such image on the engine. Build it with "
                         "`nublado-build build PAYLOAD_DIR --tag ...` or pull "
                         "it first.") from None
    args = ["-p", "nubladobuild.contract.plugin", "--nublado-image", image,
            "-p", "no:cacheprovider", "-p", "no:pytest11.testinfra",
            "-o", "python_files=test_*.py",
            "--rootdir", str(contract_dir()), "-o", "addopts=", "-o", "testpaths="]
    tests: Path | None = None
    if payload_dir is not None:
        if not any(key.startswith("io.nublado.payload.") for key in labels):
            raise InputError(f"{image} has no io.nublado.payload.* labels: it is a "
                             f"base image, not one built from {payload_dir}. Run "
                             f"`nublado-build test {image}` for the base suite.")
        loaded = load_payload(payload_dir)
        args += ["--nublado-payload", str(payload_dir)]
        if loaded.model.tests:
            tests = payload_dir / loaded.model.tests
            if not any(tests.glob("test_*.py")):
                raise InputError(f"{loaded.yaml_path}: tests: {tests} has no "
                                 "test_*.py files; add testinfra tests or drop "
                                 "the field.")
    selection = select_suites(labels, tests)
    if junit_xml is not None:
        args += ["--junit-xml", str(junit_xml)]
    if keyword:
        args += ["-k", keyword]
    args += ["-q", "-rfEs"] if quiet else ["-v", "-rs"]
    summary = Summary(image=image, image_kind=selection.image_kind,
                      suites=list(selection.suites))
    paths = [str(selection.paths[suite]) for suite in selection.suites]
    # In quiet (JSON) mode stdout carries only the result: pytest's report
    # goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
        code = pytest.main([*args, *paths], plugins=[_Collector(summary, selection)])
    summary.exit_code = int(code)
    return summary
