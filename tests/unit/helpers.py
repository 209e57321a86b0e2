"""Helpers for unit tests: plan and render payloads without an engine.

The resolve stage asks the engine about the base image; unit tests use a
fixed resolution instead (:data:`RESOLVED`), the shape of the real base.
"""

from __future__ import annotations

from pathlib import Path

from nubladobuild.loader import load_payload
from nubladobuild.plan import DEFAULT_BASE_IMAGE, Plan, build_plan
from nubladobuild.render import context_files, render, render_dockerfile
from nubladobuild.resolve import Resolved

#: What resolve finds for the real base image (no conda steps fetched).
RESOLVED = Resolved(base_id="sha256:" + "0" * 64, lab_user="1000:100",
                    entrypoint=("tini", "--"),
                    cmd=("/usr/local/share/jupyterlab/runlab",), workdir="/tmp",
                    fetched=False)


def plan_of(directory: Path, base: str = DEFAULT_BASE_IMAGE) -> Plan:
    """Load and plan a payload directory."""
    return build_plan(load_payload(directory), base)


def files_of(plan: Plan) -> dict[str, tuple[bytes, int]]:
    """Return the context files of a plan, resolved as :data:`RESOLVED`."""
    return context_files(plan, RESOLVED)


def dockerfile_of(plan: Plan) -> str:
    """Return the Dockerfile of a plan, resolved as :data:`RESOLVED`."""
    return render_dockerfile(plan, RESOLVED)


def render_to(plan: Plan, out: Path) -> Path:
    """Render a plan into ``out``, resolved as :data:`RESOLVED`."""
    return render(plan, RESOLVED, out)
