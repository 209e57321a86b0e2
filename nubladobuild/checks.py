"""Checks of a valid payload model against the files it names.

Each check returns :class:`Problem` objects so that the loader can report
them together with schema errors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nubladobuild.compat import compat_problems
from nubladobuild.errors import Problem
from nubladobuild.requirements import parse_requirements
from nubladobuild.schema import PipStep, Payload

Loc = tuple[str | int, ...]
LineFor = Callable[[Loc], int | None]


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
    problems.extend(compat_problems(model, file, line_for))
    return problems
