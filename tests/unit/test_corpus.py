"""The adversarial corpus: hostile payloads refused, look-alikes accepted.

Every directory under ``tests/corpus/`` holds a payload and an
``expect.yaml``:

``class``
    The attack class the case belongs to (see :data:`CLASSES`).
``exit``
    2: ``nublado-build validate`` must refuse the payload, naming ``file``
    (relative to the case directory) and ``field`` (the YAML path) in its
    message; 0: a legitimate look-alike that must stay accepted (the output
    says ``valid``). Accepted cases, and only they, are named ``ok-*``.
``contains`` / ``absent``
    Strings the output must hold / must not hold (credentials to be masked).
``generate``
    Files written at test time instead of being committed: large files
    (``bytes``), deep nesting (``nested``, ``mapping``), named pipes
    (``fifo``), sockets (``socket``), symbolic links (``symlink``: the link
    target), many small files (``files``: a count, in directory ``path``).
``argv``, ``env``
    Another command line than ``validate {dir}`` (``{dir}``: the case
    directory; ``{out}``: a fresh path for output), and environment
    variables to set (CLI cases point ``DOCKER_HOST`` nowhere, so that no
    engine is ever used).
``xfail``
    Why the current code gets the case wrong; the case runs as a strict
    xfail, so the fix makes it fail until the marker is removed.

Each case runs the real CLI (``nubladobuild.cli.main``, what ``python -m
nubladobuild`` runs) in its own process, forked from the test process so
that the import is paid once; the runs go in parallel.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from nubladobuild import cli

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.yaml").is_file())

#: Seconds a case may run before it is killed (and fails).
TIMEOUT = 180

#: The attack classes a case may belong to.
CLASSES = ("injection", "parser-differential", "guard-bypass", "index-redirection",
           "secrets", "resource-bomb", "special-files", "cli-flags", "schema", "yaml")

#: How many cases each class holds (refused, accepted), fragment cases
#: included. Update it with the corpus: a case that disappears makes this
#: test fail.
COUNTS: dict[str, tuple[int, int]] = {
    "injection": (64, 6),
    "parser-differential": (52, 12),
    "guard-bypass": (124, 25),
    "index-redirection": (47, 12),
    "secrets": (12, 2),
    "resource-bomb": (18, 1),
    "special-files": (19, 2),
    "cli-flags": (12, 2),
    "schema": (51, 8),
    "yaml": (16, 2),
}


@dataclass(frozen=True)
class Outcome:
    """A finished CLI run on one corpus case."""

    directory: Path
    expect: dict[str, Any]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Return stdout and stderr together."""
        return self.stdout + self.stderr


def expectation(name: str) -> dict[str, Any]:
    """Return a case's ``expect.yaml``."""
    data: dict[str, Any] = yaml.safe_load((CORPUS / name / "expect.yaml").read_text())
    return data


def _nested(depth: int, mapping: bool) -> str:
    if mapping:
        return "name: " + "{a: " * depth + "x" + "}" * depth + "\n"
    return "name: " + "[" * depth + "]" * depth + "\n"


