"""What the payload suite checks in each kernel, read from its kernelspec.

nublado-build writes ``metadata.nublado`` into every kernel.json it
generates: ``python`` for a Python kernel (the interpreter
``sys.executable`` must be) and ``test`` (``code`` and the ``stdout`` it
prints) for a kernel with ``argv`` or with a ``test:`` in payload.yaml.
The checks are the same whether the kernel is started by jupyter_client in
a container or by the lab server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Python code printing the interpreter a Python kernel runs.
PYTHON_PROBE = "import sys; print(sys.executable)"


@dataclass(frozen=True)
class KernelCheck:
    """One piece of code to run in a kernel and the stdout it must print."""

    what: str
    code: str
    stdout: str


def kernel_checks(name: str, spec: dict[str, Any]) -> list[KernelCheck]:
    """Return the checks for a kernel from its kernel.json.

    Parameters
    ----------
    name
        The kernel's name, for messages.
    spec
        The parsed kernel.json.

    Returns
    -------
    list of KernelCheck
        Its interpreter (Python kernels), then its own test; never empty.

    Raises
    ------
    AssertionError
        When the spec names neither (not a kernel nublado-build wrote).
    """
    metadata = spec.get("metadata")
    nublado: dict[str, Any] = {}
    if isinstance(metadata, dict) and isinstance(metadata.get("nublado"), dict):
        nublado = metadata["nublado"]
    checks = []
    python = nublado.get("python")
    if isinstance(python, str):
        checks.append(KernelCheck("sys.executable", PYTHON_PROBE, python))
    test = nublado.get("test")
    if isinstance(test, dict) and isinstance(test.get("code"), str) \
            and isinstance(test.get("stdout"), str):
        checks.append(KernelCheck("test", test["code"], test["stdout"]))
    assert checks, (f"kernel {name}: kernel.json has neither metadata.nublado."
                    "python nor metadata.nublado.test; nothing says what it must "
                    "run (rebuild the payload with this nublado-build)")
    return checks
