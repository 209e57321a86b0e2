"""The image contract: what every nublado-build payload image guarantees.

Each test names the promise it checks. They run against real containers of
the image under test (see plugin.py for the fixtures).
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nubladobuild.contract.labclient import run_in_lab_terminal
from nubladobuild.contract.plugin import (
    ARBITRARY_UID,
    LAB_PYTHON,
    LAB_ROOT,
    Container,
    ImageInfo,
    lab_get,
    run_kernel,
    wait_for_api,
)

SENTINEL = {"RUNNING_INSIDE_JUPYTERLAB": "TRUE"}


def test_image_is_a_payload_image(image_info: ImageInfo) -> None:
    assert image_info.payload, "image lacks the io.nublado.payload.name label"
    assert image_info.kernels, "image lacks the io.nublado.payload.kernels label"
    assert image_info.python.startswith("/")


def test_runs_as_non_root_by_default(image_info: ImageInfo, host: Any) -> None:
    assert image_info.user not in ("", "0", "root", "0:0")
    assert host.user().uid != 0


def test_lab_venv_and_runlab_present(host: Any) -> None:
    python = host.file(LAB_PYTHON)
    assert python.exists
    runlab = host.file(f"{LAB_ROOT}/runlab")
    assert runlab.is_file and runlab.mode & 0o111
    assert runlab.user == "root"
    assert host.file("/usr/local/etc/jupyter/jupyter_server_config.py").is_file
    assert host.run(f"{LAB_PYTHON} -c 'import jupyterlab, jupyter_server'").rc == 0


def test_lab_tree_not_writable_by_lab_user(host: Any) -> None:
    for path in (f"{LAB_ROOT}/venv", f"{LAB_ROOT}/venv/lib", f"{LAB_ROOT}/runlab"):
        assert host.file(path).user == "root"
        assert host.run(f"test -w {path}").rc != 0, f"{path} is writable"


def test_lab_environment_unchanged_by_payload(host: Any) -> None:
    """The isolation guard's record still matches the lab tree."""
    result = host.run(f"bash -c 'diff {LAB_ROOT}/base-checksums.txt "
                      f"<({LAB_ROOT}/build/isolation-manifest)'")
    assert result.rc == 0, result.stdout[-2000:]


def test_versions_installed_manifests(host: Any, image_info: ImageInfo) -> None:
    manifests = f"{LAB_ROOT}/versions-installed"
    lab = host.file(f"{manifests}/jupyterlab.txt")
    assert lab.is_file and "jupyterlab==" in lab.content_string
    payload = host.file(f"{manifests}/payload-{image_info.payload}.txt")
    assert payload.is_file and payload.content_string.strip()


def _kernelspecs(host: Any) -> dict[str, Any]:
    out = host.check_output(f"{LAB_ROOT}/venv/bin/jupyter kernelspec list --json")
    specs: dict[str, Any] = json.loads(out)["kernelspecs"]
    return specs


def test_kernelspecs_valid_and_executable(host: Any, image_info: ImageInfo) -> None:
    specs = _kernelspecs(host)
    for name in image_info.kernels:
        assert name in specs, f"kernel {name} not visible to the lab: {sorted(specs)}"
    for name, info in specs.items():
        spec_file = host.file(posixpath.join(info["resource_dir"], "kernel.json"))
        spec = json.loads(spec_file.content_string)
        argv0 = spec["argv"][0]
        assert "{connection_file}" in spec["argv"], name
        assert host.file(argv0).exists, f"{name}: {argv0} does not exist"
        assert host.run(f"test -x {argv0}").rc == 0, f"{name}: {argv0} not executable"


def test_no_lab_python_kernel_visible(host: Any) -> None:
    specs = _kernelspecs(host)
    for name, info in specs.items():
        assert not info["resource_dir"].startswith(f"{LAB_ROOT}/venv"), name
        argv0 = info["spec"]["argv"][0]
        assert not argv0.startswith(f"{LAB_ROOT}/venv"), name
    assert "python3" not in specs or not specs["python3"]["resource_dir"].startswith(
        LAB_ROOT)


def test_kernel_wrappers_exec_the_kernel(host: Any) -> None:
    for info in _kernelspecs(host).values():
        argv0 = info["spec"]["argv"][0]
        if argv0.endswith("/launch") or argv0.endswith(".bash"):
            text = host.file(argv0).content_string
            last = [ln for ln in text.splitlines() if ln.strip()][-1]
            assert last.startswith("exec "), f"{argv0} does not end with exec"


def test_default_kernel_runs_payload_python(container: Container,
                                            image_info: ImageInfo) -> None:
    result = run_kernel(container, image_info.kernel,
                        "import sys; print(sys.executable)")
    assert result["status"] == "ok", result
    assert result["stdout"].strip() == image_info.python


