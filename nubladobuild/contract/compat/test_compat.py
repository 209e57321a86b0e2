"""The compatibility contract: compat links resolve, legacy starts work.

An image built with the ``nublado-legacy`` profile starts the way the old
Nublado controller starts labs.

The old controller runs ``/opt/lsst/software/jupyterlab/runlab.sh`` as an
arbitrary UID with a read-only root filesystem, a tmpfs ``/tmp``, ``HOME``
on a volume and ``JUPYTERLAB_CONFIG_DIR=/opt/lsst/software/jupyterlab``,
``RUNNING_INSIDE_JUPYTERLAB=TRUE`` and ``JUPYTERLAB_START_COMMAND`` set.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nubladobuild.contract.labclient import execute_in_lab
from nubladobuild.contract.plugin import (
    ARBITRARY_UID,
    CONTRACT_LABEL,
    LAB_ROOT,
    SESSION_ID,
    SESSION_LABEL,
    Container,
    ImageInfo,
    Lab,
    docker,
    finish_lab,
    lab_get,
    server_process,
    volume,
    wait_for_api,
)

COMPAT_LABEL = "io.nublado.compat"
RECORD = f"{LAB_ROOT}/compat-links.tsv"
LEGACY_DIR = "/opt/lsst/software/jupyterlab"
LEGACY_START = f"{LEGACY_DIR}/runlab.sh"
LEGACY_HOME = "/home/nublado-user"


def _profiles(image_info: ImageInfo) -> list[str]:
    return [p for p in image_info.labels.get(COMPAT_LABEL, "").split(",") if p]


@pytest.fixture
def compat_links(image_info: ImageInfo, host: Any) -> list[dict[str, str]]:
    """Return the links apply-compat recorded (the suite runs only with the label)."""
    assert _profiles(image_info), f"image has no {COMPAT_LABEL} label"
    record = host.file(RECORD)
    assert record.is_file, f"{COMPAT_LABEL} label set but {RECORD} is missing"
    links = []
    for line in record.content_string.splitlines():
        if line.strip() and not line.startswith("#"):
            mode, path, target, source = line.split("\t")
            links.append({"mode": mode, "path": path, "target": target,
                          "source": source})
    assert links, f"{RECORD} lists no links"
    return links


@pytest.fixture(scope="module")
def legacy(image_info: ImageInfo) -> None:
    """Skip unless the image carries the nublado-legacy profile."""
    if "nublado-legacy" not in _profiles(image_info):
        pytest.skip("image not built with the nublado-legacy compat profile")


def test_every_compat_link_resolves(host: Any, compat_links: list[dict[str, str]]
                                    ) -> None:
    """Every recorded compat link exists and points where recorded."""
    for link in compat_links:
        path = host.file(link["path"])
        where = f"{link['path']} ({link['source']})"
        assert path.exists, f"{where}: does not resolve"
        if link["mode"] == "link":
            assert path.is_symlink, f"{where}: not a symlink"
            assert path.linked_to == host.file(link["target"]).linked_to or \
                path.linked_to == link["target"], where
        else:
            assert not path.is_symlink, f"{where}: a copy, yet a symlink"


def test_compat_links_readable_as_arbitrary_uid(ro_container: Container,
                                                compat_links: list[dict[str, str]]
                                                ) -> None:
    """An arbitrary UID can read every compat path."""
    for link in compat_links:
        proc = ro_container.exec("test", "-r", link["path"])
        assert proc.returncode == 0, f"{link['path']} unreadable as {ARBITRARY_UID}"


def test_legacy_paths_point_at_the_new_layout(legacy: None, host: Any,
                                              image_info: ImageInfo) -> None:
    """The nublado-legacy paths lead to the new layout."""
    for name in ("runlab.sh", "runlab"):
        start = host.file(f"{LEGACY_DIR}/{name}")
        assert start.linked_to == f"{LAB_ROOT}/runlab"
        assert host.run(f"test -x {LEGACY_DIR}/{name}").rc == 0
    kernel_json = host.file(f"{LEGACY_DIR}/lsst_kernel.json")
    spec = json.loads(kernel_json.content_string)
    real = json.loads(host.file(f"/usr/local/share/jupyter/kernels/"
                                f"{image_info.kernel}/kernel.json").content_string)
    assert spec == real
    launcher = host.file(f"{LEGACY_DIR}/lsstlaunch.bash")
    assert launcher.linked_to == spec["argv"][0]
    manifests = host.file(f"{LEGACY_DIR}/versions-installed/"
                          f"payload-{image_info.payload}.txt")
    assert manifests.is_file


@pytest.fixture
def legacy_start(compat_links: list[dict[str, str]]) -> None:
    """Skip unless a compat link provides the old controller's start command."""
    if LEGACY_START not in {link["path"] for link in compat_links}:
        pytest.skip(f"image has no {LEGACY_START} compat link")


