"""The start hook (``start:`` in payload.yaml) in a real lab, both ways labs start.

One small payload whose ``start.sh`` (time limit 2 s) behaves as the
container's ``HOOK_MODE`` says: ``ok`` exports a variable, prepends to PATH
and tries a refused one (``PYTHONPATH``); ``fail`` exits 3; ``sleep``
sleeps 30 s. Labs start as the Nublado controller starts them (protocol
files, ``runlab.sh``, uid 4242, read-only root, a stand-in hub) and as
Zero-to-JupyterHub/KubeSpawner do (``jupyterhub-singleuser`` as the
command, no protocol files), with the helpers of
``test_nublado_protocol.py``. Checked in each: a real kernel and a real
terminal see the exports (or the failure variable), the server process's
own environment does not, and the server log says what happened.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nubladobuild.contract.labclient import execute_in_lab, run_in_lab_terminal
from tests.conftest import TEST_TAG
from tests.integration.conftest import CliResult, docker, image_id, run_cli
from tests.integration.test_boundary import fragment_payload
from tests.integration.test_nublado_protocol import (
    ENV_JSON,
    HOME,
    UID,
    FakeHub,
    Lab,
    bridge_gateway,
    browser_websockets,  # noqa: F401 - autouse: websockets as browsers send them
    start_lab,
    write_startup,
)

pytestmark = pytest.mark.integration

NAME = "starthook-lab"
TAG = f"{NAME}:{TEST_TAG}"
KERNEL = "hooked"
HOOK = "/opt/nublado/start/start (start.sh of payload starthook-lab)"
GREETING = "hello from the hook: it's 'quoted' $NOT_EXPANDED"
TOOLS = "/opt/hooktools/bin"
START_SH = f"""\
#!/bin/bash
echo "start hook: mode ${{HOOK_MODE:-ok}} as $(id -u) in $PWD"
case "${{HOOK_MODE:-ok}}" in
    fail) echo "cannot reach the data service" >&2; exit 3 ;;
    sleep) sleep 30 ;;
esac
export HOOK_GREETING={shlex.quote(GREETING)}
export PATH="{TOOLS}:$PATH"
export PYTHONPATH=/nowhere
exec "$@"
"""
PAYLOAD = f"""\
name: {NAME}
install:
  - pip: {{requirements: requirements.txt}}
