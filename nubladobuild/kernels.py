"""Kernel specs and wrapper scripts for a payload's kernels.

Derived once, in the plan (:func:`nubladobuild.plan.build_plan`), from each
kernel's settings and the environment it runs; compat links and the
renderer use the result. A payload has one kernel (``kernel:``) or several
(``kernels:``); the first is its default.

A Python kernel (no ``argv``) runs ``ipykernel_launcher`` with its
environment's interpreter. A kernel with ``argv`` (R's IRkernel, ...) runs
that program; it gets the payload's default environment on PATH, as a
terminal does, and, with setup or env lines, the same wrapper mechanism:
the kernelspec's ``argv`` starts with the wrapper instead of the program,
and the wrapper ends with ``exec PROGRAM "$@"`` (jupyter_client has filled
in ``{connection_file}`` and the other placeholders by then).

``metadata.nublado`` in each kernel.json tells the image contract how to
check that the kernel executes code in its own environment: ``python`` (the
interpreter ``sys.executable`` must be) and, when the kernel has one,
``test`` (code to run and the stdout it must print; see
:func:`kernel_test`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nubladobuild.kinds import Environment
from nubladobuild.templating import render_template

if TYPE_CHECKING:
    from nubladobuild.schema import Kernel

#: Where kernelspecs go: on jupyter_core's system path, seen by the lab.
KERNELSPEC_ROOT = "/usr/local/share/jupyter/kernels"
#: Where generated kernel wrappers go.
WRAPPER_ROOT = "/usr/local/share/jupyterlab/kernels"
#: The build-context directory of the default kernel's files (other kernels'
#: are under ``kernels/<name>``).
DEFAULT_CONTEXT_DIR = "kernel"
#: What the contract runs in an ``argv`` kernel of these languages (lower
#: case) when the kernel gives no ``test:``: code, and the stdout it prints.
BUILTIN_TESTS: dict[str, tuple[str, str]] = {
    "python": ("print(1 + 1)", "2"),
    "r": ("cat(1 + 1)", "2"),
    "julia": ("print(1 + 1)", "2"),
    "bash": ("echo $((1 + 1))", "2"),
}


@dataclass(frozen=True)
class KernelFiles:
    """The generated files for one kernel and where they go in the image.

    ``context_dir`` is where its files are in the build context
    (``kernel.json``, and ``launch`` when there is a wrapper).
    """

    name: str
    spec_dir: str
    kernel_json: str
    wrapper_path: str | None
    wrapper: str | None
    context_dir: str = DEFAULT_CONTEXT_DIR

    @property
    def spec_path(self) -> str:
        """Return the kernel.json path in the image."""
        return f"{self.spec_dir}/kernel.json"


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


def kernel_test(kernel: Kernel) -> tuple[str, str] | None:
    """Return the code the contract runs in a kernel and the stdout it expects.

    The kernel's own ``test:``, else for an ``argv`` kernel the built-in
    snippet of its language (:data:`BUILTIN_TESTS`); None for a Python
    kernel without ``test:`` (the contract checks its ``sys.executable``).
    """
    if kernel.test is not None:
        return kernel.test.code, kernel.test.stdout
    if kernel.argv is None:
        return None
    return BUILTIN_TESTS.get(kernel.language_name.lower())


def wrapper_script(kernel: Kernel, env: Environment) -> str:
    """Return the wrapper script: env, activation, setup lines, then ``exec``.

    Parameters
    ----------
    kernel
        The kernel settings (env values are shell-quoted; setup lines are
        the payload's own shell code, written verbatim one per line).
    env
        The environment the kernel runs: its interpreter runs
        ``ipykernel_launcher``; an ``argv`` kernel execs its program with
        the wrapper's arguments instead.
    """
    return render_template(
        "kernel-launch.sh.j2",
        kernel_name=kernel.name,
        env=sorted(kernel.env.items()),
        conda_prefix=env.prefix if env.flavour == "conda" else None,
        setup=kernel.setup,
        python=env.python,
        program=kernel.argv[0] if kernel.argv else None,
    )


def kernel_spec(kernel: Kernel, env: Environment, wrapper_path: str | None) -> str:
    """Return kernel.json text: argv through the wrapper, or the program directly."""
    if kernel.argv is not None:
        argv = [wrapper_path or kernel.argv[0], *kernel.argv[1:]]
    elif wrapper_path is not None:
        argv = [wrapper_path, "{connection_file}"]
    else:
        argv = [env.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    nublado: dict[str, object] = {}
    if kernel.argv is None:
        nublado["python"] = env.python
    test = kernel_test(kernel)
    if test is not None:
        nublado["test"] = {"code": test[0], "stdout": test[1]}
    spec = {
        "argv": argv,
        "display_name": kernel.display_name,
        "env": kernel_env(env),
        "language": kernel.language_name,
        "interrupt_mode": "signal",
        "metadata": {"debugger": kernel.argv is None, "nublado": nublado},
    }
    return json.dumps(spec, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def kernel_files(kernel: Kernel, env: Environment,
                 context_dir: str = DEFAULT_CONTEXT_DIR) -> KernelFiles:
    """Return every generated file for a kernel.

    Parameters
    ----------
    kernel
        The kernel's settings.
    env
        The environment the kernel runs (see ``Payload.kernel_environment``).
    context_dir
        Where its files go in the build context.

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
        context_dir=context_dir,
    )


def payload_kernel_files(kernels: tuple[Kernel, ...] | list[Kernel],
                         envs: list[Environment]) -> tuple[KernelFiles, ...]:
    """Return the files of every kernel of a payload, the default first.

    Parameters
    ----------
    kernels
        The payload's kernels, in order (the first is the default).
    envs
        The environment each kernel runs, in the same order.

    Returns
    -------
    tuple of KernelFiles
        The default kernel's files in ``kernel/`` of the build context,
        every other kernel's in ``kernels/<name>/``.
    """
    return tuple(kernel_files(kernel, env, DEFAULT_CONTEXT_DIR if index == 0
                              else f"kernels/{kernel.name}")
                 for index, (kernel, env) in enumerate(zip(kernels, envs,
                                                           strict=True)))
