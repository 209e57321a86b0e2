"""The five install kinds end to end: each example builds and meets the contract.

conda against the offline fixture channel (tests/fixtures/conda_channel.py),
script, dockerfile fragment, transplant (source images built here), plus the
failures that must stop a build: unresolved libraries after a transplant
(the isolation guard's real builds are in test_boundary.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nubladobuild.engine import find_build_client
from tests.conftest import TEST_TAG, require
from tests.integration.conftest import (
    NO_WIDGETS,
    NO_WRAPPER,
    PAYLOADS,
    CliResult,
    assert_contract,
    docker,
    image_id,
    run_cli,
)

pytestmark = pytest.mark.integration

PYTHON_IMAGE = "nublado-build/python:3.13-slim-trixie"
TRANSPLANT_SOURCE = "nublado-transplant-demo-source:latest"
BAD_SOURCE = f"nublado-transplant-bad:{TEST_TAG}"
CA = "/etc/ssl/certs/ca-certificates.crt"



def _size_over_base(image: str, base: str) -> int:
    def size(tag: str) -> int:
        return int(docker("image", "inspect", "--format", "{{.Size}}", tag)
                   .stdout.strip())

    return size(image) - size(base)


def build_source_image(context: Path, tag: str) -> None:
    """Build a transplant source image with BuildKit (CA as a secret)."""
    client = find_build_client()
    argv = [*client.argv, "-q", "-t", tag, "--build-arg",
            f"PYTHON_IMAGE={PYTHON_IMAGE}"]
    if Path(CA).is_file():
        argv += ["--secret", f"id=ca,src={CA}"]
    proc = subprocess.run([*argv, str(context)], capture_output=True, text=True,
                          env={**os.environ, **client.env}, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="session")
def python_image(base_image: str) -> str:
    # Building the base makes the python image when it is missing (bootstrap).
    require(image_id(PYTHON_IMAGE) is not None,
            f"{PYTHON_IMAGE} is missing (run `nublado-build bootstrap`)")
    return PYTHON_IMAGE


def _build_and_check(build_payload: Callable[..., CliResult],
                     contract: Callable[..., dict[str, Any]], base_image: str,
                     name: str, tmp_path: Path, *extra: str, kernel: str,
                     payload_tests: int, skipped: tuple[str, ...]) -> dict[str, Any]:
    tag = f"{name}:{TEST_TAG}"
    result = build_payload(PAYLOADS / name, tag, *extra)
    summary = contract(tag, PAYLOADS / name, tmp_path)
    # Exactly these suites, counts and skipped checks; the payload's own
    # tests all pass (none failed; see the contract fixture).
    assert_contract(summary, kernel=kernel, payload_tests=payload_tests,
                    skipped=skipped)
    extra_mb = _size_over_base(tag, base_image) / 1e6
    print(f"{name}: built in {result.json['seconds']} s, {extra_mb:.0f} MB over "
          "the base")
    return result.json


def test_conda_demo(conda_channel: str, base_image: str, tmp_path: Path,
                    build_payload: Callable[..., CliResult],
                    contract: Callable[..., dict[str, Any]]) -> None:
    data = _build_and_check(build_payload, contract, base_image, "conda-demo",
                            tmp_path, "--conda-channel", conda_channel,
                            kernel="conda-demo", payload_tests=5,
                            skipped=NO_WIDGETS)
    assert data["python"] == "/opt/conda/envs/demo/bin/python"
    # Only the prefix left the installing stage: no rattler venv in any layer.
    history = docker("history", "--no-trunc", f"conda-demo:{TEST_TAG}").stdout
    assert "py-rattler" not in history


def test_conda_lock_and_check(base_image: str, conda_channel: str,
                              tmp_path: Path) -> None:
    payload = tmp_path / "conda-demo"
    shutil.copytree(PAYLOADS / "conda-demo", payload)
    result = run_cli("lock", str(payload), "--conda-channel", conda_channel)
    assert "conda-lock.yml written" in result.stdout
    assert "add 'lock: conda-lock.yml'" in result.stdout
    yaml_file = payload / "payload.yaml"
    yaml_file.write_text(yaml_file.read_text().replace(
        "      environment: environment.yml\n",
        "      environment: environment.yml\n      lock: conda-lock.yml\n"))
    run_cli("lock", str(payload), "--check", "--conda-channel", conda_channel)
    # Building from the lock needs no channel: render fetches what it names.
    out = tmp_path / "context"
    data = run_cli("render", str(payload), "-o", str(out), "--base", base_image,
                   "--json").json
    records = json.loads((out / "steps/00-conda/pkgs/records.json").read_text())
    assert data["conda_packages"] == {"0": len(records["packages"])}
    assert {p["name"] for p in records["packages"]} >= {"python", "ipykernel", "six"}
    # The environment changes: the lock is stale, --check says so (exit 1).
    env_file = payload / "environment.yml"
    env_file.write_text(env_file.read_text().replace("  - six\n", ""))
    stale = run_cli("lock", str(payload), "--check", "--conda-channel",
                    conda_channel, check=False)
    assert stale.returncode == 1, stale.stderr
    assert "out of date" in stale.stderr and "content_hash differs" in stale.stderr
    assert "Traceback" not in stale.stderr


def test_render_without_fetch_says_so(base_image: str, tmp_path: Path) -> None:
    out = tmp_path / "context"
    result = run_cli("render", str(PAYLOADS / "conda-demo"), "-o", str(out),
                     "--base", base_image, "--no-fetch")
    assert "not fetched" in result.stdout
    assert "FROM ${BASE_IMAGE} AS conda-0" in (out / "Dockerfile").read_text()
    assert not (out / "steps/00-conda/pkgs/records.json").exists()


def test_script_demo(base_image: str, tmp_path: Path,
                     build_payload: Callable[..., CliResult],
                     contract: Callable[..., dict[str, Any]]) -> None:
    # The kernel runs the venv's Python directly: no wrapper to check.
    _build_and_check(build_payload, contract, base_image, "script-demo", tmp_path,
                     kernel="script-demo", payload_tests=3,
                     skipped=(NO_WRAPPER, *NO_WIDGETS))


def test_fragment_demo(base_image: str, tmp_path: Path,
                       build_payload: Callable[..., CliResult],
                       contract: Callable[..., dict[str, Any]]) -> None:
    _build_and_check(build_payload, contract, base_image, "fragment-demo", tmp_path,
                     kernel="fragment-demo", payload_tests=3,
                     skipped=(NO_WRAPPER, *NO_WIDGETS))


def test_transplant_demo(python_image: str, base_image: str, tmp_path: Path,
                         build_payload: Callable[..., CliResult],
                         contract: Callable[..., dict[str, Any]]) -> None:
    build_source_image(PAYLOADS / "transplant-demo" / "source", TRANSPLANT_SOURCE)
    data = _build_and_check(build_payload, contract, base_image, "transplant-demo",
                            tmp_path, kernel="transplant-demo", payload_tests=2,
                            skipped=(NO_WRAPPER, *NO_WIDGETS))
    assert data["python"] == "/opt/demo-venv/bin/python"


BAD_SOURCE_DOCKERFILE = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
# ls, with its libselinux dependency renamed to a library no image has.
RUN mkdir -p /opt/broken-tool/bin \\
 && python3 -c "import pathlib; data = pathlib.Path('/bin/ls').read_bytes(); \\
assert b'libselinux.so.1' in data; \\
pathlib.Path('/opt/broken-tool/bin/ls').write_bytes(\\
data.replace(b'libselinux.so.1', b'libnbgone0.so.1'))" \\
 && chmod 755 /opt/broken-tool/bin/ls
"""


