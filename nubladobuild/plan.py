"""Stage 2, plan: turn a loaded payload into a build plan. Pure.

Every file and value the Dockerfile needs that follows from the payload
alone, decided before anything is written or built: no engine, no file
reads (the loader read every file). The kernel files are derived here,
once, and the compat links resolve against them. What needs the outside
world (the base image's user, conda solutions) is the resolve stage's.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from nubladobuild import __version__
from nubladobuild.compat import LABEL as COMPAT_LABEL
from nubladobuild.compat import RECORD_PATH, CompatPlan, compat_plan
from nubladobuild.errors import InputError, PayloadInvalid, Problem
from nubladobuild.fields import LAB_ROOT
from nubladobuild.kernels import KernelFiles, payload_kernel_files
from nubladobuild.kinds import KINDS, Environment, StepPlan
from nubladobuild.lab import LabPlan, lab_plan
from nubladobuild.loader import LoadedPayload
from nubladobuild.pairing import PAIRING_LABEL
from nubladobuild.refs import BadReference, parse_reference
from nubladobuild.shell import shell_path, shell_setup
from nubladobuild.start import StartPlan, start_plan

#: The base image a payload builds on unless told otherwise.
DEFAULT_BASE_IMAGE = "nublado-jupyterlab-base:latest"
#: Stage messages go here; ``NUBLADO_BUILD_TRACE=1`` shows them.
STAGES = logging.getLogger("nubladobuild.stages")


@dataclass(frozen=True)
class Plan:
    """Everything the payload decides about its build context."""

    loaded: LoadedPayload
    base_image: str
    steps: tuple[StepPlan, ...]
    environment: Environment
    kernel: KernelFiles
    kernels: tuple[KernelFiles, ...]
    shell_setup: str
    shell_path: str
    labels: tuple[tuple[str, str], ...]
    version: str = __version__
    compat: CompatPlan = field(default_factory=CompatPlan)
    generated: tuple[str, ...] = ()
    lab: LabPlan | None = None
    start: StartPlan | None = None

    @property
    def python(self) -> str:
        """Return the interpreter the kernel runs."""
        return self.environment.python

    @property
    def name(self) -> str:
        """Return the payload's name."""
        return self.loaded.model.name


def check_base_reference(base_image: str) -> str:
    """Return ``base_image`` when it is a valid image reference.

    Raises
    ------
    InputError
        Naming the flag and what a reference looks like.
    """
    try:
        parse_reference(base_image)
    except BadReference as exc:
        raise InputError(f"--base: {exc}") from None
    return base_image


def generated_paths(name: str, kernels: Sequence[KernelFiles], setup_path: str,
                    compat: CompatPlan) -> tuple[str, ...]:
    """Return the paths the payload stage writes inside protected trees.

    The isolation guard allows exactly these (a trailing ``/`` allows a
    whole directory) and nothing else: every kernel's spec directory and
    wrapper directory among them.
    """
    paths = {setup_path, f"{LAB_ROOT}/versions-installed/payload-{name}.txt"}
    for kernel in kernels:
        paths.add(f"{kernel.spec_dir}/")
        if kernel.wrapper_path:
            paths.add(f"{posixpath.dirname(kernel.wrapper_path)}/")
    if compat.links:
        paths.add(RECORD_PATH)
        for link in compat.links:
            paths.update((link.path, f"{link.path}/"))
    return tuple(sorted(paths))


def requested_secrets(plan: Plan) -> dict[int, list[str]]:
    """Return the secrets each script or fragment step asks for, by index."""
    asked: dict[int, list[str]] = {}
    for index, step in enumerate(plan.loaded.model.steps()):
        names = getattr(step.spec, "secrets", None)
        if names:
            asked[index] = sorted(set(names))
    return asked


def check_grants(plan: Plan, granted: Sequence[str]) -> None:
    """Refuse a build whose steps ask for secrets the operator did not grant.

    Raises
    ------
    InputError
        Naming each step, the secrets it asks for and the flag that grants
        them.
    """
    missing = []
    for index, names in requested_secrets(plan).items():
        kind = plan.loaded.model.steps()[index].kind
        refused = [n for n in names if n not in granted]
        if refused:
            missing.append(f"install[{index}].{kind}.secrets asks for "
                           f"{', '.join(refused)}")
    if missing:
        flags = " ".join(f"--allow-secret {n}" for n in sorted(
            {n for names in requested_secrets(plan).values() for n in names}
            - set(granted)))
        raise InputError(f"{plan.loaded.yaml_path}: {'; '.join(missing)}, which "
                         f"the operator has not granted. Pass {flags} to hand them "
                         "to those steps (they never reach a layer), or remove "
                         "them from the payload.")


def build_plan(loaded: LoadedPayload, base_image: str = DEFAULT_BASE_IMAGE) -> Plan:
    """Plan a payload build.

    Parameters
    ----------
    loaded
        The loaded payload (see :func:`nubladobuild.loader.load_payload`).
    base_image
        The JupyterLab base image to build on.

    Returns
    -------
    Plan
        The complete, deterministic description of the payload's part of
        the build context.

    Raises
    ------
    InputError
        When the base reference is invalid.
    PayloadInvalid
        When compat links cannot apply to this payload's kernel files.
    """
    check_base_reference(base_image)
    payload = loaded.model
    STAGES.info("plan %s", payload.name)
    problems: list[Problem] = []

    def lab_problem(where: str, message: str) -> None:
        line = loaded.line_for(tuple(where.split(".")))
        problems.append(Problem(str(loaded.yaml_path), where, message, line))

    lab = lab_plan(payload.lab, payload.name, loaded.lab_lock, lab_problem,
                   str(loaded.directory))
    if problems:
        raise PayloadInvalid(problems)
    env = payload.environment
    steps = tuple(KINDS[s.kind].plan(i, s.spec, loaded.inputs[i], payload)
                  for i, s in enumerate(payload.steps()))
    kernels = payload_kernel_files(payload.all_kernels, [
        payload.kernel_environment(k) for k in payload.all_kernels])
    kernel = kernels[0]
    setup_path = shell_path(payload)
    generated = {f"{kernel.spec_dir}/kernel.json": "the generated kernel.json",
                 setup_path: "the generated shell setup"}
    for other in kernels:
        generated[other.spec_path] = "the generated kernel.json"
        if other.wrapper_path:
            generated[other.wrapper_path] = "the generated kernel wrapper"
    compat = compat_plan(payload, kernel, generated, str(loaded.yaml_path),
                         loaded.line_for)
    start = start_plan(payload, loaded.start_script, env)
    labels: tuple[tuple[str, str], ...] = (
        ("io.nublado.payload.name", payload.name),
        ("io.nublado.payload.kernels", ",".join(k.name for k in payload.all_kernels)),
        ("io.nublado.payload.python", env.python),
        (PAIRING_LABEL, payload.lab.pairing),
        ("io.nublado.build.version", __version__),
        ("org.opencontainers.image.title", payload.name),
        ("org.opencontainers.image.description", payload.description),
    )
    if compat.links:
        labels += ((COMPAT_LABEL, compat.label),)
    if lab is not None:
        labels += lab.label
    return Plan(
        generated=tuple(sorted(
            generated_paths(payload.name, kernels, setup_path, compat)
            + (start.paths if start is not None else ()))),
        loaded=loaded,
        base_image=base_image,
        steps=steps,
        environment=env,
        kernel=kernel,
        kernels=kernels,
        shell_setup=shell_setup(payload, env),
        shell_path=setup_path,
        labels=labels,
        compat=compat,
        lab=lab,
        start=start,
    )
