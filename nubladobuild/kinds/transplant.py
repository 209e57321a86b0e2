"""The ``transplant`` kind: directories copied from another image."""

from __future__ import annotations

import posixpath

from pydantic import Field

from nubladobuild.fields import Interpreter, Strict, WholePath
from nubladobuild.kinds._protocol import (
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
)
from nubladobuild.refs import ImageRefField


class TransplantStep(Strict):
    """Directories copied from another image."""

    image: ImageRefField
    paths: list[WholePath] = Field(min_length=1, max_length=64)
    python: Interpreter | None = None


def load(spec: TransplantStep, ctx: StepContext) -> None:
    """Check that no transplanted path is inside another (it reads no files)."""
    for i, path in enumerate(spec.paths):
        for j, other in enumerate(spec.paths):
            if i != j and path.startswith(other + "/"):
                ctx.problem(("paths", i), f"{path} is inside {other} (paths[{j}]); "
                            "list the outer directory once")


def plan(index: int, spec: TransplantStep, step: StepInput,
         payload: object) -> StepPlan:
    """Plan the copy stage and the ELF scan."""
    return StepPlan(
        index=index,
        kind=KIND.name,
        dir=KIND.step_dir(index),
        vars={"image": spec.image, "stage": f"transplant-{index}"},
        data={"paths": list(spec.paths)},
        stage_template=KIND.stage_template,
    )


def environment(spec: TransplantStep, payload_name: str) -> Environment | None:
    """Return the transplanted interpreter's environment, when named."""
    if spec.python is None:
        return None
    return Environment(posixpath.dirname(posixpath.dirname(spec.python)),
                       spec.python)


KIND = Kind(name="transplant", model=TransplantStep, load=load, plan=plan,
            environment=environment, stage=True)
