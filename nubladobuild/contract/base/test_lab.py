"""Base contract, lab server: the lab starts and runs from its own venv.

Each test starts the image's own command in a fresh container, once as the
image's user and once as the controller does it (arbitrary UID, read-only
root); the server's log must hold no error line (see the ``lab`` fixture).
"""

from __future__ import annotations

import urllib.error

import pytest

from nubladobuild.contract.labclient import execute_in_lab, run_in_lab_terminal
from nubladobuild.contract.plugin import (
    ARBITRARY_UID,
    LAB_ROOT,
    NO_SUCH_KERNEL_LOG,
    ImageInfo,
    Lab,
    lab_get,
    server_process,
)


def test_lab_answers_api(lab: Lab, lab_token: str) -> None:
    """The image's own command starts a lab that answers /api."""
    status = lab_get(lab.base, "/api/status", lab_token)
    assert "started" in status


def test_lab_offers_no_lab_python_kernel(lab: Lab, lab_token: str,
                                         image_info: ImageInfo) -> None:
    """The lab offers the payload's kernels (none on the base), never its own."""
    specs = lab_get(lab.base, "/api/kernelspecs", lab_token)["kernelspecs"]
    assert set(image_info.kernels) <= set(specs), sorted(specs)
    if not image_info.is_payload_image:
        assert specs == {}, f"the base lab offers kernels: {sorted(specs)}"
    for name, spec in specs.items():
        argv0 = spec["spec"]["argv"][0]
        assert not argv0.startswith(f"{LAB_ROOT}/venv"), (name, argv0)


def test_lab_server_runs_from_lab_venv(lab: Lab) -> None:
    """The listening server is the lab venv's Python, user site off, sentinel set."""
    server = server_process(lab.box)
    argv, environ = server["argv"], server["environ"]
    assert argv[0].startswith(f"{LAB_ROOT}/venv/bin/python"), argv
    # Isolated mode: no user site, no PYTHON* variables, no script directory.
    assert argv[1] == "-I", argv
    assert environ.get("RUNNING_INSIDE_JUPYTERLAB") == "TRUE"
    init = lab.box.exec("sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline",
                        check=True).stdout
    assert init.startswith("/usr/bin/tini -s -- "), init
    uid = lab.box.exec("sh", "-c", f"stat -c %u /proc/{server['pid']}",
                       check=True).stdout.strip()
    assert uid != "0"
    if lab.mode == "arbitrary-uid-read-only":
        assert uid == ARBITRARY_UID


def test_lab_terminal_has_sentinel(lab: Lab, lab_token: str) -> None:
    """A terminal opened through the lab's API is a shell inside the lab."""
    line = run_in_lab_terminal(lab.base, lab_token,
                               "${RUNNING_INSIDE_JUPYTERLAB:-}:$(id -u)")
    sentinel, uid = line.split(":")
    assert sentinel == "TRUE"
    assert uid != "0"
    if lab.mode == "arbitrary-uid-read-only":
        assert uid == ARBITRARY_UID


@pytest.mark.allow_server_errors(
    *NO_SUCH_KERNEL_LOG, reason="on the base, python3 is no kernel: jupyter_server "
    "logs its refusal of an unknown kernel name as an error (payload images "
    "answer python3 with their default kernel and log nothing)")
def test_lab_never_starts_its_own_python(lab: Lab, lab_token: str,
                                        image_info: ImageInfo) -> None:
    """Asked for by the name ``python3``, no kernel runs the lab's own Python.

    A payload image answers with its default kernel; the base refuses.
    """
    try:
        result = execute_in_lab(lab.base, lab_token, "python3",
                                "import sys; print(sys.executable)")
    except urllib.error.HTTPError as exc:
        assert not image_info.is_payload_image, f"python3 refused: {exc}"
        # Refused: jupyter_server answers an unknown kernel name with 500.
        assert exc.code in (404, 500), exc
        return
    assert image_info.is_payload_image, f"the base started a python3 kernel: {result}"
    assert result["status"] == "ok", result
    assert result["stdout"].strip() == image_info.python, result
