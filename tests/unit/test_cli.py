"""The CLI's contract with users: messages, exit codes, JSON, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCIPY = REPO / "payloads" / "scipy-lab"


def cli(*args: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nubladobuild", *args],
                          capture_output=True, text=True, cwd=REPO, check=False,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_validate_ok_and_json() -> None:
    proc = cli("validate", str(SCIPY), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] and data["payloads"][0]["name"] == "scipy-lab"


def test_validate_json_error_lists_problems(tmp_path: Path) -> None:
    (tmp_path / "payload.yaml").write_text("name: x\ninstall: []\n")
    proc = cli("validate", str(tmp_path), "--json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["ok"] is False and data["exit_code"] == 2
    locations = {p["location"] for p in data["problems"]}
    assert {"install", "kernel"} <= locations
    assert "Traceback" not in proc.stderr


def test_missing_directory_is_input_error(tmp_path: Path) -> None:
    proc = cli("build", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "payload directory does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_engine_says_how_to_start_one(tmp_path: Path) -> None:
    proc = cli("build", str(SCIPY), env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert proc.returncode == 3, proc.stderr
    assert "No Docker engine answers" in proc.stderr
    assert "dockerd" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_option_is_usage_error() -> None:
    proc = cli("build", "--frobnicate")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
