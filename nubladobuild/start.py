"""The start hook (``start:`` in payload.yaml): its files in the image.

Planned once, here; run at lab start by the base's start-up
(``nublado_lab.starthook``, before the server). The image gets two files,
root-owned, in a directory nublado-build reserves (the isolation guard
allows these two and nothing else there):

- :data:`SCRIPT_PATH`, the payload's script, mode 0755;
- :data:`CONFIG_PATH`, JSON: the argv that runs it, its time limit, where
  it came from, and the payload environment's activation (its ``bin``
  first on PATH, ``VIRTUAL_ENV`` or ``CONDA_PREFIX``), so the hook runs in
  the environment kernels and terminals run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nubladobuild.kinds import Environment
from nubladobuild.schema import Payload

__all__ = ["CONFIG_PATH", "SCRIPT_PATH", "START_DIR", "StartPlan", "start_plan"]

#: The directory of the start hook's files in the image.
START_DIR = "/opt/nublado/start"
#: The payload's script, as the hook runs it.
SCRIPT_PATH = f"{START_DIR}/start"
#: The hook's settings, read by the start-up.
CONFIG_PATH = f"{START_DIR}/start.json"
#: Scripts without a ``#!`` line run with this shell (as ``execvp`` would).
FALLBACK_SHELL = "/bin/sh"


@dataclass(frozen=True)
class StartPlan:
    """The start hook's generated files (context name -> bytes, mode)."""

    script: bytes
    config: str

    @property
    def files(self) -> dict[str, tuple[bytes, int]]:
        """Return the build-context files: ``start/start``, ``start/start.json``."""
        return {"start/start": (self.script, 0o755),
                "start/start.json": (self.config.encode(), 0o644)}

    @property
    def paths(self) -> tuple[str, str]:
        """Return the image paths the payload stage writes."""
        return (SCRIPT_PATH, CONFIG_PATH)


def start_plan(payload: Payload, script: bytes | None,
               env: Environment) -> StartPlan | None:
    """Return the start hook's files, or None when the payload has no hook.

    Parameters
    ----------
    payload
        The payload (``payload.start``).
    script
        The script's bytes, as the loader read them.
    env
        The payload environment the hook runs in (activated for it).
    """
    if payload.start is None or script is None:
        return None
    argv = [SCRIPT_PATH] if script.startswith(b"#!") else [FALLBACK_SHELL,
                                                           SCRIPT_PATH]
    config = {
        "argv": argv,
        "timeout": payload.start.timeout,
        "payload": payload.name,
        "script": payload.start.script,
        "path_first": [env.bin],
        "env": dict(env.activation),
    }
    return StartPlan(script=script,
                     config=json.dumps(config, indent=1, sort_keys=True) + "\n")
