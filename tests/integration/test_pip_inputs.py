"""The pip kind's sources end to end: own project, pyproject, uv.lock, Pipfile.lock.

Three builds on the session's base: a payload that installs its own project
(``project: .`` and a requirements file with ``-e .``) next to its
pyproject dependencies with a group; a payload with a Pipfile.lock and a
uv.lock, neither with ipykernel (nublado-build adds it from its own lock and
the manifest names what it added); and a Pipfile.lock with a tampered hash,
which fails naming the step.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.markers import Marker

from nubladobuild.pairing import parse_manifest
from nubladobuild.pyinputs import kernel_support_added
from nubladobuild.requirements import canonical
from tests.conftest import TEST_TAG
from tests.integration.conftest import REPO, CliResult, docker, image_id

pytestmark = pytest.mark.integration

UVLOCK = REPO / "tests" / "fixtures" / "uvlock"
MANIFESTS = "/usr/local/share/jupyterlab/versions-installed"
#: six 1.17.0 as PyPI serves it (wheel and sdist).
SIX_HASHES = ["sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
              "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"]

PYPROJECT = """\
[project]
name = "pipdemo"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["six==1.17.0"]

[project.optional-dependencies]
extra = ["attrs==25.4.0"]

[project.scripts]
pipdemo-hello = "pipdemo:hello"

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
packages = ["pipdemo"]
"""


def run_in(tag: str, script: str) -> list[str]:
    """Run a login bash as a lab terminal does (its profile); its output lines."""
    proc = docker("run", "--rm", "-e", "RUNNING_INSIDE_JUPYTERLAB=1",
                  "--entrypoint", "bash", tag, "-lc", script, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def pipfile_lock(hashes: list[str]) -> str:
    return json.dumps({
        "_meta": {"hash": {"sha256": "0" * 64}, "pipfile-spec": 6,
                  "requires": {"python_version": "3"},
                  "sources": [{"name": "pypi", "url": "https://pypi.org/simple",
                               "verify_ssl": True}]},
        "default": {"six": {"hashes": hashes, "index": "pypi",
                            "markers": "python_version >= '2.7'",
                            "version": "==1.17.0"}},
        "develop": {}}, indent=4) + "\n"


def kernel_lock_names() -> dict[str, str]:
    """Return what base/build/ipykernel.txt installs on Linux CPython."""
    pins = {}
    for line in (REPO / "base/build/ipykernel.txt").read_text().splitlines():
        if line[:1].isalnum():
            pin, _, marker = line.split("\\")[0].strip().partition(";")
            if marker.strip() and not Marker(marker.strip()).evaluate(
                    {"sys_platform": "linux", "implementation_name": "cpython"}):
                continue
            name, _, version = pin.strip().partition("==")
            pins[name] = version
    return pins


def test_own_project_and_pyproject_groups(
        tmp_path: Path, build_payload: Callable[..., CliResult]) -> None:
    payload = tmp_path / "pipin-project"
    (payload / "pipdemo").mkdir(parents=True)
    (payload / "pyproject.toml").write_text(PYPROJECT)
    (payload / "pipdemo" / "__init__.py").write_text(
        "def hello() -> None:\n    print('hello from pipdemo')\n")
    (payload / "requirements.txt").write_text("-e .\n")
    (payload / "payload.yaml").write_text(
        "name: pipin-project\ninstall:\n"
        "  - pip: {pyproject: pyproject.toml, groups: [extra], prefix: /opt/deps}\n"
        "  - pip: {requirements: requirements.txt, prefix: /opt/edit}\n"
        "  - pip: {project: ., extras: [extra]}\n"
        "kernel: {name: pipin-project, display_name: Pip inputs}\n")
    tag = f"nb-pipin-project:{TEST_TAG}"
    result = build_payload(payload, tag)
    assert result.json["ok"], result.stderr[-3000:]
    try:
        lines = run_in(tag, (
            "/opt/deps/bin/python -c 'import six, attrs, importlib.util as u; "
            "print(six.__version__, attrs.__version__, u.find_spec(\"pipdemo\"))'; "
            "/opt/edit/bin/python -c 'import pipdemo; print(pipdemo.__file__)'; "
            "/opt/payload/venv/bin/python -c 'import pipdemo, attrs; "
            "print(pipdemo.__file__.startswith(\"/opt/payload/venv/\"))'; "
            "command -v pipdemo-hello; pipdemo-hello; "
            "ls /opt/payload/project | sort | tr '\\n' ' '"))
        assert lines == [
            "1.17.0 25.4.0 None",  # dependencies and the group, not the project
            "/opt/payload/project/pipdemo/__init__.py",  # editable: the copy
            "True",  # project: . installs it (not editable)
            "/opt/payload/venv/bin/pipdemo-hello",
            "hello from pipdemo",
            # The project as copied, plus what its builds left there.
            "build pipdemo pipdemo.egg-info pyproject.toml requirements.txt "]
    finally:
        docker("image", "rm", "-f", tag, check=False)


def test_locks_without_ipykernel_get_it_and_say_so(
        tmp_path: Path, build_payload: Callable[..., CliResult]) -> None:
    payload = tmp_path / "pipin-locks"
    payload.mkdir()
    (payload / "Pipfile.lock").write_text(pipfile_lock(SIX_HASHES))
    for name in ("uv.lock", "pyproject.toml"):
        shutil.copy(UVLOCK / name, payload / name)
    (payload / "payload.yaml").write_text(
        "name: pipin-locks\ninstall:\n"
        "  - pip: {pipfile_lock: Pipfile.lock, prefix: /opt/pipenv}\n"
        "  - pip: {uv_lock: uv.lock, groups: [extra], installer: pip}\n"
        "kernel: {name: pipin-locks, display_name: Locks}\n")
    tag = f"nb-pipin-locks:{TEST_TAG}"
    result = build_payload(payload, tag)
    assert result.json["ok"], result.stderr[-3000:]
    added = kernel_lock_names()
    assert added["ipykernel"] == "7.4.0" and "appnope" not in added
    try:
        lines = run_in(tag, (
            "/opt/pipenv/bin/python -c 'import six, ipykernel; "
            "print(six.__version__, ipykernel.__version__)'; "
            "cut -d' ' -f1 /opt/pipenv/nublado-kernel-support.txt | tr '\\n' ' '; "
            "echo; ls -d /tmp/nb-uv-export /tmp/nb-kernel-support.txt 2>/dev/null "
            "| wc -l; "
            f"cat {MANIFESTS}/payload-pipin-locks.txt"))
        assert lines[0] == "1.17.0 7.4.0"
        assert lines[1] == " ".join(sorted(added)) + " "
        assert lines[2] == "0"  # no uv export or kernel list left in a layer
        manifest = "\n".join(lines[3:])
        # The kernel's environment (the uv.lock step): what was added, and
        # every locked version exactly as locked.
        assert kernel_support_added(manifest) == added
        # (the manifest spells names as their metadata does: Pygments)
        packages = {canonical(k): v for k, v in parse_manifest(manifest).items()}
        assert packages["six"] == "1.17.0" and packages["attrs"] == "25.4.0"
        assert {k: packages[k] for k in added} == added
    finally:
        docker("image", "rm", "-f", tag, check=False)


def test_tampered_pipfile_lock_hash_fails(
        tmp_path: Path, build_payload: Callable[..., CliResult]) -> None:
    payload = tmp_path / "pipin-tampered"
    payload.mkdir()
    (payload / "Pipfile.lock").write_text(
        pipfile_lock(["sha256:" + "0" * 64, "sha256:" + "1" * 64]))
    (payload / "payload.yaml").write_text(
        "name: pipin-tampered\ninstall:\n  - pip: {pipfile_lock: Pipfile.lock}\n"
        "kernel: {name: t, display_name: T}\n")
    tag = f"nb-pipin-tampered:{TEST_TAG}"
    result = build_payload(payload, tag, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "failed at step install[0].pip of " in result.stderr, \
        result.stderr[-3000:]
    assert "Hash mismatch for `six==1.17.0`" in result.stderr  # uv, the default
    assert "Traceback" not in result.stderr
    assert image_id(tag) is None


#: traitlets 5.0.0 (older than ipykernel allows) and its dependency, hashed.
OLD_TRAITLETS = """\
ipython-genutils==0.2.0 \\
    --hash=sha256:72dd37233799e619666c9f639a9da83c34013a73e8bbc79a7a6348d93c61fab8 \\
    --hash=sha256:eb2e116e75ecef9d4d228fdc66af54269afa26ab4463042e33785b887c628ba8