@pytest.fixture
def legacy_lab(legacy_start: None, image_info: ImageInfo,
               lab_token: str) -> Iterator[Lab]:
    """Start the lab exactly as the old controller does, for one test.

    The server log is checked when the test ends: an error line fails it.
    """
    home = volume()
    uid = f"{ARBITRARY_UID}:{ARBITRARY_UID}"
    # The controller's home volume belongs to the user.
    docker("run", "--rm", "--label", CONTRACT_LABEL, "--label",
           f"{SESSION_LABEL}={SESSION_ID}", "--user", "0:0", "-v",
           f"{home}:{LEGACY_HOME}", "--entrypoint", "chown", image_info.image, uid,
           LEGACY_HOME, timeout=120)
    try:
        start = time.monotonic()
        box = Container(
            image_info.image, publish=True, user=uid,
            env={"JUPYTER_TOKEN": lab_token,
                 "JUPYTERLAB_CONFIG_DIR": LEGACY_DIR,
                 "RUNNING_INSIDE_JUPYTERLAB": "TRUE",
                 "JUPYTERLAB_START_COMMAND": LEGACY_START,
                 "HOME": LEGACY_HOME,
                 "USER": "nublado-user"},
            extra_args=["--read-only", "--tmpfs", "/tmp:mode=1777",  # noqa: S108 - container path
                        "-v", f"{home}:{LEGACY_HOME}"],
            command=[LEGACY_START])
        try:
            base, _ = wait_for_api(box)
        except BaseException:
            box.close()
            raise
        lab = Lab(box=box, base=base, mode="legacy-controller",
                  seconds=time.monotonic() - start)
        os.environ.setdefault("NUBLADO_LEGACY_READY_SECONDS", f"{lab.seconds:.2f}")
        print(f"legacy start: lab answered on /api after {lab.seconds:.1f} s")
        try:
            yield lab
        finally:
            finish_lab(lab)
    finally:
        docker("volume", "rm", "-f", home, check=False, timeout=120)


def test_legacy_start_answers_api(legacy_lab: Lab, lab_token: str,
                                  image_info: ImageInfo) -> None:
    """The old controller's start gives a lab from the lab venv."""
    assert "started" in lab_get(legacy_lab.base, "/api/status", lab_token)
    specs = lab_get(legacy_lab.base, "/api/kernelspecs", lab_token)
    assert image_info.kernel in specs["kernelspecs"]
    argv = server_process(legacy_lab.box)["argv"]
    assert argv[0].startswith(f"{LAB_ROOT}/venv/bin/python"), argv
    assert argv[1] == "-I", argv


def test_legacy_start_controller_config_dir_is_not_a_config_path(
        legacy_lab: Lab) -> None:
    """JUPYTERLAB_CONFIG_DIR is the old start scripts' home, not Jupyter config."""
    env = server_process(legacy_lab.box)["environ"]
    assert LEGACY_DIR not in env.get("JUPYTER_CONFIG_PATH", "").split(":")
    assert env["JUPYTERLAB_CONFIG_DIR"] == LEGACY_DIR
    assert env["RUNNING_INSIDE_JUPYTERLAB"] == "TRUE"


def test_legacy_start_runs_a_kernel(legacy_lab: Lab, lab_token: str,
                                    image_info: ImageInfo) -> None:
    """The lab starts the payload kernel (its wrapper) as the arbitrary UID."""
    result = execute_in_lab(legacy_lab.base, lab_token, image_info.kernel,
                            "import os, sys; print(os.getuid(), sys.executable, "
                            "os.environ.get('JUPYTERLAB_CONFIG_DIR'))")
    assert result["status"] == "ok", result
    assert result["stdout"].split() == [ARBITRARY_UID, image_info.python,
                                        LEGACY_DIR]
