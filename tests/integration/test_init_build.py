"""A repository written for repo2docker builds after ``nublado-build init``, as is.

Small repositories made here, one per common layout, each run through
``init`` and then ``build --test`` on the test base with no edits: the
contract passes with exactly its counts, and what the repository asked for
is in the image.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from nubladobuild.contract.labclient import execute_in_lab, run_in_lab_terminal
from tests.conftest import TEST_TAG
from tests.integration.conftest import (
    NO_WIDGETS,
    NO_WRAPPER,
    CliResult,
    assert_contract,
    docker,
    run_cli,
)
from tests.integration.test_nublado_protocol import (
    HOME,
    UID,
    FakeHub,
    bridge_gateway,
    browser_websockets,  # noqa: F401 - autouse: websockets as browsers send them
    start_lab,
)

pytestmark = pytest.mark.integration

#: A venv kernel has no wrapper script, and these repositories no ipywidgets.
VENV_SKIPS = (NO_WRAPPER, *NO_WIDGETS)

SIX_HASHES = [
    "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
    "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"]
SETUP_PY = """\
from setuptools import setup

setup(name="initdemo", version="0.1", py_modules=["initdemo"],
      install_requires=["six"])
"""
MODULE = "VALUE = 42\n"
#: A project with a console script (the tool a notebook's ``!`` must find).
SETUP_PY_TOOL = """\
from setuptools import setup

setup(name="inittool", version="0.1", py_modules=["inittool"],
      entry_points={"console_scripts": ["inittool-hello=inittool:hello"]})
