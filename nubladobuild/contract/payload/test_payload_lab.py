"""Payload contract, lab server: the lab offers and starts the payload kernel.

Each test starts the image's own command in a fresh container, in both lab
modes (see the ``lab`` fixture); the server's log must hold no error line.
"""

from __future__ import annotations

from nubladobuild.contract.labclient import execute_in_lab, run_in_lab_terminal
from nubladobuild.contract.payload.kernelchecks import PYTHON_PROBE, kernel_checks
from nubladobuild.contract.plugin import ARBITRARY_UID, ImageInfo, Lab, lab_get


def test_lab_offers_payload_kernels(lab: Lab, lab_token: str,
                                    image_info: ImageInfo) -> None:
    """The lab offers the payload's kernels, the first as default."""
    specs = lab_get(lab.base, "/api/kernelspecs", lab_token)
    names = set(specs["kernelspecs"])
    assert image_info.kernels and set(image_info.kernels) <= names, sorted(names)
    assert specs["default"] == image_info.kernel


def test_lab_starts_the_payload_kernel(lab: Lab, lab_token: str,
                                       image_info: ImageInfo,
                                       kernel_name: str) -> None:
    """The lab itself starts each kernel (its wrapper, its environment).

    A Python kernel runs its interpreter, as a non-root user (the arbitrary
    UID in that mode), with the lab's sentinel; a kernel with its own
    ``argv`` runs its test code and prints what it must.
    """
    assert kernel_name, "the image names no kernel (io.nublado.payload.kernels)"
    spec = lab_get(lab.base, f"/api/kernelspecs/{kernel_name}", lab_token)["spec"]
    for check in kernel_checks(kernel_name, spec):
        if check.code != PYTHON_PROBE:
            result = execute_in_lab(lab.base, lab_token, kernel_name, check.code)
            assert result["status"] == "ok", (kernel_name, check.what, result)
            assert result["stdout"].strip() == check.stdout, (kernel_name, result)
            continue
        result = execute_in_lab(lab.base, lab_token, kernel_name,
                                "import os, sys; print(os.getuid(), sys.executable, "
                                "os.environ.get('RUNNING_INSIDE_JUPYTERLAB'))")
        assert result["status"] == "ok", result
        uid, python, sentinel = result["stdout"].split()
        assert (python, sentinel) == (check.stdout, "TRUE")
        if kernel_name == image_info.kernel:
            assert python == image_info.python
        assert uid != "0"
        if lab.mode == "arbitrary-uid-read-only":
            assert uid == ARBITRARY_UID


def test_lab_terminal_gets_payload_setup(lab: Lab, lab_token: str,
                                         image_info: ImageInfo) -> None:
    """A terminal opened in the lab runs the payload's shell setup (sentinel)."""
    line = run_in_lab_terminal(
        lab.base, lab_token, "${RUNNING_INSIDE_JUPYTERLAB:-}:${NUBLADO_PAYLOAD:-}")
    sentinel, payload = line.split(":")
    assert sentinel == "TRUE"
    assert payload == image_info.payload