kernel: {{name: {KERNEL}, display_name: Hooked}}
start: {{script: start.sh, timeout: 2}}
"""
RUNLAB = "/usr/local/share/jupyterlab/runlab"
ARGS_JSON = ["jupyterhub-singleuser", "--ip=0.0.0.0", "--port=8888", "--no-browser",
             f"--notebook-dir={HOME}"]
KERNEL_CODE = (
    "import os; print(repr(os.environ.get('HOOK_GREETING'))); "
    f"print(os.environ['PATH'].split(':').count({TOOLS!r})); "
    "print(os.environ.get('PYTHONPATH')); "
    "print(os.environ.get('NUBLADO_START_HOOK_FAILED'))")
TERMINAL_LINE = ("\"${HOOK_GREETING:-unset}|$(echo \"$PATH\" | tr : '\\n' | "
                 f"grep -cx {TOOLS})|${{NUBLADO_START_HOOK_FAILED:-none}}\"")


@pytest.fixture(scope="module")
def image(build_payload: Callable[..., CliResult],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("payload") / NAME
    directory.mkdir()
    (directory / "payload.yaml").write_text(PAYLOAD)
    (directory / "requirements.txt").write_text("")
    (directory / "start.sh").write_text(START_SH)
    result = build_payload(directory, TAG)
    assert result.json["kernel"] == KERNEL
    yield TAG
    docker("rmi", TAG, check=False)


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    fake = FakeHub(bridge_gateway(), uuid.uuid4().hex)
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def home_volume(image: str) -> Iterator[str]:
    name = f"nublado-starthook-home-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    docker("run", "--rm", "--user", "0:0", "-v", f"{name}:{HOME}",
           "--entrypoint", "chown", image, f"{UID}:{UID}", HOME)
    yield name
    docker("volume", "rm", "-f", name, check=False)


def start(image: str, volume: str, hub: FakeHub, how: str, mode: str,
          tmp: Path) -> Lab:
    """Start a lab the controller's way (``protocol``) or the hub's (``shim``)."""
    env = {"HOOK_MODE": mode}
    if how == "protocol":
        startup = write_startup(tmp / "startup", {**ENV_JSON, **env}, ARGS_JSON)
        # The image's own start script (no legacy compat links here).
        return start_lab(image, startup, volume, hub, command=(RUNLAB,))
    return start_lab(image, None, volume, hub, command=("jupyterhub-singleuser",),
                     extra_env=env)


def server_environ(lab: Lab) -> dict[str, str]:
    raw = lab.exec(f"cat /proc/{lab.server_pid()}/environ").split("\0")
    return dict(item.split("=", 1) for item in raw if "=" in item)


def hook_lines(lab: Lab) -> list[str]:
    return [line for line in lab.logs().splitlines() if "start hook" in line]


def test_image_has_the_hook_files(image: str) -> None:
    out = docker("run", "--rm", "--entrypoint", "bash", image, "-c",
                 "stat -c '%n %U %a' /opt/nublado/start/start "
                 "/opt/nublado/start/start.json; ls -A /opt/nublado/start").stdout
    assert out.splitlines() == ["/opt/nublado/start/start root 755",
                                "/opt/nublado/start/start.json root 644",
                                "start", "start.json"]


@pytest.mark.parametrize("how", ["protocol", "shim"])
def test_exports_reach_kernels_and_terminals_not_the_server(
        image: str, home_volume: str, hub: FakeHub, tmp_path: Path, how: str) -> None:
    lab = start(image, home_volume, hub, how, "ok", tmp_path)
    try:
        kernel = execute_in_lab(lab.base, lab.token, KERNEL, KERNEL_CODE)
        terminal = run_in_lab_terminal(lab.base, lab.token, TERMINAL_LINE)
        server = server_environ(lab)
        lines = hook_lines(lab)
        hook_dir = server.get("NUBLADO_START_HOOK_DIR", "")
        files = lab.exec(f"stat -c '%a %u' {hook_dir} {hook_dir}/env.json "
                         f"{hook_dir}/env.sh").splitlines() if hook_dir else []
    finally:
        docker("rm", "-f", lab.name, check=False)
    assert kernel["status"] == "ok", kernel
    assert kernel["stdout"].splitlines() == [repr(GREETING), "1", "None", "None"]
    assert terminal.split("|") == [GREETING, "1", "none"]
    # The server's own environment holds none of it, only where the file is.
    assert "HOOK_GREETING" not in server
    assert TOOLS not in server["PATH"].split(":")
    assert "PYTHONPATH" not in server and "NUBLADO_START_HOOK_FAILED" not in server
    tmp = "/scratch/hambone/tmp" if how == "protocol" else "/tmp"
    assert hook_dir.startswith(f"{tmp}/nublado-start-"), hook_dir
    assert files == [f"700 {UID}", f"600 {UID}", f"600 {UID}"]
    assert lines[:4] == [
        f"runlab: start hook: running {HOOK}, time limit 2 s",
        f"start hook: mode ok as {UID} in {HOME}",
        "runlab: start hook: not passed on: PYTHONPATH (changes how Python starts)",
        lines[3]]
    assert lines[3].startswith("runlab: start hook: done in ")
    assert lines[3].endswith(" s; kernels and terminals get: HOOK_GREETING, PATH")


@pytest.mark.parametrize(("how", "mode", "reason", "output"), [
    ("protocol", "fail", "exit status 3",
     f"start hook: mode fail as {UID} in {HOME} | cannot reach the data service"),
    ("shim", "fail", "exit status 3",
     f"start hook: mode fail as {UID} in {HOME} | cannot reach the data service"),
    ("protocol", "sleep", "timed out after 2 s",
     f"start hook: mode sleep as {UID} in {HOME}"),
    ("shim", "sleep", "timed out after 2 s",
     f"start hook: mode sleep as {UID} in {HOME}"),
])
def test_failing_hook_still_starts_the_lab(
        image: str, home_volume: str, hub: FakeHub, tmp_path: Path, how: str,
        mode: str, reason: str, output: str) -> None:
    lab = start(image, home_volume, hub, how, mode, tmp_path)
    try:
        kernel = execute_in_lab(lab.base, lab.token, KERNEL, KERNEL_CODE)
        terminal = run_in_lab_terminal(lab.base, lab.token, TERMINAL_LINE)
        server = server_environ(lab)
        lines = hook_lines(lab)
        sleeping = lab.exec("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline "
                            "2>/dev/null; echo; done | grep -c '^sleep 30' || true")
    finally:
        docker("rm", "-f", lab.name, check=False)
    assert kernel["status"] == "ok", kernel
    assert kernel["stdout"].splitlines() == ["None", "0", "None", reason]
    assert terminal.split("|") == ["unset", "0", reason]
    assert server["NUBLADO_START_HOOK_FAILED"] == reason
    assert "NUBLADO_START_HOOK_DIR" not in server and "HOOK_GREETING" not in server
    assert lines[-1] == (f"runlab: start hook: FAILED: {HOOK}: {reason}; the lab "
                         "starts without its exports; NUBLADO_START_HOOK_FAILED is "
                         f"set. Last output: {output}")
    # A hook over its time limit is killed with its whole process group.
    assert sleeping.strip() == "0"


@pytest.mark.parametrize(("name", "hook", "reported"), [
    ("starthook-forged", False, "/opt/nublado: added (dir)"),
    ("starthook-extra", True, "/opt/nublado/start/extra: added (file)"),
])
def test_guard_allows_only_the_generated_hook_files(
        base_image: str, tmp_path: Path, name: str, hook: bool,
        reported: str) -> None:
    """A payload step cannot plant a start hook, nor add to a real one."""
    target = "start" if not hook else "extra"
    payload = fragment_payload(
        tmp_path / name, name,
        "mkdir -p /opt/nublado/start && echo 'exec \"$@\"' > "
        f"/opt/nublado/start/{target}")
    if hook:
        (payload / "start.sh").write_text(START_SH)
        with (payload / "payload.yaml").open("a") as f:
            f.write("start: {script: start.sh}\n")
    tag = f"{name}:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "isolation guard" in result.stderr, result.stderr[-3000:]
    assert reported in result.stderr, result.stderr[-3000:]
    assert image_id(tag) is None
