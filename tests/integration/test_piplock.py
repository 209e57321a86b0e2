"""A pip step hash-locked by ``nublado-build lock`` on the base, then built."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import CliResult, docker, run_cli

pytestmark = pytest.mark.integration


def test_lock_build_and_stale(tmp_path: Path, base_image: str,
                              build_payload: Callable[..., CliResult]) -> None:
    (tmp_path / "requirements.txt").write_text("attrs\n")
    (tmp_path / "payload.yaml").write_text(
        "name: locked-lab\ninstall:\n"
        "  - pip: {requirements: requirements.txt, lock: requirements.lock}\n"
        "kernel: {name: locked, display_name: Locked}\n")
    missing = run_cli("validate", str(tmp_path), check=False)
    assert missing.returncode == 2
    assert "'requirements.lock' does not exist yet; run `nublado-build lock" \
        in missing.stderr

    made = run_cli("lock", str(tmp_path), "--base", base_image, "--json").json
    [entry] = made["locks"]
    assert (entry["kind"], entry["index"], entry["written"]) == ("pip", 0, True)
    lock = (tmp_path / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9][^ =]*)==(\S+) \\$", lock, re.M))
    assert entry["packages"] == len(pins)
    assert {"attrs", "ipykernel"} <= set(pins)
    # Every pin carries hashes; the notes name the input, not a container path.
    assert all("--hash=sha256:" in block for block in lock.split("==")[1:])
    assert "/tmp/" not in lock
    again = run_cli("lock", str(tmp_path), "--base", base_image, "--json").json
    assert again["locks"][0]["written"] is False
    assert run_cli("lock", str(tmp_path), "--check").returncode == 0

    built = build_payload(tmp_path, "locked-lab:test")
    assert built.json["ok"]
    python = "/opt/payload/venv/bin/python"
    versions = docker("run", "--rm", "--entrypoint", python, "locked-lab:test", "-c",
                      "import importlib.metadata as m; print(m.version('attrs'), "
                      "m.version('ipykernel'))").stdout.split()
    assert versions == [pins["attrs"], pins["ipykernel"]]

    (tmp_path / "requirements.txt").write_text("attrs\ntoolz\n")
    stale = run_cli("validate", str(tmp_path), check=False)
    assert stale.returncode == 2
    assert "'requirements.lock' is stale: requirements.txt changed since it was " \
        "made" in stale.stderr
    check = run_cli("lock", str(tmp_path), "--check", check=False)
    assert check.returncode == 1
    assert f"{tmp_path}/requirements.lock: was made from other requirements than " \
        "requirements.txt" in check.stderr
    docker("image", "rm", "-f", "locked-lab:test", check=False)
