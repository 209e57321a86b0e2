"""Turn a validated payload into a build plan.

Every file and value the Dockerfile needs, decided before anything is
written or built; step planning is in :mod:`nubladobuild.steps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nubladobuild import __version__
from nubladobuild.compat import LABEL as COMPAT_LABEL
from nubladobuild.compat import CompatPlan, compat_plan
from nubladobuild.kernels import KernelFiles, kernel_files
from nubladobuild.loader import LoadedPayload
from nubladobuild.shell import shell_path, shell_setup
from nubladobuild.steps import StepPlan as StepPlan
from nubladobuild.steps import kernel_with_activation, plan_step

#: The base image a payload builds on unless told otherwise.
DEFAULT_BASE_IMAGE = "nublado-jupyterlab-base:latest"
#: The user the payload image runs as unless the base says otherwise.
DEFAULT_LAB_USER = "1000:100"


@dataclass(frozen=True)
class Plan:
    """Everything the renderer needs; no I/O happens after this."""

    loaded: LoadedPayload
    base_image: str
    lab_user: str
    steps: tuple[StepPlan, ...]
    kernel: KernelFiles
    shell_setup: str
    shell_path: str
    python: str
    labels: tuple[tuple[str, str], ...]
    version: str = __version__
    compat: CompatPlan = field(default_factory=CompatPlan)


def build_plan(loaded: LoadedPayload, base_image: str = DEFAULT_BASE_IMAGE,
               lab_user: str = DEFAULT_LAB_USER) -> Plan:
    """Plan a payload build.

    Parameters
    ----------
    loaded
        The validated payload (see :func:`nubladobuild.loader.load_payload`).
    base_image
        The JupyterLab base image to build on.
    lab_user
        The ``uid:gid`` the final image runs as (the base image's user).

    Returns
    -------
    Plan
        The complete, deterministic description of the build context.

    """
    payload = loaded.model
    python = payload.kernel_python
    steps = tuple(plan_step(i, s, loaded) for i, s in enumerate(payload.install))
    labels: tuple[tuple[str, str], ...] = (
        ("io.nublado.payload.name", payload.name),
        ("io.nublado.payload.kernels", payload.kernel.name),
        ("io.nublado.payload.python", python),
        ("io.nublado.build.version", __version__),
        ("org.opencontainers.image.title", payload.name),
        ("org.opencontainers.image.description", payload.description),
    )
    compat = compat_plan(payload)
    if compat.links:
        labels += ((COMPAT_LABEL, compat.label),)
    return Plan(
        loaded=loaded,
        base_image=base_image,
        lab_user=lab_user,
        steps=steps,
        kernel=kernel_files(kernel_with_activation(payload), python),
        shell_setup=shell_setup(payload),
        shell_path=shell_path(payload),
        python=python,
        labels=labels,
        compat=compat,
    )