def test_transplant_with_unresolved_library_fails(
        python_image: str, base_image: str, tmp_path: Path,
        build_payload: Callable[..., CliResult]) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "Dockerfile").write_text(BAD_SOURCE_DOCKERFILE)
    build_source_image(source, BAD_SOURCE)
    payload = tmp_path / "bad-transplant"
    payload.mkdir()
    (payload / "payload.yaml").write_text(
        "name: bad-transplant\ninstall:\n  - transplant:\n"
        f"      image: {BAD_SOURCE}\n      paths: [/opt/broken-tool]\n"
        "      python: /usr/local/bin/python3\n"
        "kernel: {name: bad, display_name: Bad}\n")
    result = build_payload(payload, f"bad-transplant:{TEST_TAG}", check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "scan-elf" in result.stderr
    assert "libnbgone0.so.1 (needed by /opt/broken-tool/bin/ls)" in result.stderr
    assert "exit code 1" in result.stderr
    assert "No image was tagged" in result.stderr
    assert "Traceback" not in result.stderr
    assert image_id(f"bad-transplant:{TEST_TAG}") is None


def test_script_failure_shows_tail_and_exit_code(
        base_image: str, tmp_path: Path,
        build_payload: Callable[..., CliResult]) -> None:
    payload = tmp_path / "failing-script"
    payload.mkdir()
    (payload / "install.sh").write_text(
        "#!/bin/bash\necho 'step one done'\necho 'compiling the thing' >&2\nexit 7\n")
    (payload / "payload.yaml").write_text(
        "name: failing-script\ninstall:\n  - script: {path: install.sh, "
        "prefix: /opt/failing, python: /usr/local/bin/python3}\n"
        "kernel: {name: f, display_name: F}\n")
    result = build_payload(payload, f"failing-script:{TEST_TAG}", check=False)
    assert result.returncode == 1
    for needle in ("run-install-script", "compiling the thing",
                   "install script install.sh failed with exit code 7",
                   "(exit code 7)", "No image was tagged"):
        assert needle in result.stderr, (needle, result.stderr[-3000:])
    assert image_id(f"failing-script:{TEST_TAG}") is None


