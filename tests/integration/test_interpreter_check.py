"""A pip step's ``python3.N`` checked against the real base, before any build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEST_TAG
from tests.integration.conftest import docker, image_id, run_cli

pytestmark = pytest.mark.integration

TAG = f"nublado-interpreter-check:{TEST_TAG}"


def base_minor(base_image: str) -> int:
    """Return the minor version of the base's python3, asked of the image itself."""
    out = docker("run", "--rm", "--entrypoint", "python3", base_image, "-c",
                 "import sys; print(sys.version_info.minor)").stdout
    return int(out.strip())


def payload(root: Path, python: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements.txt").write_text("six\n")
    (root / "payload.yaml").write_text(
        f"name: ic\ninstall:\n  - pip:\n      requirements: requirements.txt\n"
        f"      python: {python}\nkernel:\n  name: ic\n  display_name: IC\n")
    return root


def test_validate_checks_python_against_the_base(base_image: str,
                                                  tmp_path: Path) -> None:
    minor = base_minor(base_image)
    old = payload(tmp_path / "old", "python3.5")
    proc = run_cli("validate", "--base", base_image, str(old), check=False)
    assert proc.returncode == 2
    assert proc.stderr == (
        "nublado-build: 1 problem in payload; nothing was built.\n"
        f"  {old}/payload.yaml:5: install[0].pip.python: python3.5 is older than "
        "Python 3.10, the oldest a payload kernel can run (ipykernel 7 and "
        "jupyter-client 8.10 need 3.10 or later); use python3 (the base image's "
        "Python) or python3.N with N >= 10\n")

    other = payload(tmp_path / "other", f"python3.{minor - 1}")
    proc = run_cli("validate", "--base", base_image, str(other), check=False)
    assert proc.returncode == 2
    assert proc.stderr == (
        "nublado-build: 1 problem in payload; nothing was built.\n"
        f"  {other}/payload.yaml:5: install[0].pip.python: python3.{minor - 1} does "
        f"not exist in the base image {base_image}, whose Python is 3.{minor}; use "
        f"python3 or python3.{minor} (the base's Python), install "
        f"python3.{minor - 1} in an earlier apt step, or build on a base with "
        f"Python 3.{minor - 1}\n")

    same = payload(tmp_path / "same", f"python3.{minor}")
    proc = run_cli("validate", "--base", base_image, str(same))
    assert (proc.stdout, proc.stderr) == (f"{same}: valid (ic)\n", "")
    data = run_cli("validate", "--json", "--base", base_image, str(same)).json
    assert data["payloads"][0]["interpreter"] == {
        "status": "done", "reason": "", "base_python": f"3.{minor}"}

    missing = f"nublado-jupyterlab-base:{TEST_TAG}-absent"
    assert image_id(missing) is None
    proc = run_cli("validate", "--base", missing, str(other))
    assert proc.stderr == (
        f"nublado-build: {other}: the interpreter check against the base was not "
        f"done: the base image {missing} is not on this engine; build it with "
        "`nublado-build base` or pass --base (build and render check it)\n")


def test_build_refuses_before_building(base_image: str, tmp_path: Path) -> None:
    minor = base_minor(base_image)
    docker("image", "rm", "-f", TAG, check=False)
    for python in ("python3.5", f"python3.{minor - 1}"):
        root = payload(tmp_path / python, python)
        proc = run_cli("build", str(root), "--base", base_image, "--tag", TAG,
                       check=False)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(
            "nublado-build: 1 problem in payload; nothing was built.\n"
            f"  {root}/payload.yaml:5: install[0].pip.python: {python} "), \
            proc.stderr
        assert "Traceback" not in proc.stderr
        assert image_id(TAG) is None
        context = tmp_path / f"context-{python}"
        proc = run_cli("render", str(root), "--base", base_image, "-o",
                       str(context), check=False)
        assert proc.returncode == 2
        assert not context.exists()
