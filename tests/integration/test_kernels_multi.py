"""Several kernels in one payload: payloads/r-lab (Python and R) end to end.

The example payload installs R's IRkernel from Debian packages (the ``apt``
kind) and a pip venv, and declares two kernels: Python (the default) and R
(``argv`` running /usr/bin/R through a wrapper, for its ``env``). The
image contract checks each kernel (listed by the lab's ``jupyter
kernelspec list``, executing code in its own environment, started by the
lab in both modes); here both kernels are also run directly.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nubladobuild.contract.plugin import LAB_PYTHON
from tests.conftest import TEST_TAG
from tests.integration.conftest import (
    BASE_PASSED,
    NO_WIDGETS,
    PAYLOADS,
    CliResult,
    assert_contract,
    docker,
)

pytestmark = pytest.mark.integration

R_LAB = PAYLOADS / "r-lab"
TAG = f"r-lab:{TEST_TAG}"
PROBE = Path(__file__).resolve().parents[2] / "nubladobuild" / "contract" / \
    "probe_kernel.py"


@pytest.fixture(scope="module")
def r_lab_image(build_payload: Callable[..., CliResult]) -> Iterator[str]:
    result = build_payload(R_LAB, TAG)
    assert result.json["ok"], result.stderr[-3000:]
    assert result.json["kernel"] == "py"
    print(f"r-lab built in {result.json['seconds']} s")
    yield TAG
    docker("image", "rm", "-f", TAG, check=False)


def _run_kernel(image: str, kernel: str, code: str) -> dict[str, Any]:
    """Start ``kernel`` with the lab's jupyter_client in a fresh container."""
    proc = subprocess.run(
        ["docker", "run", "--rm", "-i", "--entrypoint", LAB_PYTHON, image, "-",
         kernel, code], input=PROBE.read_text(), capture_output=True, text=True,
        timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_r_lab_labels_and_kernelspecs(r_lab_image: str) -> None:
    attrs = json.loads(docker("image", "inspect", r_lab_image).stdout)[0]
    labels = attrs["Config"]["Labels"]
    assert labels["io.nublado.payload.kernels"] == "py,ir"
    assert labels["io.nublado.payload.python"] == "/opt/r-lab/venv/bin/python"
    assert "NUBLADO_DEFAULT_KERNEL=py" in attrs["Config"]["Env"]
    spec = json.loads(docker(
        "run", "--rm", "--entrypoint", "cat", r_lab_image,
        "/usr/local/share/jupyter/kernels/ir/kernel.json").stdout)
    assert spec["argv"] == ["/usr/local/share/jupyterlab/kernels/ir/launch",
                            "--no-echo", "-e", "IRkernel::main()", "--args",
                            "{connection_file}"]
    assert spec["language"] == "R"
    assert spec["metadata"]["nublado"] == {"test": {"code": "cat(1 + 1)",
                                                    "stdout": "2"}}
    # Debian's own IRkernel spec (/usr/share/jupyter/kernels/ir) is not
    # unpacked: the guard passed, and the lab lists exactly the two kernels.
    listed = json.loads(docker(
        "run", "--rm", "--entrypoint",
        "/usr/local/share/jupyterlab/venv/bin/jupyter", r_lab_image,
        "kernelspec", "list", "--json").stdout)["kernelspecs"]
    assert {name: spec["resource_dir"] for name, spec in listed.items()} == {
        "py": "/usr/local/share/jupyter/kernels/py",
        "ir": "/usr/local/share/jupyter/kernels/ir"}


def test_both_kernels_execute_code(r_lab_image: str) -> None:
    r = _run_kernel(r_lab_image, "ir", "cat(1 + 1)")
    assert (r["status"], r["stdout"], r["errors"]) == ("ok", "2", [])
    py = _run_kernel(r_lab_image, "py", "import sys; print(sys.executable)")
    assert (py["status"], py["stdout"], py["errors"]) == (
        "ok", "/opt/r-lab/venv/bin/python\n", [])


def test_r_lab_meets_contract(r_lab_image: str, tmp_path: Path,
                              contract: Callable[..., dict[str, Any]]) -> None:
    summary = contract(r_lab_image, R_LAB, tmp_path)
    # One kernel more than the single-kernel count (4 checks), its wrapper
    # (the R kernel's; the Python kernel has none); the widget checks skip
    # (no ipywidgets); the payload's own 4 tests.
    assert_contract(summary, kernel="py", more_kernels=("ir",), wrappers=("ir",),
                    payload_tests=4, skipped=NO_WIDGETS)
    assert summary["passed"] == BASE_PASSED + (21 + 4 - 2) + 4
    lab_runs = sorted(t for t in summary["passed_tests"] if t.startswith(
        "payload/test_payload_lab.py::test_lab_starts_the_payload_kernel["))
    assert len(lab_runs) == 4, lab_runs
    for mode in ("default-user", "arbitrary-uid-read-only"):
        for kernel in ("py", "ir"):
            assert sum(1 for t in lab_runs if mode in t
                       and t.removesuffix("]").split("[", 1)[1]
                       .replace(mode, "").strip("-") == kernel) == 1, lab_runs
