"""The corpus of bad payloads: each is refused by ``nublado-build validate``.

Every directory under ``tests/corpus/`` holds a broken payload and an
``expect.yaml``: the exit code (2), the file and the field path the message
must name, and other strings it must contain. Large or pathological inputs
are generated at test time (``generate``) instead of being committed. Each
case runs the real CLI in its own subprocess, as a user would; the runs go
in parallel to keep the suite quick.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.yaml").is_file())


@dataclass(frozen=True)
class Outcome:
    """A finished ``nublado-build validate`` run on one corpus case."""

    directory: Path
    expect: dict[str, Any]
    returncode: int
    stderr: str


def expectation(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CORPUS / name / "expect.yaml").read_text())
    return data


def generate(directory: Path, specs: list[dict[str, Any]]) -> None:
    """Write the files a case generates at test time (too big to commit)."""
    for spec in specs:
        path = directory / spec["path"]
        if "nested" in spec:
            depth = int(spec["nested"])
            path.write_text("name: " + "[" * depth + "]" * depth + "\n")
        elif path.name == "payload.yaml":
            head = ("name: corpus\ninstall:\n  - pip: {requirements: requirements.txt}"
                    "\nkernel: {name: k, display_name: K}\n")
            pad = "# padding to make the file too large to be a payload description\n"
            count = (int(spec["bytes"]) - len(head)) // len(pad) + 1
            path.write_text(head + pad * count)
        else:
            line = b"# padding so that the file is larger than the limit\n"
            with path.open("wb") as f:
                f.write(b"six\n")
                f.write(line * (int(spec["bytes"]) // len(line) + 1))


def run_case(name: str, root: Path) -> Outcome:
    expect = expectation(name)
    directory = root / name
    shutil.copytree(CORPUS / name, directory, symlinks=True)
    (directory / "expect.yaml").unlink()
    generate(directory, expect.get("generate") or [])
    proc = subprocess.run([sys.executable, "-m", "nubladobuild", "validate",
                           str(directory)], capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**os.environ, "NO_COLOR": "1"})
    return Outcome(directory, expect, proc.returncode, proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("corpus")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        done = pool.map(lambda n: run_case(n, root), CASES)
        return dict(zip(CASES, done, strict=True))


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    for name in CASES:
        assert (CORPUS / name / "payload.yaml").is_file() \
            or (CORPUS / name / "payload.yaml").is_symlink(), name
        expect = expectation(name)
        assert expect["exit"] == 2, name
        assert expect["file"], name


@pytest.mark.parametrize("name", CASES)
def test_bad_payload_is_refused(name: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[name]
    expect = outcome.expect
    message = outcome.stderr
    assert outcome.returncode == expect["exit"], (
        f"{name}: exit {outcome.returncode}, want {expect['exit']}:\n{message}")
    assert "Traceback" not in message, message
    # The message names the file (full path) and the field path.
    assert str(outcome.directory / expect["file"]) in message, message
    if expect.get("field"):
        assert f" {expect['field']}:" in message or f" {expect['field']}" in message, (
            f"{name}: field {expect['field']!r} not named:\n{message}")
    for needle in expect.get("contains") or []:
        assert needle in message, f"{name}: {needle!r} not in:\n{message}"
    assert "nothing was built" in message or "problem" in message
