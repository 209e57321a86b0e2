"""The stages run one way, each once: render and build write the same context."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_TAG
from tests.integration.conftest import PAYLOADS, CliResult, run_cli

pytestmark = pytest.mark.integration
SCIPY = PAYLOADS / "scipy-lab"


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            + oct(p.stat().st_mode) for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_and_build_write_identical_contexts(
        base_image: str, build_payload: Callable[..., CliResult],
        tmp_path: Path) -> None:
    rendered = tmp_path / "rendered"
    result = run_cli("render", str(SCIPY), "-o", str(rendered), "--base", base_image,
                     "--json")
    assert result.json["dockerfile"] == str(rendered / "Dockerfile")
    built = tmp_path / "built"
    build_payload(SCIPY, f"scipy-lab:{TEST_TAG}", "--context-dir", str(built))
    assert tree(rendered) == tree(built / "scipy-lab")
    assert sorted(tree(rendered)) == [
        ".dockerignore", ".nublado-build-context", "Dockerfile", "guard/allowed.txt",
        "guard/guard.py", "kernel/kernel.json", "kernel/launch", "shell/setup.sh",
        "steps/00-pip/requirements.txt"]


def test_build_runs_each_stage_once(base_image: str, tmp_path: Path) -> None:
    """A build loads, plans, resolves and renders the payload exactly once."""
    result = run_cli("build", str(SCIPY), "--base", base_image, "--tag",
                     f"scipy-lab:{TEST_TAG}", env={"NUBLADO_BUILD_TRACE": "1"})
    stages = [line.split()[1] for line in result.stderr.splitlines()
              if line.startswith("nublado-build: ")
              and line.split()[1:2] in (["load"], ["plan"], ["resolve"], ["render"])]
    assert stages == ["load", "plan", "resolve", "render"]


def test_render_refuses_a_directory_it_did_not_write(base_image: str,
                                                     tmp_path: Path) -> None:
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine\n")
    result = run_cli("render", str(SCIPY), "-o", str(keep), "--base", base_image,
                     check=False)
    assert result.returncode == 2, result.stderr
    assert "not a context rendered by nublado-build" in result.stderr
    assert (keep / "notes.txt").read_text() == "mine\n"
    # A previous render is replaced.
    out = tmp_path / "ctx"
    run_cli("render", str(SCIPY), "-o", str(out), "--base", base_image)
    (out / "stale").write_text("x")
    run_cli("render", str(SCIPY), "-o", str(out), "--base", base_image)
    assert not (out / "stale").exists()
    assert json.loads((out / "kernel" / "kernel.json").read_text())["argv"][-1] \
        == "{connection_file}"
    assert os.access(out / "Dockerfile", os.R_OK)
