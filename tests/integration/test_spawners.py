"""The images under a real JupyterHub (issue 11): hub, proxy, DockerSpawner.

A JupyterHub from PyPI with DockerSpawner and configurable-http-proxy from
npm (``tests/hub/``) spawns the scipy-lab payload in three ways: the image
CMD (DockerSpawner's default), ``cmd = ["jupyterhub-singleuser"]``
(Zero-to-JupyterHub's default) and uid 4242 with a read-only root
filesystem. Everything a user does goes through the hub's public proxy on
127.0.0.1 with the user's own token. The same runs against a 5.x hub and an
image built on a base made with ``nublado-build base --jupyterhub 5``.

Under CI=true a missing node, configurable-http-proxy or Docker engine is a
failure, not a skip (``tests/conftest.py``: ``require``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nubladobuild.contract.labclient import execute_in_lab, run_in_lab_terminal
from tests.conftest import TEST_TAG, require
from tests.hub.harness import CHP, MODES, Hub, HubError, Mode, Spawned, hub_python_5
from tests.integration.conftest import PAYLOADS, CliResult, run_cli

pytestmark = pytest.mark.integration

SCIPY = PAYLOADS / "scipy-lab"
SCIPY_TAG = f"scipy-lab:{TEST_TAG}"
BASE5_TAG = f"nublado-jupyterlab-base:{TEST_TAG}-jh5"
SCIPY5_TAG = f"scipy-lab:{TEST_TAG}-jh5"
#: What the scipy-lab payload is (payloads/scipy-lab/payload.yaml).
KERNEL = "scipy"
PAYLOAD_PYTHON = "/opt/payload/venv/bin/python"
PAYLOAD_PIP = re.compile(
    r"pip \S+ from /opt/payload/venv/lib/python3\.\d+/site-packages/pip "
    r"\(python 3\.\d+\)")
LAB_VENV = "/usr/local/share/jupyterlab/venv"

#: The README's DockerSpawner advice: a named volume at the lab user's home.
HOME_VOLUME = Mode("homevol", home_volume="/home/lab",
                   description="a named volume at the lab user's home")

#: (hub major, mode) for every spawned server; ids read "hub6-z2jh-cmd".
SERVERS = [(major, mode) for major in (6, 5) for mode in MODES]


def _ids(server: tuple[int, Mode]) -> str:
    return f"hub{server[0]}-{server[1].user}"


# -- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def hub_tools(engine: None) -> None:
    """Require node and configurable-http-proxy (fail under CI=true)."""
    for tool in ("node", "npm"):
        require(shutil.which(tool) is not None,
                f"{tool} is not on PATH (run scripts/setup-docker)")
    require(CHP.exists(),
            f"{CHP} is missing (run scripts/setup-hub-proxy: npm ci)")
    version = subprocess.run([str(CHP), "--version"], capture_output=True,
                             text=True, timeout=60, check=False)
    require(version.returncode == 0,
            f"configurable-http-proxy does not run: {version.stderr[-500:]}")


@pytest.fixture(scope="module")
def scipy_image(build_payload: Callable[..., CliResult]) -> str:
    result = build_payload(SCIPY, SCIPY_TAG)
    assert result.json["kernel"] == KERNEL
    return SCIPY_TAG


@pytest.fixture(scope="module")
def scipy5_image(engine: None) -> str:
    """Build a hub-5.x base (``--jupyterhub 5``) and scipy-lab on it."""
    run_cli("base", "--jupyterhub", "5", "--tag", BASE5_TAG, "--json")
    result = run_cli("build", str(SCIPY), "--base", BASE5_TAG, "--tag", SCIPY5_TAG,
                     "--json")
    assert result.json["kernel"] == KERNEL
    return SCIPY5_TAG


def _run_hub(python: str, image: str, workdir: Path, major: int) -> Iterator[Hub]:
    hub = Hub(python=python, image=image, workdir=workdir, major=major,
              modes=(*MODES, HOME_VOLUME))
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        leftover = hub.containers() + hub.volumes()
        assert leftover == [], f"left after the hub stopped: {leftover}"


@pytest.fixture(scope="module")
def hub6(hub_tools: None, scipy_image: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A JupyterHub 6.x (the dev venv's) spawning scipy-lab on the test base."""
    yield from _run_hub(sys.executable, scipy_image, tmp_path_factory.mktemp("hub6"),
                        6)


