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
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from nubladobuild.contract.labclient import execute_in_lab
from nubladobuild.contract.plugin import (
    ARBITRARY_UID,
    LAB_ROOT,
    Container,
    ImageInfo,
    docker,
    lab_get,
    wait_for_api,
)

COMPAT_LABEL = "io.nublado.compat"
RECORD = f"{LAB_ROOT}/compat-links.tsv"
LEGACY_DIR = "/opt/lsst/software/jupyterlab"
LEGACY_START = f"{LEGACY_DIR}/runlab.sh"
LEGACY_HOME = "/home/nublado-user"


def _profiles(image_info: ImageInfo) -> list[str]:
    return [p for p in image_info.labels.get(COMPAT_LABEL, "").split(",") if p]


@pytest.fixture(scope="module")
def compat_links(image_info: ImageInfo, host: Any) -> list[dict[str, str]]:
    """Return the links apply-compat recorded; skip images without any."""
    if not _profiles(image_info):
        pytest.skip("image has no compat links (no io.nublado.compat label)")
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
    for link in compat_links:
        proc = ro_container.exec("test", "-r", link["path"])
        assert proc.returncode == 0, f"{link['path']} unreadable as {ARBITRARY_UID}"


def test_legacy_paths_point_at_the_new_layout(legacy: None, host: Any,
                                              image_info: ImageInfo) -> None:
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


@pytest.fixture(scope="module")
def legacy_start(compat_links: list[dict[str, str]]) -> None:
    """Skip unless a compat link provides the old controller's start command."""
    if LEGACY_START not in {link["path"] for link in compat_links}:
        pytest.skip(f"image has no {LEGACY_START} compat link")


@pytest.fixture(scope="module")
def legacy_lab(legacy_start: None, image_info: ImageInfo,
               lab_token: str) -> Iterator[tuple[Container, str, float]]:
    """Start the lab exactly as the old controller does; yield it, URL, seconds."""
    volume = f"nublado-contract-home-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", volume)
    uid = f"{ARBITRARY_UID}:{ARBITRARY_UID}"
    box = None
    try:
        # The controller's home volume belongs to the user.
        docker("run", "--rm", "--user", "0:0", "-v", f"{volume}:{LEGACY_HOME}",
               "--entrypoint", "chown", image_info.image, uid, LEGACY_HOME)
        start = time.monotonic()
        box = Container(
            image_info.image, publish=True, user=uid,
            env={"JUPYTER_TOKEN": lab_token,
                 "JUPYTERLAB_CONFIG_DIR": LEGACY_DIR,
                 "RUNNING_INSIDE_JUPYTERLAB": "TRUE",
                 "JUPYTERLAB_START_COMMAND": LEGACY_START,
                 "HOME": LEGACY_HOME,
                 "USER": "nublado-user"},
            extra_args=["--read-only", "--tmpfs", "/tmp:mode=1777",
                        "-v", f"{volume}:{LEGACY_HOME}"],
            command=[LEGACY_START])
        base, _ = wait_for_api(box)
        ready = time.monotonic() - start
        os.environ.setdefault("NUBLADO_LEGACY_READY_SECONDS", f"{ready:.2f}")
        print(f"legacy start: lab answered on /api after {ready:.1f} s")
        yield box, base, ready
    finally:
        if box is not None:
            box.close()
        docker("volume", "rm", "-f", volume, check=False)


def test_legacy_start_answers_api(legacy_lab: tuple[Container, str, float],
                                  lab_token: str, image_info: ImageInfo) -> None:
    box, base, _ = legacy_lab
    assert "started" in lab_get(base, "/api/status", lab_token)
    specs = lab_get(base, "/api/kernelspecs", lab_token)
    assert image_info.kernel in specs["kernelspecs"]
    cmdline = box.exec("bash", "-c", "tr '\\0' ' ' < /proc/$(cut -d' ' -f1 "
                       "/proc/1/task/1/children)/cmdline", check=True).stdout
    assert cmdline.startswith(f"{LAB_ROOT}/venv/bin/python3 -I -m "), cmdline


def test_legacy_start_controller_config_dir_is_not_a_config_path(
        legacy_lab: tuple[Container, str, float]) -> None:
    """JUPYTERLAB_CONFIG_DIR is the old start scripts' home, not Jupyter config."""
    box, _, _ = legacy_lab
    environ = box.exec("bash", "-c", "tr '\\0' '\\n' < /proc/$(cut -d' ' -f1 "
                       "/proc/1/task/1/children)/environ",
                       check=True).stdout.splitlines()
    env = dict(line.split("=", 1) for line in environ if "=" in line)
    assert LEGACY_DIR not in env.get("JUPYTER_CONFIG_PATH", "").split(":")
    assert env["JUPYTERLAB_CONFIG_DIR"] == LEGACY_DIR
    assert env["RUNNING_INSIDE_JUPYTERLAB"] == "TRUE"


def test_legacy_start_runs_a_kernel(legacy_lab: tuple[Container, str, float],
                                    lab_token: str, image_info: ImageInfo) -> None:
    """The lab starts the payload kernel (its wrapper) as the arbitrary UID."""
    _, base, _ = legacy_lab
    result = execute_in_lab(base, lab_token, image_info.kernel,
                            "import os, sys; print(os.getuid(), sys.executable, "
                            "os.environ.get('JUPYTERLAB_CONFIG_DIR'))")
    assert result["status"] == "ok", result
    assert result["stdout"].split() == [ARBITRARY_UID, image_info.python,
                                        LEGACY_DIR]