def test_kernel_as_arbitrary_uid_read_only(ro_container: Container,
                                          image_info: ImageInfo) -> None:
    result = run_kernel(ro_container, image_info.kernel,
                        "import os, sys; print(os.getuid(), sys.executable)")
    assert result["status"] == "ok", result
    assert result["stdout"].split() == [ARBITRARY_UID, image_info.python]


def _login_shell(box: Container, env: dict[str, str] | None) -> dict[str, str]:
    script = ('printf "%s\\n%s\\n" "${NUBLADO_PAYLOAD:-}" '
              '"$(command -v python3 || true)"')
    proc = box.exec("bash", "-lc", script, env=env, check=True)
    payload, python = (proc.stdout.splitlines() + ["", ""])[:2]
    return {"payload": payload, "python": python}


def test_terminal_sentinel_runs_payload_setup(container: Container,
                                              image_info: ImageInfo) -> None:
    inside = _login_shell(container, SENTINEL)
    assert inside["payload"] == image_info.payload


def test_terminal_without_sentinel_stays_plain(container: Container) -> None:
    outside = _login_shell(container, None)
    assert outside["payload"] == ""
    assert not outside["python"].startswith(("/opt/", "/usr/local/share/jupyterlab"))


def test_interactive_shell_hook(container: Container, image_info: ImageInfo) -> None:
    """Non-login interactive shells (bash -i) get the setup through bash.bashrc."""
    proc = container.exec("bash", "-ic", 'echo "${NUBLADO_PAYLOAD:-}"', env=SENTINEL)
    assert proc.stdout.strip().splitlines()[-1:] == [image_info.payload]


def test_terminal_payload_python_first(container: Container,
                                       image_info: ImageInfo) -> None:
    """With the default shell setup the payload's python3 comes first."""
    shell_file = container.host.file(
        f"{LAB_ROOT}/shell.d/50-{image_info.payload}.sh").content_string
    if "export PATH=" not in shell_file:
        pytest.skip("payload has its own shell setup")
    inside = _login_shell(container, SENTINEL)
    assert inside["python"] == posixpath.join(posixpath.dirname(image_info.python),
                                              "python3")


@pytest.fixture(scope="module", params=["default-user", "arbitrary-uid-read-only"])
def lab(request: pytest.FixtureRequest, image_info: ImageInfo,
        lab_token: str) -> Iterator[tuple[Container, str]]:
    """Start the lab with the image's default command; yield it and its URL."""
    read_only = request.param != "default-user"
    box = Container(image_info.image, publish=True, read_only=read_only,
                    user=f"{ARBITRARY_UID}:{ARBITRARY_UID}" if read_only else None,
                    env={"JUPYTER_TOKEN": lab_token}, command=[])
    try:
        start = time.monotonic()
        base, _ = wait_for_api(box)
        os.environ.setdefault("NUBLADO_LAB_READY_SECONDS",
                              f"{time.monotonic() - start:.2f}")
        yield box, base
    finally:
        box.close()


def test_lab_answers_api(lab: tuple[Container, str], lab_token: str) -> None:
    _, base = lab
    status = lab_get(base, "/api/status", lab_token)
    assert "started" in status


def test_lab_offers_payload_kernels_only(lab: tuple[Container, str],
                                         lab_token: str, image_info: ImageInfo) -> None:
    _, base = lab
    specs = lab_get(base, "/api/kernelspecs", lab_token)
    names = set(specs["kernelspecs"])
    assert set(image_info.kernels) <= names
    assert "python3" not in names or "python3" in image_info.kernels
    assert specs["default"] in image_info.kernels


def test_lab_server_runs_from_lab_venv(lab: tuple[Container, str]) -> None:
    """Tini is PID 1; its child, the server, is the lab venv's Python (-I)."""
    box, _ = lab
    proc = box.exec("bash", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; "
                    "tr '\\0' ' ' < /proc/$(cut -d' ' -f1 /proc/1/task/1/children)"
                    "/cmdline", check=True)
    init, server = proc.stdout.splitlines()
    assert init.startswith("/usr/bin/tini -s -- "), proc.stdout
    assert server.startswith(f"{LAB_ROOT}/venv/bin/python3 -I -m "), proc.stdout


def test_lab_terminal_gets_payload_setup(lab: tuple[Container, str], lab_token: str,
                                         image_info: ImageInfo) -> None:
    """A terminal opened in the lab runs the payload's shell setup (sentinel)."""
    _, base = lab
    line = run_in_lab_terminal(
        base, lab_token, "${RUNNING_INSIDE_JUPYTERLAB:-}:${NUBLADO_PAYLOAD:-}:$(id -u)")
    sentinel, payload, _uid = line.split(":")
    assert sentinel == "TRUE"
    assert payload == image_info.payload