@pytest.fixture(scope="module")
def hub5(hub_tools: None, scipy5_image: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A JupyterHub 5.x (hash-locked venv) spawning scipy-lab on a hub-5 base."""
    yield from _run_hub(hub_python_5(), scipy5_image, tmp_path_factory.mktemp("hub5"),
                        5)


@pytest.fixture(scope="module", params=SERVERS, ids=_ids)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[Hub, Mode, Spawned]]:
    """Spawn one user's server through the hub; stop it afterwards."""
    major, mode = request.param
    hub: Hub = request.getfixturevalue(f"hub{major}")
    spawned = hub.spawn(mode)
    try:
        yield hub, mode, spawned
    finally:
        try:
            if hub.server_model(mode.user) is not None:
                hub.stop_server(mode.user)
        except (HubError, OSError):
            pass  # the hub fixture's stop removes whatever is left


# -- tests (in the order a user meets them) ------------------------------------


def test_hub_versions(server: tuple[Hub, Mode, Spawned]) -> None:
    """The hub is the major it should be and the lab's singleuser matches it."""
    hub, mode, spawned = server
    expected = hub.major
    assert int(hub.version.split(".")[0]) == expected
    status, data, headers = hub.request("GET", f"/user/{mode.user}/api/status",
                                        token=spawned.token)
    assert status == 200, hub.fail(f"/api/status -> {status}: {data!r}")
    lab_hub = headers.get("x-jupyterhub-version", "")
    assert lab_hub.split(".")[0] == str(expected), (
        f"hub {hub.version}, lab's jupyterhub-singleuser {lab_hub!r}")
    assert "This could cause failure to authenticate" not in hub.log_tail(100000)


def test_spawned_as_asked(server: tuple[Hub, Mode, Spawned]) -> None:
    """The container runs with the mode's command, user and root filesystem."""
    hub, mode, spawned = server
    assert spawned.container.startswith(f"{hub.prefix}-")
    info = json.loads(subprocess.run(
        ["docker", "inspect", spawned.container], capture_output=True, text=True,
        check=True, timeout=60).stdout)[0]
    image = json.loads(subprocess.run(
        ["docker", "image", "inspect", hub.image], capture_output=True, text=True,
        check=True, timeout=60).stdout)[0]["Config"]
    cmd = info["Config"]["Cmd"]
    if mode.cmd is None:
        assert cmd[:len(image["Cmd"])] == image["Cmd"]
    else:
        assert cmd[:len(mode.cmd)] == mode.cmd
    assert info["Config"]["User"] == (f"{mode.uid}:{mode.uid}" if mode.uid
                                      else image["User"])
    assert info["HostConfig"]["ReadonlyRootfs"] is mode.read_only
    assert info["HostConfig"]["AutoRemove"] is True
    assert info["HostConfig"]["NetworkMode"] == "bridge"
    # The lab's port is published on loopback only.
    assert info["HostConfig"]["PortBindings"] == {
        "8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    uid = subprocess.run(["docker", "exec", spawned.container, "id", "-u"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert uid.stdout.strip() == str(mode.uid or image["User"].split(":")[0])


def test_status(server: tuple[Hub, Mode, Spawned]) -> None:
    hub, mode, spawned = server
    status, data, _ = hub.request("GET", f"/user/{mode.user}/api/status",
                                  token=spawned.token)
    assert status == 200, hub.fail(f"/api/status -> {status}: {data!r}")
    assert sorted(data) == ["connections", "kernels", "last_activity", "started"]
    assert data["kernels"] == 0


def test_kernelspecs_are_the_payloads(server: tuple[Hub, Mode, Spawned]) -> None:
    """Only the payload's kernel is offered, and it is the default."""
    hub, mode, spawned = server
    status, data, _ = hub.request("GET", f"/user/{mode.user}/api/kernelspecs",
                                  token=spawned.token)
    assert status == 200, hub.fail(f"/api/kernelspecs -> {status}: {data!r}")
    assert sorted(data["kernelspecs"]) == [KERNEL]
    assert data["default"] == KERNEL
    argv = data["kernelspecs"][KERNEL]["spec"]["argv"]
    assert not argv[0].startswith(LAB_VENV)


def test_kernel_runs_payload_python(server: tuple[Hub, Mode, Spawned]) -> None:
    hub, mode, spawned = server
    out = execute_in_lab(spawned.url, spawned.token, KERNEL,
                         "import sys; print(sys.executable)")
    assert out["status"] == "ok", (out["errors"], hub.container_logs(mode.user))
    assert out["stdout"].strip() == PAYLOAD_PYTHON


def test_python3_kernel_runs_payload(server: tuple[Hub, Mode, Spawned]) -> None:
    """A kernel asked for as ``python3`` (notebooks, REST clients) is the payload's."""
    hub, mode, spawned = server
    out = execute_in_lab(spawned.url, spawned.token, "python3",
                         "import sys; print(sys.executable)")
    assert out["status"] == "ok", (out["errors"], hub.container_logs(mode.user))
    assert out["stdout"].strip() == PAYLOAD_PYTHON, (
        "POST /api/kernels {name: python3} ran the lab's Python, not the payload")


def test_notebook_pip_is_payloads(server: tuple[Hub, Mode, Spawned]) -> None:
    """``!pip --version`` in a notebook is the payload's pip."""
    hub, mode, spawned = server
    out = execute_in_lab(spawned.url, spawned.token, KERNEL, "!pip --version")
    assert out["status"] == "ok", (out["errors"], hub.container_logs(mode.user))
    line = out["stdout"].strip()
    assert PAYLOAD_PIP.fullmatch(line), f"!pip --version printed {line!r}"
    own = subprocess.run(["docker", "run", "--rm", "--entrypoint",
                          "/opt/payload/venv/bin/pip", hub.image, "--version"],
                         capture_output=True, text=True, timeout=120, check=True)
    assert line == own.stdout.strip()


def test_terminal_has_sentinel(server: tuple[Hub, Mode, Spawned]) -> None:
    _hub, _mode, spawned = server
    value = run_in_lab_terminal(spawned.url, spawned.token,
                                "$RUNNING_INSIDE_JUPYTERLAB")
    assert value == "TRUE"


def test_stop_removes_container(server: tuple[Hub, Mode, Spawned]) -> None:
    """DELETE /hub/api/users/<u>/server stops the lab and removes its container."""
    hub, mode, spawned = server
    assert hub.containers() == [spawned.container]
    hub.stop_server(mode.user)
    assert hub.server_model(mode.user) is None
    assert hub.containers() == []
    gone = subprocess.run(["docker", "inspect", spawned.container],
                          capture_output=True, text=True, timeout=60, check=False)
    assert gone.returncode == 1 and "No such object" in gone.stderr


def test_home_volume_keeps_files(hub6: Hub) -> None:
    """A file saved in the lab survives a restart with a volume at the home.

    The README's DockerSpawner setting (``volumes`` at ``/home/lab``): the
    lab starts in the home, so the contents API writes onto the volume.
    """
    user = HOME_VOLUME.user
    path = f"/user/{user}/api/contents/kept.txt"
    first = hub6.spawn(HOME_VOLUME)
    try:
        status, data, _ = hub6.request(
            "PUT", path, {"type": "file", "format": "text", "content": "kept\n"},
            token=first.token)
        assert status == 201, data
        assert data["path"] == "kept.txt"
    finally:
        hub6.stop_server(user)
    assert hub6.volumes() == [f"{hub6.prefix}-home-{user}"]
    second = hub6.spawn(HOME_VOLUME)
    try:
        status, data, _ = hub6.request("GET", path, token=second.token)
        assert status == 200, data
        assert data["content"] == "kept\n"
        on_disk = subprocess.run(["docker", "exec", second.container, "cat",
                                  "/home/lab/kept.txt"], capture_output=True,
                                 text=True, timeout=60, check=False)
        assert on_disk.stdout == "kept\n"
    finally:
        hub6.stop_server(user)