def _padding(path: Path, size: int) -> None:
    if path.name == "payload.yaml":
        head = ("name: corpus\ninstall:\n  - pip: {requirements: requirements.txt}"
                "\nkernel: {name: k, display_name: K}\n")
        pad = "# padding to make the file too large to be a payload description\n"
        path.write_text(head + pad * ((size - len(head)) // len(pad) + 1))
        return
    line = b"# padding so that the file is larger than the limit\n"
    with path.open("wb") as f:
        f.write(b"six\n")
        f.write(line * (size // len(line) + 1))


def generate(directory: Path, specs: list[dict[str, Any]]) -> None:
    """Write the files a case generates at test time."""
    for spec in specs:
        path = directory / spec["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.is_file():
            path.unlink()
        if "nested" in spec:
            path.write_text(_nested(int(spec["nested"]), bool(spec.get("mapping"))))
        elif spec.get("fifo"):
            os.mkfifo(path)
        elif spec.get("socket"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.bind(str(path))
        elif "symlink" in spec:
            path.symlink_to(spec["symlink"])
        elif "files" in spec:
            path.mkdir(exist_ok=True)
            for i in range(int(spec["files"])):
                (path / f"f{i}").write_bytes(b"")
        else:
            _padding(path, int(spec["bytes"]))


def prepare(name: str, root: Path) -> tuple[Path, list[str]]:
    """Copy a case, generate its files; return its directory and CLI arguments."""
    expect = expectation(name)
    directory = root / name
    shutil.copytree(CORPUS / name, directory, symlinks=True)
    (directory / "expect.yaml").unlink()
    generate(directory, expect.get("generate") or [])
    out = root / f"{name}.out"
    argv = [a.replace("{dir}", str(directory)).replace("{out}", str(out))
            for a in expect.get("argv") or ["validate", "{dir}"]]
    return directory, argv


def _child(argv: list[str], env: dict[str, str], stdout: Path,
           stderr: Path) -> None:  # pragma: no cover
    """Run the CLI in a forked child as ``python -m nubladobuild`` would; no return."""
    code = 1
    try:
        out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
        os.environ["NO_COLOR"] = "1"
        os.environ.update(env)
        sys.argv = ["nublado-build", *argv]
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None
                                                               else 1)
        except BaseException:  # shown as the interpreter would
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def run_cases(names: list[str], root: Path, jobs: int) -> dict[str, Outcome]:
    """Run the CLI on every case, each in its own forked process, ``jobs`` at a time.

    The children are forked from this process, which has imported the CLI
    once: the same code path as ``python -m nubladobuild`` without paying
    the import for every case.
    """
    pending = list(names)
    running: dict[int, tuple[str, Path, float]] = {}
    results: dict[str, Outcome] = {}
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            directory, argv = prepare(name, root)
            streams = root / f"{name}.stdout", root / f"{name}.stderr"
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                _child(argv, expectation(name).get("env") or {}, *streams)
            running[pid] = (name, directory, time.monotonic())
        finished = False
        for pid, (name, directory, started) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)  # only our own children
            if done == 0:
                if time.monotonic() - started > TIMEOUT:
                    os.kill(pid, signal.SIGKILL)
                continue
            finished = True
            del running[pid]
            results[name] = Outcome(
                directory, expectation(name), os.waitstatus_to_exitcode(status),
                (root / f"{name}.stdout").read_text(errors="replace"),
                (root / f"{name}.stderr").read_text(errors="replace"))
        if not finished:
            time.sleep(0.005)
    return results


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every case once, in parallel."""
    root = tmp_path_factory.mktemp("corpus")
    return run_cases(CASES, root, max(2, os.cpu_count() or 2))


def test_every_case_is_well_formed() -> None:
    for name in CASES:
        expect = expectation(name)
        generated = {s["path"] for s in expect.get("generate") or []}
        assert (CORPUS / name / "payload.yaml").exists() \
            or (CORPUS / name / "payload.yaml").is_symlink() \
            or "payload.yaml" in generated or "argv" in expect, name
        assert expect["exit"] in (0, 2), name
        assert name.startswith("ok-") == (expect["exit"] == 0), name
        if expect["exit"]:
            assert expect.get("file") or expect["class"] == "cli-flags", name
            assert "field" in expect, name
        if "xfail" in expect:
            assert isinstance(expect["xfail"], str) and expect["xfail"], name


def test_every_case_has_a_class() -> None:
    missing = {name: expectation(name).get("class") for name in CASES
               if expectation(name).get("class") not in CLASSES}
    assert not missing, f"cases without a known class ({', '.join(CLASSES)}): {missing}"


def test_corpus_counts_per_class() -> None:
    counts: Counter[tuple[str, int]] = Counter(
        (expectation(n)["class"], expectation(n)["exit"]) for n in CASES)
    found = {cls: (counts[cls, 2], counts[cls, 0]) for cls in CLASSES}
    assert found == COUNTS
    assert sum(r + a for r, a in found.values()) == 487
    assert sum(a for _, a in found.values()) >= 20


def _params() -> list[Any]:
    params = []
    for name in CASES:
        reason = expectation(name).get("xfail")
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("name", _params())
def test_case(name: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[name]
    expect = outcome.expect
    message = outcome.output
    assert outcome.returncode == expect["exit"], (
        f"{name}: exit {outcome.returncode}, want {expect['exit']}:\n{message}")
    assert "Traceback" not in message, message
    for needle in expect.get("contains") or []:
        assert needle in message, f"{name}: {needle!r} not in:\n{message}"
    for needle in expect.get("absent") or []:
        assert needle not in message, f"{name}: {needle!r} shown:\n{message}"
    if expect["exit"] == 0:
        assert "valid" in outcome.stdout, message
        return
    if expect.get("file"):
        # The message names the file (full path) and the field path.
        assert str(outcome.directory / expect["file"]) in message, message
    if expect.get("field"):
        assert f" {expect['field']}:" in message or f" {expect['field']}" in message, (
            f"{name}: field {expect['field']!r} not named:\n{message}")
    if "argv" not in expect:
        assert outcome.stderr.startswith("nublado-build: "), message
