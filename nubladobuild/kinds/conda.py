"""The ``conda`` kind: an environment file (optionally locked) in a prefix.

Solving, locking and fetching happen on the host in the resolve stage
(:mod:`nubladobuild.resolve`, with :mod:`nubladobuild.conda`); the build
stage installs exactly the fetched packages with py-rattler, no network.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import Field

from nubladobuild.conda import RATTLER_VERSION, parse_environment, read_lock
from nubladobuild.errors import CondaError
from nubladobuild.fields import Line, Prefix, RelFile, Strict
from nubladobuild.kinds._protocol import (
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
)
from nubladobuild.requirements import canonical, parse_requirements
from nubladobuild.templating import render_template

#: Where a conda step's package archives go, inside its step directory.
PACKAGES = "pkgs"


class CondaStep(Strict):
    """A conda environment (YAML, optionally locked) installed into a prefix."""

    environment: RelFile
    lock: RelFile | None = None
    prefix: Prefix | None = None
    channels: list[Line] | None = Field(default=None, max_length=32)


def prefix_of(spec: CondaStep, payload_name: str) -> str:
    """Return a conda step's prefix: explicit, or ``/opt/conda/envs/<payload>``."""
    return spec.prefix or f"/opt/conda/envs/{payload_name}"


def spec_name(spec: str) -> str:
    """Return the package name of a conda match spec."""
    head = spec.split("::")[-1].strip()
    for sep in (" ", "=", "<", ">", "!", "~", "[", ";", "@"):
        head = head.split(sep)[0]
    return head


def load(spec: CondaStep, ctx: StepContext) -> None:
    """Read the environment (and lock) file; check what the kernel needs."""
    data = ctx.read("environment", spec.environment)
    if data is None:
        return
    try:
        env = parse_environment(data.decode("utf-8"), spec.environment)
    except UnicodeDecodeError:
        ctx.problem("environment", f"{spec.environment!r} is not UTF-8 text")
        return
    except CondaError as exc:
        ctx.problem("environment", exc.message)
        return
    pip_text = "\n".join(env.pip)
    for line, message in parse_requirements(pip_text).problems:
        ctx.problem("environment", f"{spec.environment}: pip entry {line}: "
                    f"{message}")
    names = {canonical(spec_name(s)) for s in env.dependencies}
    pip_names = {canonical(spec_name(s)) for s in env.pip if not s.startswith("-")}
    if ctx.kernel_python == f"{prefix_of(spec, ctx.payload_name)}/bin/python":
        if "python" not in names:
            ctx.problem("environment", f"{spec.environment!r} does not list python, "
                        "which the kernel runs; add it to dependencies")
        if "ipykernel" not in names | pip_names:
            ctx.problem("environment", f"{spec.environment!r} lacks ipykernel, "
                        "which the kernel needs; add it to dependencies")
    records = None
    # `nublado-build lock` writes the lock: a missing or old one is no problem
    if spec.lock and not ctx.locking:
        lock = ctx.read("lock", spec.lock)
        if lock is None:
            return
        with tempfile.TemporaryDirectory(prefix="nublado-lock-") as tmp:
            path = Path(tmp) / Path(spec.lock).name
            path.write_bytes(lock)
            try:
                records = read_lock(path)
            except CondaError as exc:
                ctx.problem("lock", exc.message.replace(str(path), spec.lock))
            except ImportError:  # pragma: no cover - py-rattler is a dependency
                ctx.problem("lock", "py-rattler is not installed")
    ctx.input.extra = (env, records)


def plan(index: int, spec: CondaStep, step: StepInput, payload: object) -> StepPlan:
    """Plan the conda stage: environment file and where the packages go."""
    directory = KIND.step_dir(index)
    files = {
        "environment.yml": step.files[spec.environment],
        f"{PACKAGES}/README": render_template(
            "steps/conda-packages-readme.j2", index=index).encode(),
    }
    if spec.lock:
        files["conda-lock.yml"] = step.files[spec.lock]
    return StepPlan(
        index=index,
        kind=KIND.name,
        dir=directory,
        files=files,
        vars={
            "prefix": prefix_of(spec, getattr(payload, "name", "payload")),
            "stage": f"conda-{index}",
            "packages": f"{directory}/{PACKAGES}",
            "rattler": RATTLER_VERSION,
        },
        stage_template=KIND.stage_template,
    )


def environment(spec: CondaStep, payload_name: str) -> Environment:
    """Return the conda environment the step makes."""
    prefix = prefix_of(spec, payload_name)
    return Environment(prefix, f"{prefix}/bin/python", "conda")


KIND = Kind(name="conda", model=CondaStep, load=load, plan=plan,
            environment=environment, stage=True, files=("environment", "lock"))
