"""Plan each install step: its build-context files and template values.

Each kind has a template ``templates/steps/<kind>.j2`` (and conda and
transplant a stage template).

Pure: reads the payload's files, touches nothing else. Conda packages are
not fetched here (see :mod:`nubladobuild.condabuild`); the plan only says
where they go.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nubladobuild.conda import RATTLER_VERSION
from nubladobuild.errors import InputError
from nubladobuild.fragment import check_fragment, splice
from nubladobuild.loader import PAYLOAD_FILE, LoadedPayload
from nubladobuild.requirements import parse_requirements
from nubladobuild.schema import (
    CondaStep,
    DockerfileStep,
    InstallStep,
    Kernel,
    Payload,
    PipStep,
    ScriptStep,
    TransplantStep,
    conda_prefix,
)
from nubladobuild.templating import render_template

#: The working directory of the base image, restored after a fragment's WORKDIR.
BASE_WORKDIR = "/tmp"  # noqa: S108 - a path in the image
#: Where a conda step's package archives go, inside its step directory.
CONDA_PACKAGES = "pkgs"
_SKIP_NAMES = ("__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache")


@dataclass(frozen=True)
class StepPlan:
    """One install step: its context directory, files and template values.

    Attributes
    ----------
    index : int
        Position in ``install``.
    kind : str
        The install kind (names the template ``steps/<kind>.j2``).
    dir : str
        The step's directory in the build context.
    files : dict of str to bytes
        Files written under ``dir``.
    vars : dict of str to str
        Scalar template values.
    stage_template : str or None
        A template for a build stage before the final one (conda, transplant).
    data : dict of str to Any
        Structured template values (lists of paths, env pairs, fragment lines).
    modes : dict of str to int
        File modes for ``files`` that are not the default.

    """

    index: int
    kind: str
    dir: str
    files: dict[str, bytes] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    stage_template: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)


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


def _conda_step(index: int, spec: CondaStep, loaded: LoadedPayload) -> StepPlan:
    directory = f"steps/{index:02d}-conda"
    files = {
        "environment.yml": loaded.file(spec.environment).read_bytes(),
        f"{CONDA_PACKAGES}/README": render_template(
            "steps/conda-packages-readme.j2", index=index).encode(),
    }
    if spec.lock:
        files["conda-lock.yml"] = loaded.file(spec.lock).read_bytes()
    return StepPlan(
        index=index,
        kind="conda",
        dir=directory,
        files=files,
        vars={
            "prefix": conda_prefix(spec, loaded.model.name),
            "stage": f"conda-{index}",
            "packages": f"{directory}/{CONDA_PACKAGES}",
            "rattler": RATTLER_VERSION,
        },
        stage_template="steps/conda-stage.j2",
    )


def _payload_files(loaded: LoadedPayload) -> tuple[dict[str, bytes], dict[str, int]]:
    """Return the payload directory's files (for scripts), with their modes."""
    root = loaded.directory.resolve()
    tests = loaded.model.tests
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        parts = rel.parts
        if any(p.startswith(".") or p in _SKIP_NAMES for p in parts):
            continue
        if rel.as_posix() == PAYLOAD_FILE or (tests and (
                rel.as_posix() == tests or rel.as_posix().startswith(tests + "/"))):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        name = f"payload/{rel.as_posix()}"
        files[name] = path.read_bytes()
        modes[name] = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
    return files, modes


def _script_step(index: int, spec: ScriptStep, loaded: LoadedPayload) -> StepPlan:
    files, modes = _payload_files(loaded)
    return StepPlan(
        index=index,
        kind="script",
        dir=f"steps/{index:02d}-script",
        files=files,
        modes=modes,
        vars={"path": spec.path, "prefix": spec.prefix},
        data={"env": sorted(spec.env.items())},
    )


def _dockerfile_step(index: int, spec: DockerfileStep,
                     loaded: LoadedPayload) -> StepPlan:
    path = loaded.file(spec.path)
    fragment = check_fragment(path, loaded.directory)
    if fragment.problems:  # the loader reports these; here only as a guard
        first = fragment.problems[0]
        raise InputError(f"{path}:{first.line}: install[{index}].dockerfile: "
                         f"{first.message}")
    directory = f"steps/{index:02d}-dockerfile"
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    for rel in fragment.files:
        source = loaded.file(rel)
        files[f"src/{rel}"] = source.read_bytes()
        modes[f"src/{rel}"] = 0o755 if source.stat().st_mode & stat.S_IXUSR else 0o644
    return StepPlan(
        index=index,
        kind="dockerfile",
        dir=directory,
        files=files,
        modes=modes,
        vars={"path": spec.path, "workdir": BASE_WORKDIR},
        data={"fragment": splice(fragment, f"{directory}/src"),
              "resets_workdir": fragment.sets_workdir},
    )


def _transplant_step(index: int, spec: TransplantStep,
                     loaded: LoadedPayload) -> StepPlan:
    return StepPlan(
        index=index,
        kind="transplant",
        dir=f"steps/{index:02d}-transplant",
        vars={"image": spec.image, "stage": f"transplant-{index}"},
        data={"paths": list(spec.paths)},
        stage_template="steps/transplant-stage.j2",
    )


def plan_step(index: int, step: InstallStep, loaded: LoadedPayload) -> StepPlan:
    """Plan one install step.

    Parameters
    ----------
    index
        The step's position in ``install``.
    step
        The validated step.
    loaded
        The payload it belongs to (for its files).

    Returns
    -------
    StepPlan
        The step's files and template values.

    """
    spec = step.spec
    if isinstance(spec, PipStep):
        return _pip_step(index, spec, loaded)
    if isinstance(spec, CondaStep):
        return _conda_step(index, spec, loaded)
    if isinstance(spec, ScriptStep):
        return _script_step(index, spec, loaded)
    if isinstance(spec, DockerfileStep):
        return _dockerfile_step(index, spec, loaded)
    return _transplant_step(index, spec, loaded)


def kernel_with_activation(payload: Payload) -> Kernel:
    """Return the payload's kernel, activating its conda env when it runs one.

    A kernel whose interpreter is a conda step's ``bin/python`` gets
    ``CONDA_PREFIX``/``CONDA_DEFAULT_ENV`` and the env's ``bin`` first on
    ``PATH`` (through its wrapper), like ``conda activate`` would give it.
    """
    kernel = payload.kernel
    python = payload.kernel_python
    for step in payload.install:
        spec = step.spec
        if not isinstance(spec, CondaStep):
            continue
        prefix = conda_prefix(spec, payload.name)
        if python != f"{prefix}/bin/python":
            continue
        env = {"CONDA_PREFIX": prefix,
               "CONDA_DEFAULT_ENV": Path(prefix).name, **kernel.env}
        activate = render_template("steps/conda-activate.sh.j2", prefix=prefix)
        setup = [line for line in activate.splitlines() if line.strip()]
        return kernel.model_copy(update={"env": env, "setup": [*setup, *kernel.setup]})
    return kernel

