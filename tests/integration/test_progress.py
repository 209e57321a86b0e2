"""Build progress off a terminal: one line per finished step, with its time.

The subprocess's stderr is a pipe, so the CLI prints plain lines (the live
display is for terminals; tests/unit/test_progress.py drives it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TEST_TAG
from tests.integration.conftest import CliResult, docker, run_cli

STEP_LINE = re.compile(r"^  (\S.*?)  (\d+\.\d s|CACHED)$")


def _payload(root: Path) -> Path:
    payload = root / "progress"
    payload.mkdir()
    (payload / "requirements.txt").write_text("")
    (payload / "payload.yaml").write_text(
        "name: progress\ninstall:\n  - pip: {requirements: requirements.txt}\n"
        "kernel: {name: progress, display_name: Progress}\n")
    return payload


def test_build_prints_steps_with_times_and_json_stays_clean(
        base_image: str, tmp_path: Path,
        build_payload: Callable[..., CliResult]) -> None:
    payload = _payload(tmp_path)
    tag = f"nublado-progress:{TEST_TAG}"
    try:
        result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                         "--no-cache")
        lines = result.stderr.splitlines()
        steps = {m.group(1): m.group(2) for ln in lines
                 if (m := STEP_LINE.match(ln))}
        assert re.fullmatch(r"\d+\.\d s", steps["install[0].pip"]), result.stderr
        # The payload's step says when it starts running, before its time.
        assert lines.index("  install[0].pip  running") < lines.index(
            f"  install[0].pip  {steps['install[0].pip']}"), result.stderr
        assert {"write-manifest", "isolation guard", "export image"} <= set(steps)
        # Not BuildKit's raw log: no "#N ..." lines, no pip output.
        assert not any(ln.startswith("#") for ln in lines), result.stderr
        # The guard's own message is still shown.
        assert "isolation guard: JupyterLab environment unchanged" in result.stderr
        assert result.stdout.startswith(f"built {tag} (")

        again = build_payload(payload, tag)  # --json, all cached
        document = json.loads(again.stdout)
        assert document["ok"] and document["tags"] == [tag]
        assert not any(STEP_LINE.match(ln) for ln in again.stderr.splitlines())
    finally:
        docker("rmi", tag, check=False)
