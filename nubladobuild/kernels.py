"""Kernel specs and wrapper scripts for a payload's kernel.

Derived once, in the plan (:func:`nubladobuild.plan.build_plan`), from the
payload's kernel settings and the environment it runs; compat links and
the renderer use the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nubladobuild.kinds import Environment
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


def kernel_env(env: Environment) -> dict[str, str]:
    """Return the kernelspec ``env``: the payload's bin first on PATH.

    ``~/.local/bin`` follows, so that ``!pip install --user x`` then ``!x``
    works; jupyter_client substitutes ``${...}`` from the server's
    environment when it starts the kernel.
    """
    return {"PATH": f"{env.bin}:${{HOME}}/.local/bin:${{PATH}}",
            **dict(env.activation)}


def needs_wrapper(kernel: Kernel, env: Environment) -> bool:
    """Return whether the kernel runs through a generated wrapper script.

    With setup lines or env values, and for conda environments (whose
    activation scripts must run, as ``conda activate`` would run them).
    """
    return kernel.needs_wrapper or env.flavour == "conda"


def wrapper_script(kernel: Kernel, env: Environment) -> str:
    """Return the wrapper script: env, activation, setup lines, then ``exec``.

    Parameters
    ----------
    kernel
        The kernel settings (env values are shell-quoted; setup lines are
        the payload's own shell code, written verbatim one per line).
    env
        The payload environment whose interpreter runs ``ipykernel_launcher``.
    """
    return render_template(
        "kernel-launch.sh.j2",
        kernel_name=kernel.name,
        env=sorted(kernel.env.items()),
        conda_prefix=env.prefix if env.flavour == "conda" else None,
        setup=kernel.setup,
        python=env.python,
    )


def kernel_spec(kernel: Kernel, env: Environment, wrapper_path: str | None) -> str:
    """Return kernel.json text: argv through the wrapper, or the python directly."""
    if wrapper_path is not None:
        argv = [wrapper_path, "{connection_file}"]
    else:
        argv = [env.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {
        "argv": argv,
        "display_name": kernel.display_name,
        "env": kernel_env(env),
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": True, "nublado": {"python": env.python}},
    }
    return json.dumps(spec, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def kernel_files(kernel: Kernel, env: Environment) -> KernelFiles:
    """Return every generated file for a kernel.

    Parameters
    ----------
    kernel
        The payload's kernel settings.
    env
        The environment the kernel runs (see ``Payload.environment``).

    Returns
    -------
    KernelFiles
        The kernelspec, the wrapper (when needed) and their image paths.
    """
    wrapper_path = f"{WRAPPER_ROOT}/{kernel.name}/launch" \
        if needs_wrapper(kernel, env) else None
    return KernelFiles(
        name=kernel.name,
        spec_dir=f"{KERNELSPEC_ROOT}/{kernel.name}",
        kernel_json=kernel_spec(kernel, env, wrapper_path),
        wrapper_path=wrapper_path,
        wrapper=wrapper_script(kernel, env) if wrapper_path else None,
    )
