"""Turn a validated payload into a build plan: every file and value the
Dockerfile needs, decided before anything is written or built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nubladobuild import __version__
from nubladobuild.compat import LABEL as COMPAT_LABEL
from nubladobuild.compat import CompatPlan, compat_plan
from nubladobuild.errors import InputError
from nubladobuild.kernels import KernelFiles, kernel_files
from nubladobuild.loader import LoadedPayload
from nubladobuild.requirements import parse_requirements
from nubladobuild.schema import InstallStep, PipStep
from nubladobuild.shell import shell_path, shell_setup

#: The base image a payload builds on unless told otherwise.
DEFAULT_BASE_IMAGE = "nublado-jupyterlab-base:latest"
#: The user the payload image runs as unless the base says otherwise.
DEFAULT_LAB_USER = "1000:100"


@dataclass(frozen=True)
class StepPlan:
    """One install step: its context directory, files and template values."""

    index: int
    kind: str
    dir: str
    files: dict[str, bytes] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    stage_template: str | None = None


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


def _pip_step(index: int, spec: PipStep, loaded: LoadedPayload) -> StepPlan:
    source = loaded.file(spec.requirements)
    text = source.read_bytes()
    reqs = parse_requirements(source)
    if not reqs.has("ipykernel"):
        # The kernel needs ipykernel; the loader refused locked files lacking it.
        text = text.rstrip(b"\n") + b"\n# added by nublado-build for the kernel\n" \
            b"ipykernel\n" if text.strip() else b"ipykernel\n"
    return StepPlan(
        index=index,
        kind="pip",
        dir=f"steps/{index:02d}-pip",
        files={"requirements.txt": text},
        vars={
            "python": spec.python,
            "prefix": spec.prefix,
            "installer": spec.installer,
            "hashes": "hashes" if reqs.hashed else "nohashes",
        },
    )


def _step_plan(index: int, step: InstallStep, loaded: LoadedPayload) -> StepPlan:
    spec = step.spec
    if isinstance(spec, PipStep):
        return _pip_step(index, spec, loaded)
    raise InputError(
        f"{loaded.yaml_path}: install[{index}]: the {step.kind!r} install kind is "
        "not available in this version of nublado-build; use pip."
    )


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
    steps = tuple(_step_plan(i, s, loaded) for i, s in enumerate(payload.install))
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
        kernel=kernel_files(payload.kernel, python),
        shell_setup=shell_setup(payload),
        shell_path=shell_path(payload),
        python=python,
        labels=labels,
        compat=compat,
    )
