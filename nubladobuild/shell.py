"""The terminal setup a payload gets inside the lab (the sentinel hook)."""

from __future__ import annotations

from nubladobuild.kinds import Environment
from nubladobuild.schema import Payload
from nubladobuild.templating import render_template

#: Directory of per-payload setup files sourced by the profile.d hook.
SHELL_DIR = "/usr/local/share/jupyterlab/shell.d"


def shell_setup(payload: Payload, env: Environment) -> str:
    """Return the shell setup file for terminals inside the lab.

    With ``shell.setup`` lines, they are written verbatim; without, the
    payload environment is activated: its ``bin`` first on PATH and its
    activation variables (``VIRTUAL_ENV``, ``CONDA_PREFIX``).
    """
    if payload.shell.setup is not None:
        return render_template("shell-setup.sh.j2", payload_name=payload.name,
                               env=[], path_first=None, setup=payload.shell.setup)
    return render_template(
        "shell-setup.sh.j2",
        payload_name=payload.name,
        env=env.activation,
        path_first=env.bin,
        setup=[],
    )


def shell_path(payload: Payload) -> str:
    """Return where the payload's shell setup file goes in the image."""
    return f"{SHELL_DIR}/50-{payload.name}.sh"
