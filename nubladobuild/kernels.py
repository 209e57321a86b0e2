"""Kernel specs and wrapper scripts for a payload's kernel."""

from __future__ import annotations

import json
from dataclasses import dataclass

from nubladobuild.schema import Kernel
from nubladobuild.templating import render_template

#: Where kernelspecs go: on jupyter_core's system path, seen by the lab.
KERNELSPEC_ROOT = "/usr/local/share/jupyter/kernels"
#: Where generated kernel wrappers go.
WRAPPER_ROOT = "/usr/local/share/jupyterlab/kernels"


@dataclass(frozen=True)
class KernelFiles:
    """The generated files for one kernel and where they go in the image."""

    name: str
    spec_dir: str
    kernel_json: str
    wrapper_path: str | None
    wrapper: str | None


def wrapper_script(kernel: Kernel, python: str) -> str:
    """Return the wrapper script: env, setup lines, then ``exec`` the kernel.

    Parameters
    ----------
    kernel
        The kernel settings (env values are shell-quoted; setup lines are
        the payload's own shell code, written verbatim one per line).
    python
        The payload interpreter that runs ``ipykernel_launcher``.
    """
    return render_template(
        "kernel-launch.sh.j2",
        kernel_name=kernel.name,
        env=sorted(kernel.env.items()),
        setup=kernel.setup,
        python=python,
    )


def kernel_spec(kernel: Kernel, python: str, wrapper_path: str | None) -> str:
    """Return kernel.json text: argv through the wrapper, or the python directly."""
    if wrapper_path is not None:
        argv = [wrapper_path, "{connection_file}"]
    else:
        argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {
        "argv": argv,
        "display_name": kernel.display_name,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": True, "nublado": {"python": python}},
    }
    return json.dumps(spec, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def kernel_files(kernel: Kernel, python: str) -> KernelFiles:
    """Return every generated file for a kernel."""
    wrapper_path = f"{WRAPPER_ROOT}/{kernel.name}/launch" if kernel.needs_wrapper \
        else None
    return KernelFiles(
        name=kernel.name,
        spec_dir=f"{KERNELSPEC_ROOT}/{kernel.name}",
        kernel_json=kernel_spec(kernel, python, wrapper_path),
        wrapper_path=wrapper_path,
        wrapper=wrapper_script(kernel, python) if wrapper_path else None,
    )
