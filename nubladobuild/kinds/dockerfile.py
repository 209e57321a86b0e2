"""The ``dockerfile`` kind: a validated fragment spliced into the build."""

from __future__ import annotations

from pydantic import Field

from nubladobuild.fields import RelFile, SecretName, Strict
from nubladobuild.fragment import check_fragment, splice
from nubladobuild.kinds._protocol import (
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
    file_mode,
)

#: The working directory of the base image, restored after a fragment's WORKDIR.
BASE_WORKDIR = "/tmp"  # noqa: S108 - a path in the image


class DockerfileStep(Strict):
    """A validated Dockerfile fragment spliced into the payload build."""

    path: RelFile
    secrets: list[SecretName] = Field(default_factory=list, max_length=2)


def load(spec: DockerfileStep, ctx: StepContext) -> None:
    """Parse and check the fragment; read the files its COPY lines name."""
    if ctx.read("path", spec.path) is None:
        return
    fragment = check_fragment(ctx.directory / spec.path, ctx.directory,
                              secrets=spec.secrets)
    for problem in fragment.problems:
        ctx.problem("path", f"{ctx.directory / spec.path}:{problem.line}: "
                    f"{problem.message}")
    if fragment.problems:
        return
    for rel in fragment.files:
        data = ctx.read("path", rel)
        if data is not None:
            ctx.input.modes[rel] = file_mode(ctx.directory / rel)
    ctx.input.extra = fragment


def plan(index: int, spec: DockerfileStep, step: StepInput,
         payload: object) -> StepPlan:
    """Plan the step: the fragment's lines and the files it copies."""
    directory = KIND.step_dir(index)
    fragment = step.extra
    files = {f"src/{rel}": step.files[rel] for rel in fragment.files}
    modes = {f"src/{rel}": step.modes[rel] for rel in fragment.files}
    return StepPlan(
        index=index,
        kind=KIND.name,
        dir=directory,
        files=files,
        modes=modes,
        vars={"path": spec.path, "workdir": BASE_WORKDIR},
        data={"fragment": splice(fragment, f"{directory}/src"),
              "resets_workdir": fragment.sets_workdir},
    )


def environment(spec: DockerfileStep, payload_name: str) -> Environment | None:
    """Return None: a fragment names no interpreter."""
    return None


KIND = Kind(name="dockerfile", model=DockerfileStep, load=load, plan=plan,
            environment=environment, files=("path",))
