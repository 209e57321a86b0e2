"""The terminal setup a payload gets inside the lab (the sentinel hook)."""

from __future__ import annotations

import posixpath

from nubladobuild.schema import CondaStep, Payload, PipStep, conda_prefix
from nubladobuild.templating import render_template

#: Directory of per-payload setup files sourced by the profile.d hook.
SHELL_DIR = "/usr/local/share/jupyterlab/shell.d"


def default_env(payload: Payload) -> list[tuple[str, str]]:
    """Return the activation-equivalent variables for the payload interpreter.

    A venv gets ``VIRTUAL_ENV``, a conda prefix ``CONDA_PREFIX``; the
    interpreter's ``bin`` goes first on PATH (see :func:`shell_setup`).
    """
    python = payload.kernel_python
    env: list[tuple[str, str]] = []
    for step in payload.install:
        spec = step.spec
        if isinstance(spec, PipStep) and python == f"{spec.prefix}/bin/python":
            env.append(("VIRTUAL_ENV", spec.prefix))
        if isinstance(spec, CondaStep):
            prefix = conda_prefix(spec, payload.name)
            if python == f"{prefix}/bin/python":
                env += [("CONDA_PREFIX", prefix),
                        ("CONDA_DEFAULT_ENV", posixpath.basename(prefix))]
    return env


def shell_setup(payload: Payload) -> str:
    """Return the shell setup file for terminals inside the lab.

    With ``shell.setup`` lines, they are written verbatim; without, the
    payload interpreter's environment is activated (see :func:`default_env`).
    """
    if payload.shell.setup is not None:
        return render_template("shell-setup.sh.j2", payload_name=payload.name,
                               env=[], path_first=None, setup=payload.shell.setup)
    return render_template(
        "shell-setup.sh.j2",
        payload_name=payload.name,
        env=default_env(payload),
        path_first=posixpath.dirname(payload.kernel_python),
        setup=[],
    )


def shell_path(payload: Payload) -> str:
    """Return where the payload's shell setup file goes in the image."""
    return f"{SHELL_DIR}/50-{payload.name}.sh"
