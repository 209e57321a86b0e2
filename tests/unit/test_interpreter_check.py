"""A pip step's ``python3.N`` checked at validate time (``interpreter.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nubladobuild.errors import PayloadInvalid
from nubladobuild.interpreter import (
    MIN_PYTHON,
    BaseCheck,
    StepFacts,
    base_problems,
    needs_base,
    parse_version,
    raise_problems,
    requested_minor,
    static_problems,
    step_facts,
)
from nubladobuild.loader import load_payload

REPO = Path(__file__).resolve().parents[2]
BASE = "nublado-jupyterlab-base:x"
#: A Docker host nothing listens on: the engine is unreachable, for sure.
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def cli(*args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nubladobuild", *args],
                          capture_output=True, text=True, cwd=REPO, check=False,
                          env={**os.environ, **(env or {})}, timeout=120)


def payload(root: Path, python: str, apt: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements.txt").write_text("numpy\n")
    steps = f"  - apt:\n      packages: [{apt}]\n" if apt else ""
    (root / "payload.yaml").write_text(
        f"name: ic\ninstall:\n{steps}  - pip:\n      requirements: requirements.txt\n"
        f"      python: {python}\nkernel:\n  name: ic\n  display_name: IC\n")
    return root


def test_min_python_is_3_10() -> None:
    assert MIN_PYTHON == (3, 10)


@pytest.mark.parametrize(("python", "minor"), [
    ("python3.13", 13), ("python3.5", 5), ("python3", None),
    ("/usr/bin/python3.5", None), ("python3.13t", None)])
def test_requested_minor(python: str, minor: int | None) -> None:
    assert requested_minor(python) == minor


@pytest.mark.parametrize(("text", "version"), [
    ("Python 3.13.5\n", (3, 13)), ("3.11.14", (3, 11)), ("3.12", (3, 12)),
    ("", None), ("Python 2.7.18", None), ("nonsense", None)])
def test_parse_version(text: str, version: tuple[int, int] | None) -> None:
    assert parse_version(text) == version


def test_static_problems_refuse_below_the_floor_only() -> None:
    install = [{"pip": {"requirements": "r.txt", "python": "python3.5"}},
               {"pip": {"requirements": "r.txt", "python": "python3.9"}},
               {"pip": {"requirements": "r.txt", "python": "python3.10"}},
               {"pip": {"requirements": "r.txt", "python": "/opt/py/bin/python3.5"}},
               {"pip": {"requirements": "r.txt"}}, {"conda": {"python": "python3.5"}},
               "junk", {"pip": "junk"}]
    problems = static_problems(install)
    assert [loc for loc, _ in problems] == [("install", 0, "pip", "python"),
                                            ("install", 1, "pip", "python")]
    assert problems[0][1] == (
        "python3.5 is older than Python 3.10, the oldest a payload kernel can run "
        "(ipykernel 7 and jupyter-client 8.10 need 3.10 or later); use python3 "
        "(the base image's Python) or python3.N with N >= 10")
    assert static_problems(None) == []
    assert static_problems({"pip": {}}) == []


def _pip(index: int, python: str | None) -> StepFacts:
    return StepFacts(index, "pip", python)


def test_base_problems_match_the_base() -> None:
    assert base_problems((3, 13), BASE, [_pip(0, "python3.13")]) == []
    assert base_problems((3, 13), BASE, [_pip(0, "python3")]) == []
    assert base_problems((3, 13), BASE, [_pip(0, "/usr/bin/python3.11")]) == []
    assert base_problems((3, 13), BASE, [_pip(0, "python3.12")]) == [(0, (
        "python3.12 does not exist in the base image nublado-jupyterlab-base:x, "
        "whose Python is 3.13; use python3 or python3.13 (the base's Python), "
        "install python3.12 in an earlier apt step, or build on a base with "
        "Python 3.12"))]


def test_base_problems_accept_an_earlier_provider() -> None:
    later = _pip(1, "python3.11")
    for provider in (StepFacts(0, "apt", packages=("python3.11",)),
                     StepFacts(0, "apt", packages=("curl", "python3.11=3.11.2-6")),
                     StepFacts(0, "apt", packages=("python3.11-venv",)),
                     StepFacts(0, "conda"), StepFacts(0, "script"),
                     StepFacts(0, "dockerfile"), StepFacts(0, "transplant")):
        assert base_problems((3, 13), BASE, [provider, later]) == [], provider
    for other in (StepFacts(0, "apt", packages=("python3.12", "python3.1")),
                  StepFacts(0, "apt", packages=("python3.110",)),
                  _pip(0, "python3")):
        assert [i for i, _ in base_problems((3, 13), BASE, [other, later])] == [1]
    # a provider after the step does not count
    assert [i for i, _ in base_problems(
        (3, 13), BASE, [_pip(0, "python3.11"),
                        StepFacts(1, "apt", packages=("python3.11",))])] == [0]


def test_needs_base() -> None:
    assert needs_base([_pip(0, "python3.12")]) is True
    assert needs_base([_pip(0, "python3"), _pip(1, "/usr/bin/python3.5"),
                       StepFacts(2, "conda")]) is False


def test_step_facts_and_problems_from_a_loaded_payload(tmp_path: Path) -> None:
    root = payload(tmp_path / "p", "python3.11", apt="curl, python3.11")
    loaded = load_payload(root)
    assert step_facts(loaded) == [StepFacts(0, "apt", None, ("curl", "python3.11")),
                                  StepFacts(1, "pip", "python3.11")]
    with pytest.raises(PayloadInvalid) as info:
        raise_problems(loaded, [(1, "the message")])
    assert [p.render() for p in info.value.problems] == [
        f"{root}/payload.yaml:7: install[1].pip.python: the message"]
    raise_problems(loaded, [])  # nothing to raise


def test_base_check_json() -> None:
    assert BaseCheck("done", base_python="3.13").as_json() == {
        "status": "done", "reason": "", "base_python": "3.13"}


def test_validate_refuses_old_python_without_an_engine(tmp_path: Path) -> None:
    root = payload(tmp_path / "p", "python3.5")
    proc = cli("validate", str(root), env=NO_ENGINE)
    assert proc.returncode == 2
    assert proc.stderr == (
        "nublado-build: 1 problem in payload; nothing was built.\n"
        f"  {root}/payload.yaml:5: install[0].pip.python: python3.5 is older than "
        "Python 3.10, the oldest a payload kernel can run (ipykernel 7 and "
        "jupyter-client 8.10 need 3.10 or later); use python3 (the base image's "
        "Python) or python3.N with N >= 10\n")


def test_validate_says_the_base_check_was_not_done(tmp_path: Path) -> None:
    root = payload(tmp_path / "p", "python3.12")
    proc = cli("validate", "--base", BASE, str(root), env=NO_ENGINE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{root}: valid (ic)\n"
    assert proc.stderr == (
        f"nublado-build: {root}: the interpreter check against the base was not "
        "done: no Docker engine answers; build and render check it against the "
        "base\n")
    data = json.loads(cli("validate", "--json", "--base", BASE, str(root),
                          env=NO_ENGINE).stdout)
    assert data["payloads"][0]["interpreter"] == {
        "status": "not done", "base_python": "",
        "reason": "no Docker engine answers; build and render check it against "
                  "the base"}


def test_validate_without_python3_n_needs_no_base(tmp_path: Path) -> None:
    root = payload(tmp_path / "p", "python3")
    proc = cli("validate", "--json", "--base", BASE, str(root), env=NO_ENGINE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads(proc.stdout)["payloads"][0]["interpreter"] == {
        "status": "not needed", "reason": "", "base_python": ""}


def test_validate_refuses_a_bad_base_reference(tmp_path: Path) -> None:
    proc = cli("validate", "--base", "Bad Ref", str(payload(tmp_path / "p",
                                                            "python3")))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("nublado-build: --base")