traitlets==5.0.0 \\
    --hash=sha256:0d9c4005506b306b0a99551e96174b8bedc675c2dd048f92b3bbbb7d86ac93a9 \\
    --hash=sha256:62a037f12ccb823fb05823afbe35fe0273bc18fa3202d0cf0ea8f24e97e464be
"""


def test_lock_conflicting_with_ipykernel_fails_clearly(
        tmp_path: Path, build_payload: Callable[..., CliResult]) -> None:
    # The lock's traitlets stays as locked; ipykernel's own needs a newer
    # one, so the consistency check fails the step (installer: pip).
    payload = tmp_path / "pipin-conflict"
    payload.mkdir()
    (payload / "requirements.txt").write_text(OLD_TRAITLETS)
    (payload / "payload.yaml").write_text(
        "name: pipin-conflict\ninstall:\n"
        "  - pip: {requirements: requirements.txt, installer: pip}\n"
        "kernel: {name: c, display_name: C}\n")
    tag = f"nb-pipin-conflict:{TEST_TAG}"
    result = build_payload(payload, tag, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    for needle in ("failed at step install[0].pip of ",
                   "has requirement traitlets>=",
                   "but you have traitlets 5.0.0",
                   "install-pip: the lock's packages conflict with what ipykernel "
                   "needs (above); add ipykernel to the lock and lock again"):
        assert needle in result.stderr, (needle, result.stderr[-3000:])
    assert image_id(tag) is None