"""
TOOL_MODULE = "VALUE = 7\n\n\ndef hello():\n    print('hello from inittool')\n"
POSTBUILD = """\
#!/bin/bash
set -e
mkdir -p "$PAYLOAD_PREFIX"
echo built > "$PAYLOAD_PREFIX/postbuild-ran"
"""
START = '#!/bin/bash\nexport INIT_DEMO_STARTED=1\nexec "$@"\n'
PIPFILE_LOCK = json.dumps({
    "_meta": {"hash": {"sha256": "0" * 64}, "pipfile-spec": 6,
              "requires": {"python_version": "3.13"},
              "sources": [{"name": "pypi", "url": "https://pypi.org/simple",
                           "verify_ssl": True}]},
    "default": {"six": {"hashes": SIX_HASHES, "index": "pypi",
                        "version": "==1.17.0"}},
    "develop": {}}, indent=4)


def make_repo(root: Path, files: dict[str, str], executable: tuple[str, ...] = ()
              ) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if rel in executable:
            path.chmod(0o755)
    return root


def init_and_build(root: Path, base_image: str, *extra: str) -> CliResult:
    """Run ``init`` (no problems left to fix), then ``build --test`` as is."""
    written = run_cli("init", str(root), "--json").json
    assert written["problems"] == [], written["problems"]
    tag = f"{root.name}:{TEST_TAG}"
    return run_cli("build", str(root), "--base", base_image, "--tag", tag, "--test",
                   "--json", *extra)


def in_image(tag: str, python: str, code: str) -> str:
    return docker("run", "--rm", "--entrypoint", python, tag, "-c", code).stdout


def test_requirements_apt_postbuild_start(base_image: str, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "init-pip", {
        "requirements.txt": "six==1.17.0\n", "apt.txt": "# a tool\nbc\n",
        "postBuild": POSTBUILD, "start": START, "setup.py": SETUP_PY_TOOL,
        "inittool.py": TOOL_MODULE}, executable=("postBuild", "start"))
    built = init_and_build(root, base_image).json
    assert_contract(built["test"], kernel="init-pip", skipped=VENV_SKIPS)
    tag = f"init-pip:{TEST_TAG}"
    assert docker("run", "--rm", "--entrypoint", "bc", tag, "--version"
                  ).stdout.startswith("bc ")
    assert in_image(tag, "/opt/payload/venv/bin/python",
                    "import six; print(six.__version__)") == "1.17.0\n"
    assert docker("run", "--rm", "--entrypoint", "cat", tag,
                  "/opt/init-pip/postbuild-ran").stdout == "built\n"
    assert docker("run", "--rm", "--entrypoint", "cat", tag,
                  "/opt/nublado/start/start").stdout == START
    in_a_running_lab(tag, tmp_path)


#: A notebook cell: the start hook's export, the project, and the tools
#: (Debian's bc from apt.txt, the project's console script) from ``!``.
CELL = """\
import os, inittool
print(os.environ.get("INIT_DEMO_STARTED"), inittool.VALUE)
!command -v bc
!command -v inittool-hello
!inittool-hello
!echo 6*7 | bc
"""
#: The same from a lab terminal (a login bash through the server).
TERMINAL = ('"${INIT_DEMO_STARTED:-unset}|$(command -v bc)|'
            '$(command -v inittool-hello)"')


def in_a_running_lab(tag: str, tmp_path: Path) -> None:
    """Start the image as Zero-to-JupyterHub does; check a kernel and a terminal."""
    hub = FakeHub(bridge_gateway(), uuid.uuid4().hex)
    volume = f"nublado-init-home-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", volume)
    lab = None
    try:
        docker("run", "--rm", "--user", "0:0", "-v", f"{volume}:{HOME}",
               "--entrypoint", "chown", tag, f"{UID}:{UID}", HOME)
        lab = start_lab(tag, None, volume, hub, command=("jupyterhub-singleuser",))
        cell = execute_in_lab(lab.base, lab.token, "init-pip", CELL)
        assert cell["status"] == "ok", cell
        assert cell["stdout"].splitlines() == [
            "1 7", "/usr/bin/bc", "/opt/payload/venv/bin/inittool-hello",
            "hello from inittool", "42"]
        assert run_in_lab_terminal(lab.base, lab.token, TERMINAL) == (
            "1|/usr/bin/bc|/opt/payload/venv/bin/inittool-hello")
    finally:
        if lab is not None:
            docker("rm", "-f", lab.name, check=False)
        hub.close()
        docker("volume", "rm", "-f", volume, check=False)


def test_binder_environment_yml(base_image: str, conda_channel: str,
                                tmp_path: Path) -> None:
    root = make_repo(tmp_path / "init-conda", {
        "binder/environment.yml": "channels: [conda-forge]\ndependencies:\n"
                                  "  - python=3.11\n  - ipykernel\n  - six\n",
        "requirements.txt": "not-used-by-repo2docker\n"})
    built = init_and_build(root, base_image, "--conda-channel", conda_channel).json
    assert_contract(built["test"], kernel="init-conda", skipped=NO_WIDGETS)
    assert built["python"] == "/opt/conda/envs/init-conda/bin/python"


def test_setup_py_project(base_image: str, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "init-project", {"setup.py": SETUP_PY,
                                                 "initdemo.py": MODULE})
    built = init_and_build(root, base_image).json
    assert_contract(built["test"], kernel="init-project", skipped=VENV_SKIPS)
    assert in_image(f"init-project:{TEST_TAG}", "/opt/payload/venv/bin/python",
                    "import initdemo, six; print(initdemo.VALUE)") == "42\n"


def test_pipfile_lock(base_image: str, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "init-pipenv", {
        "binder/Pipfile.lock": PIPFILE_LOCK,
        "binder/Pipfile": '[packages]\nsix = "==1.17.0"\n'})
    built = init_and_build(root, base_image).json
    assert_contract(built["test"], kernel="init-pipenv", skipped=VENV_SKIPS)
    assert in_image(f"init-pipenv:{TEST_TAG}", "/opt/payload/venv/bin/python",
                    "import six; print(six.__version__)") == "1.17.0\n"


def test_uv_lock_with_pyproject(base_image: str, tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "uvlock"
    root = make_repo(tmp_path / "init-uv", {
        name: (fixture / name).read_text() for name in ("pyproject.toml", "uv.lock")})
    built = init_and_build(root, base_image).json
    assert_contract(built["test"], kernel="init-uv", skipped=VENV_SKIPS)
    assert in_image(f"init-uv:{TEST_TAG}", "/opt/payload/venv/bin/python",
                    "import six; print(six.__version__)") == "1.17.0\n"


def test_requirements_then_setup_py_project(base_image: str, tmp_path: Path) -> None:
    """requirements.txt, then the repository itself: two steps into one venv."""
    root = make_repo(tmp_path / "init-reqproject", {
        "requirements.txt": "six==1.17.0\n", "setup.py": SETUP_PY,
        "initdemo.py": MODULE})
    built = init_and_build(root, base_image).json
    assert_contract(built["test"], kernel="init-reqproject", skipped=VENV_SKIPS)
    assert in_image(f"init-reqproject:{TEST_TAG}", "/opt/payload/venv/bin/python",
                    "import initdemo, six; print(initdemo.VALUE, six.__version__)"
                    ) == "42 1.17.0\n"
