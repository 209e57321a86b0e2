"""Release-style payloads end to end: sciplat-lab (install script, the
Science Pipelines layout, nublado-legacy compat) and spherex-lab (conda under
/opt/spherex). Both build, pass ``nublado-build test`` (the contract with
its compat and browser checks, plus their own tests), and start the way the
old Nublado controller starts labs. Compat failures stop the build with a
message naming the link.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nubladobuild.contract.browser import find_chromium
from tests.conftest import TEST_TAG, require
from tests.integration.conftest import (
    BASE_PASSED,
    NO_WIDGETS,
    NOT_LEGACY,
    OWN_SHELL,
    PAYLOADS,
    CliResult,
    assert_contract,
    docker,
    run_cli,
)

pytestmark = pytest.mark.integration
SCIPLAT = PAYLOADS / "sciplat-lab"
SPHEREX = PAYLOADS / "spherex-lab"
# The tags follow each payload's policy; the repository names carry the
# test tag so that parallel checkouts sharing an engine do not collide.
SCIPLAT_TAG = f"sciplat-lab-{TEST_TAG}:w_2025_30"
SPHEREX_TAG = f"spherex-lab-{TEST_TAG}:2025.07"
LEGACY_START = "/opt/lsst/software/jupyterlab/runlab.sh"
UID = "51234:51234"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    require(path is not None, "no Chromium for the browser check (apt-get "
            "install chromium)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def sciplat_image(build_payload: Callable[..., CliResult]) -> str:
    result = build_payload(SCIPLAT, SCIPLAT_TAG)
    assert result.json["kernel"] == "lsst"
    print(f"sciplat-lab built in {result.json['seconds']} s")
    return SCIPLAT_TAG


@pytest.fixture(scope="module")
def spherex_image(build_payload: Callable[..., CliResult], conda_channel: str
                  ) -> str:
    result = build_payload(SPHEREX, SPHEREX_TAG, "--conda-channel", conda_channel)
    assert result.json["kernel"] == "spherex"
    print(f"spherex-lab built in {result.json['seconds']} s")
    return SPHEREX_TAG


def _labels(image: str) -> dict[str, str]:
    attrs = json.loads(docker("image", "inspect", image).stdout)[0]
    return dict(attrs["Config"]["Labels"])


def test_sciplat_lab_meets_contract(sciplat_image: str, chromium: str,
                                    tmp_path: Path,
                                    contract: Callable[..., dict[str, Any]]) -> None:
    summary = contract(sciplat_image, SCIPLAT, tmp_path)
    # Base, payload (incl. the launcher browser check), the 6 compat checks
    # and the payload's 8 tests; skipped: the default-PATH terminal check
    # (sciplat-lab brings its own shell setup) and the widget checks (no
    # ipywidgets in the stack).
    assert_contract(summary, kernel="lsst", payload_tests=8,
                    skipped=(OWN_SHELL, *NO_WIDGETS), compat=True)
    assert summary["passed"] == BASE_PASSED + 18 + 6 + 8
    assert _labels(sciplat_image)["io.nublado.compat"] == "nublado-legacy"
    # The lab section: the spellchecker the real sciplat-lab adds to its lab.
    assert _labels(sciplat_image)["io.nublado.lab.extensions"] == \
        "jupyterlab-spellchecker==0.9.0"


def test_spherex_lab_meets_contract(spherex_image: str, chromium: str,
                                    tmp_path: Path,
                                    contract: Callable[..., dict[str, Any]]) -> None:
    summary = contract(spherex_image, SPHEREX, tmp_path)
    # Explicit compat links, no nublado-legacy profile: the legacy-paths
    # check is skipped, and the widget checks (no ipywidgets).
    assert_contract(summary, kernel="spherex", payload_tests=6,
                    skipped=(NOT_LEGACY, *NO_WIDGETS), compat=True)
    assert summary["passed"] == BASE_PASSED + 19 + 5 + 6
    assert _labels(spherex_image)["io.nublado.compat"] == "explicit"


@pytest.fixture
def home_volume(request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"nublado-it-home-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)


@pytest.mark.parametrize("which", ["sciplat", "spherex"])
def test_starts_like_the_old_controller(which: str, request: pytest.FixtureRequest,
                                        home_volume: str) -> None:
    """runlab.sh, arbitrary UID, read-only root, tmpfs /tmp, HOME volume."""
    image = request.getfixturevalue(f"{which}_image")
    docker("run", "--rm", "--user", "0:0", "-v", f"{home_volume}:/home/someone",
           "--entrypoint", "chown", image, UID, "/home/someone")
    token = uuid.uuid4().hex
    name = f"nublado-it-legacy-{uuid.uuid4().hex[:8]}"
    start = time.monotonic()
    docker("run", "-d", "--name", name, "--user", UID, "--read-only",
           "--tmpfs", "/tmp:mode=1777", "-v", f"{home_volume}:/home/someone",
           "-e", "HOME=/home/someone", "-e", f"JUPYTER_TOKEN={token}",
           "-e", "JUPYTERLAB_CONFIG_DIR=/opt/lsst/software/jupyterlab",
           "-e", "RUNNING_INSIDE_JUPYTERLAB=TRUE",
           "-e", f"JUPYTERLAB_START_COMMAND={LEGACY_START}",
           "-p", "127.0.0.1::8888", image, LEGACY_START)
    try:
        port = int(docker("port", name, "8888/tcp").stdout.split(":")[-1])
        status: dict[str, Any] = {}
        while time.monotonic() - start < 120:
            try:
                request_ = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/status",
                    headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request_, timeout=5) as resp:
                    status = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.25)
        ready = time.monotonic() - start
        logs = docker("logs", name, check=False)
        assert status, f"no /api answer in 120 s:\n{logs.stderr[-3000:]}"
        print(f"{image}: legacy start ready in {ready:.1f} s")
        ps = docker("exec", name, "bash", "-c", "id -u; tr '\\0' ' ' < /proc/$(cut "
                    "-d' ' -f1 /proc/1/task/1/children)/cmdline; echo; "
                    "awk '$2 == \"/\" {print $4}' "
                    "/proc/mounts | cut -d, -f1").stdout
        uid, cmdline, root = ps.splitlines()
        assert uid == UID.split(":")[0]
        assert cmdline.startswith("/usr/local/share/jupyterlab/venv/bin/python3 -I -m "
                                  "jupyterlab ")
        assert root == "ro"
        assert ready < 60
    finally:
        docker("rm", "-f", name, check=False)


def test_bad_rsp_tag_refused_before_building(engine: None) -> None:
    result = run_cli("build", str(SCIPLAT), "--allow-secret", "ca", "--allow-secret",
                     "index", "--tag", "sciplat-lab:v1.0",
                     check=False)
    assert result.returncode == 2
    assert "'v1.0' is not an rsp tag" in result.stderr
    assert "Traceback" not in result.stderr


def _compat_payload(tmp_path: Path, name: str, script: str, compat: str) -> Path:
    payload = tmp_path / name
    payload.mkdir()
    (payload / "install.sh").write_text(
        "#!/bin/bash\nset -euo pipefail\npython3 -m venv \"$PAYLOAD_PREFIX/venv\"\n"
        f"{script}\n")
    (payload / "payload.yaml").write_text(
        f"name: {name}\ninstall:\n  - script: {{path: install.sh, prefix: /opt/{name},"
        f" python: /opt/{name}/venv/bin/python3}}\n"
        "kernel: {name: k, display_name: K, python: /usr/local/bin/python3}\n"
        f"compat:\n{compat}")
    return payload


def test_compat_target_missing_fails_the_build(
        tmp_path: Path, build_payload: Callable[..., CliResult]) -> None:
    payload = _compat_payload(tmp_path, "compat-missing", "true",
                              "  - {path: /opt/old/tool, target: /opt/nowhere/tool}\n")
    result = build_payload(payload, f"compat-missing:{TEST_TAG}", check=False)
    assert result.returncode == 1
    assert "compat link /opt/old/tool -> /opt/nowhere/tool (from payload.yaml " \
        "compat[0]): the target does not exist in the image" in result.stderr
    assert docker("image", "inspect", f"compat-missing:{TEST_TAG}", check=False
                  ).returncode != 0


def test_compat_path_taken_by_payload_fails_the_build(
        tmp_path: Path, build_payload: Callable[..., CliResult]) -> None:
    payload = _compat_payload(
        tmp_path, "compat-taken",
        "mkdir -p /opt/lsst/software/jupyterlab\n"
        "echo '#!/bin/sh' > /opt/lsst/software/jupyterlab/runlab.sh",
        f"  - {{path: {LEGACY_START}, "
        "target: /usr/local/share/jupyterlab/runlab}\n")
    result = build_payload(payload, f"compat-taken:{TEST_TAG}", check=False)
    assert result.returncode == 1
    assert f"compat link {LEGACY_START} -> /usr/local/share/jupyterlab/runlab" \
        in result.stderr
    assert "already exists in the image as a file" in result.stderr
