"""Checks of a valid payload model against the files it names.

Each check returns :class:`Problem` objects so that the loader can report
them together with schema errors.
"""

from __future__ import annotations

from pathlib import Path

from nubladobuild.compat import compat_problems
from nubladobuild.conda import CondaError, load_environment
from nubladobuild.errors import LineFor, Loc, Problem
from nubladobuild.fragment import check_fragment
from nubladobuild.requirements import canonical, parse_requirements
from nubladobuild.schema import (
    CondaStep,
    DockerfileStep,
    Payload,
    PipStep,
    conda_prefix,
)


def _pip_problems(step: PipStep, index: int, directory: Path, file: str,
                  line_for: LineFor) -> list[Problem]:
    loc: Loc = ("install", index, "pip", "requirements")
    where = f"install[{index}].pip.requirements"
    path = directory / step.requirements
    if not path.is_file():
        return []  # reported by the file check
    try:
        reqs = parse_requirements(path)
    except UnicodeDecodeError:
        return [Problem(file, where, f"{step.requirements!r} is not UTF-8 text",
                        line_for(loc))]
    problems = []
    if reqs.includes:
        problems.append(Problem(
            file, where,
            f"{step.requirements!r} includes other files with -r/-c (line "
            f"{', '.join(map(str, reqs.includes))}); flatten it into one file "
            "(pip-compile does)", line_for(loc)))
    if reqs.hashed and not reqs.has("ipykernel"):
        problems.append(Problem(
            file, where,
            f"{step.requirements!r} is hash-locked but lacks ipykernel, which "
            "the kernel needs; add ipykernel to the input and lock again",
            line_for(loc)))
    return problems


def _conda_problems(step: CondaStep, index: int, model: Payload, directory: Path,
                    file: str, line_for: LineFor) -> list[Problem]:
    loc: Loc = ("install", index, "conda", "environment")
    where = f"install[{index}].conda.environment"
    path = directory / step.environment
    if not path.is_file():
        return []  # reported by the file check
    try:
        env = load_environment(path)
    except CondaError as exc:
        return [Problem(file, where, str(exc), line_for(loc))]
    problems: list[Problem] = []
    names = {canonical(_spec_name(s)) for s in env.dependencies}
    runs_kernel = model.kernel_python == f"{conda_prefix(step, model.name)}/bin/python"
    if runs_kernel and "python" not in names:
        problems.append(Problem(file, where, f"{step.environment!r} does not list "
                                "python, which the kernel runs; add it to "
                                "dependencies", line_for(loc)))
    pip_names = {canonical(_spec_name(s)) for s in env.pip if not s.startswith("-")}
    if runs_kernel and "ipykernel" not in names | pip_names:
        problems.append(Problem(file, where, f"{step.environment!r} lacks ipykernel, "
                                "which the kernel needs; add it to dependencies",
                                line_for(loc)))
    if step.lock and (directory / step.lock).is_file():
        problems.extend(_lock_problems(step, index, directory, file, line_for))
    return problems


def _lock_problems(step: CondaStep, index: int, directory: Path, file: str,
                   line_for: LineFor) -> list[Problem]:
    try:
        from nubladobuild.conda import read_lock

        read_lock(directory / str(step.lock))
    except ImportError:
        return []  # py-rattler is missing: the build says so
    except CondaError as exc:
        return [Problem(file, f"install[{index}].conda.lock", str(exc),
                        line_for(("install", index, "conda", "lock")))]
    return []


def _spec_name(spec: str) -> str:
    head = spec.split("::")[-1].strip()
    for sep in (" ", "=", "<", ">", "!", "~", "[", ";", "@"):
        head = head.split(sep)[0]
    return head


def _dockerfile_problems(step: DockerfileStep, index: int, directory: Path,
                         file: str, line_for: LineFor) -> list[Problem]:
    """Report each refused fragment line as ``FRAGMENT:LINE: reason``."""
    path = directory / step.path
    if not path.is_file():
        return []  # reported by the file check
    fragment = check_fragment(path, directory)
    loc: Loc = ("install", index, "dockerfile", "path")
    return [Problem(file, f"install[{index}].dockerfile.path",
                    f"{path}:{p.line}: {p.message}", line_for(loc))
            for p in fragment.problems]


def payload_problems(model: Payload, directory: Path, file: str,
                     line_for: LineFor) -> list[Problem]:
    """Return every problem found by checks that need the files on disk.

    Parameters
    ----------
    model
        The validated payload.
    directory
        The payload directory.
    file
        The payload.yaml path, for messages.
    line_for
        Maps a YAML location to its line number.

    Returns
    -------
    list of Problem
        Empty when the payload is sound.

    """
    problems: list[Problem] = []
    for index, step in enumerate(model.install):
        spec = step.spec
        if isinstance(spec, PipStep):
            problems.extend(_pip_problems(spec, index, directory, file, line_for))
        elif isinstance(spec, CondaStep):
            problems.extend(_conda_problems(spec, index, model, directory, file,
                                            line_for))
        elif isinstance(spec, DockerfileStep):
            problems.extend(_dockerfile_problems(spec, index, directory, file,
                                                 line_for))
    problems.extend(compat_problems(model, file, line_for))
    return problems
