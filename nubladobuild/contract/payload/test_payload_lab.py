"""Payload contract, lab server: the lab offers and starts the payload kernel.

Each test starts the image's own command in a fresh container, in both lab
modes (see the ``lab`` fixture); the server's log must hold no error line.
"""

from __future__ import annotations

from nubladobuild.contract.labclient import execute_in_lab, run_in_lab_terminal
from nubladobuild.contract.plugin import ARBITRARY_UID, ImageInfo, Lab, lab_get


def test_lab_offers_payload_kernels(lab: Lab, lab_token: str,
                                    image_info: ImageInfo) -> None:
    """The lab offers the payload's kernels, the first as default."""
    specs = lab_get(lab.base, "/api/kernelspecs", lab_token)
    names = set(specs["kernelspecs"])
    assert image_info.kernels and set(image_info.kernels) <= names, sorted(names)
    assert specs["default"] == image_info.kernel


def test_lab_starts_the_payload_kernel(lab: Lab, lab_token: str,
                                       image_info: ImageInfo) -> None:
    """The lab itself starts the default kernel (its wrapper, its Python)."""
    result = execute_in_lab(lab.base, lab_token, image_info.kernel,
                            "import os, sys; print(os.getuid(), sys.executable, "
                            "os.environ.get('RUNNING_INSIDE_JUPYTERLAB'))")
    assert result["status"] == "ok", result
    uid, python, sentinel = result["stdout"].split()
    assert (python, sentinel) == (image_info.python, "TRUE")
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
