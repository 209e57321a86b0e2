"""The ``pip`` kind: a requirements file installed into a venv."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nubladobuild.fields import Prefix, RelFile, Strict
from nubladobuild.kinds._protocol import (
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
)
from nubladobuild.requirements import parse_requirements

#: Where the requirements file goes in the step's context directory.
REQUIREMENTS = "requirements.txt"


class PipStep(Strict):
    """A pip ``requirements.txt`` installed into a venv."""

    requirements: RelFile
    prefix: Prefix = "/opt/payload/venv"
    python: str = Field(
        default="python3",
        pattern=r"^(/[A-Za-z0-9._+/-]+|python3(\.[0-9]+)?)$",
        description="Interpreter that creates the venv (path or python3[.N]).",
    )
    installer: Literal["pip", "uv"] = "pip"


def load(spec: PipStep, ctx: StepContext) -> None:
    """Read the requirements file and refuse what the boundary forbids."""
    data = ctx.read("requirements", spec.requirements)
    if data is None:
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        ctx.problem("requirements", f"{spec.requirements!r} is not UTF-8 text")
        return
    reqs = parse_requirements(text)
    for line, message in reqs.problems:
        ctx.problem("requirements", f"{spec.requirements}:{line}: {message}")
    if reqs.hashed and not reqs.has("ipykernel") \
            and ctx.kernel_python == f"{spec.prefix}/bin/python":
        ctx.problem("requirements",
                    f"{spec.requirements!r} is hash-locked but lacks ipykernel, "
                    "which the kernel needs; add ipykernel to the input and lock "
                    "again")
    ctx.input.extra = reqs


def plan(index: int, spec: PipStep, step: StepInput, payload: object) -> StepPlan:
    """Plan the step: its requirements (with ipykernel added) and settings."""
    text = step.files[spec.requirements]
    reqs = step.extra
    if not reqs.has("ipykernel"):
        # The kernel needs ipykernel; the loader refused locked files lacking it.
        text = (text.rstrip(b"\n") + b"\n# added by nublado-build for the kernel\n"
                b"ipykernel\n") if text.strip() else b"ipykernel\n"
    return StepPlan(
        index=index,
        kind=KIND.name,
        dir=KIND.step_dir(index),
        files={REQUIREMENTS: text},
        vars={
            "python": spec.python,
            "prefix": spec.prefix,
            "installer": spec.installer,
            "hashes": "hashes" if reqs.hashed else "nohashes",
        },
    )


def environment(spec: PipStep, payload_name: str) -> Environment:
    """Return the venv the step makes."""
    return Environment(spec.prefix, f"{spec.prefix}/bin/python", "venv")


KIND = Kind(name="pip", model=PipStep, load=load, plan=plan,
            environment=environment, files=("requirements",))
