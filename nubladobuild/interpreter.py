"""Which Python a pip step asks for, checked before anything is built.

A pip step's ``python: python3.N`` names the interpreter that makes its
venv. Two checks refuse what cannot exist, with exit 2:

- statically (the loader, no engine): ``python3.N`` older than
  :data:`MIN_PYTHON`, the oldest Python the kernel stack supports;
- against the base image (resolve, and ``validate`` when the base is on the
  engine): ``python3.N`` must be the base's ``python3`` (its major.minor),
  unless an earlier step can provide it: an ``apt`` step listing the Debian
  package ``python3.N`` (or ``python3.N-*``), a conda step, or a step that
  runs arbitrary commands (``script``, ``dockerfile``, ``transplant``).

``python3`` and absolute paths are left alone: ``python3`` is the base's
own, and a path may come from any earlier step.

The base's Python is what ``finish-base`` recorded
(``versions-installed/base-python.txt``, the output of ``python3
--version``), else the ``PYTHON_VERSION`` of its environment (set by the
``python:3.x`` images). Only :mod:`nubladobuild.engine` talks to Docker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nubladobuild import engine
from nubladobuild.errors import PayloadInvalid, Problem

if TYPE_CHECKING:
    from nubladobuild.loader import LoadedPayload

#: The oldest Python a payload kernel can run: jupyter-client 8.10, which
#: every base profile pins, and ipykernel 7 require Python >= 3.10 (3.9 is
#: past its end of life, and no Debian suite the base builds on ships it).
MIN_PYTHON = (3, 10)
#: Where ``finish-base`` records ``python3 --version`` in the base image.
MANIFEST_DIR = "/usr/local/share/jupyterlab/versions-installed"
BASE_PYTHON_FILE = "base-python.txt"
#: Kinds whose steps can install an interpreter the check cannot see.
_OPEN_KINDS = ("conda", "script", "dockerfile", "transplant")

_VERSIONED = re.compile(r"^python3\.([0-9]+)\Z")
_VERSION_TEXT = re.compile(r"(?:^|\s)(3)\.([0-9]+)(?:\.[0-9]+)?")


@dataclass(frozen=True)
class StepFacts:
    """What the check needs to know of one install step.

    Attributes
    ----------
    index : int
        The step's index in ``install``.
    kind : str
        Its kind.
    python : str or None
        A pip step's ``python``; None for other kinds.
    packages : tuple of str
        An apt step's Debian packages (names, ``=version`` stripped).
    """

    index: int
    kind: str
    python: str | None = None
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class BaseCheck:
    """The outcome of the check against the base, for ``validate``.

    Attributes
    ----------
    status : str
        ``done``, ``not needed`` (no step asks for ``python3.N``) or
        ``not done``.
    reason : str
        Why it was not done; empty otherwise.
    base_python : str
        The base's major.minor when it was read.
    """

    status: str
    reason: str = ""
    base_python: str = ""

    def as_json(self) -> dict[str, str]:
        """Return the outcome for ``--json``."""
        return {"status": self.status, "reason": self.reason,
                "base_python": self.base_python}


def requested_minor(python: str) -> int | None:
    """Return N of ``python3.N``; None for ``python3`` and paths."""
    match = _VERSIONED.match(python)
    return int(match.group(1)) if match else None


def static_problems(install: object) -> list[tuple[tuple[str | int, ...], str]]:
    """Return (YAML location, message) for each ``python3.N`` below the floor.

    Reads the raw ``install`` list (pure; no engine), so the problem shows
    even when other parts of the payload are invalid.
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for index, step in enumerate(install if isinstance(install, list) else []):
        pip = step.get("pip") if isinstance(step, dict) else None
        python = pip.get("python") if isinstance(pip, dict) else None
        minor = requested_minor(python) if isinstance(python, str) else None
        if minor is not None and (3, minor) < MIN_PYTHON:
            oldest = ".".join(map(str, MIN_PYTHON))
            problems.append((
                ("install", index, "pip", "python"),
                f"{python} is older than Python {oldest}, the oldest a payload "
                f"kernel can run (ipykernel 7 and jupyter-client 8.10 need "
                f"{oldest} or later); use python3 (the base image's Python) or "
                f"python3.N with N >= {MIN_PYTHON[1]}"))
    return problems


def _apt_name(spec: str) -> str:
    return spec.split("=", 1)[0]


def base_problems(base: tuple[int, int], base_image: str,
                  steps: Sequence[StepFacts]) -> list[tuple[int, str]]:
    """Return (step index, message) for each ``python3.N`` the base cannot run.

    Pure. ``python3.N`` passes when it is the base's major.minor, or when an
    earlier step provides it: an apt step listing ``python3.N`` (or
    ``python3.N-*``), or a step of a kind in ``_OPEN_KINDS``.

    Parameters
    ----------
    base
        The base image's Python (major, minor).
    base_image
        The base's reference, for messages.
    steps
        Every install step, in order.
    """
    problems: list[tuple[int, str]] = []
    version = f"{base[0]}.{base[1]}"
    for position, step in enumerate(steps):
        minor = requested_minor(step.python) if step.python else None
        if minor is None or (3, minor) == base:
            continue
        wanted = f"python3.{minor}"
        earlier = steps[:position]
        if any(s.kind in _OPEN_KINDS for s in earlier) or any(
                _apt_name(p) == wanted or _apt_name(p).startswith(f"{wanted}-")
                for s in earlier if s.kind == "apt" for p in s.packages):
            continue
        problems.append((step.index, (
            f"{wanted} does not exist in the base image {base_image}, whose "
            f"Python is {version}; use python3 or python3.{base[1]} (the base's "
            f"Python), install {wanted} in an earlier apt step, or build on a "
            f"base with Python 3.{minor}")))
    return problems


def step_facts(loaded: LoadedPayload) -> list[StepFacts]:
    """Return the facts of a loaded payload's steps (apt lists from the loader)."""
    facts: list[StepFacts] = []
    for index, step in enumerate(loaded.model.steps()):
        spec: Any = step.spec
        python = getattr(spec, "python", None) if step.kind == "pip" else None
        packages: tuple[str, ...] = ()
        if step.kind == "apt" and index < len(loaded.inputs):
            extra = loaded.inputs[index].extra
            if isinstance(extra, tuple) and extra and isinstance(extra[0], list):
                packages = tuple(str(p) for p in extra[0])
        facts.append(StepFacts(index, step.kind,
                               python if isinstance(python, str) else None,
                               packages))
    return facts


def needs_base(steps: Iterable[StepFacts]) -> bool:
    """Return whether a step asks for ``python3.N`` (the base must be read)."""
    return any(s.python and requested_minor(s.python) is not None for s in steps)


def parse_version(text: str) -> tuple[int, int] | None:
    """Return (3, N) from ``Python 3.N.M`` or ``3.N.M``; None otherwise."""
    match = _VERSION_TEXT.search(text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def base_python(base_image: str, info: engine.ImageInfo) -> tuple[int, int] | None:
    """Return the base image's Python (major, minor), None when it says nothing.

    ``base-python.txt`` from the image (never run: copied out of a created
    container), else ``PYTHON_VERSION`` from its environment.
    """
    files = engine.read_image_files(base_image, MANIFEST_DIR, [BASE_PYTHON_FILE])
    recorded = files.get(BASE_PYTHON_FILE)
    if recorded is not None:
        version = parse_version(recorded.decode("utf-8", "replace"))
        if version is not None:
            return version
    return parse_version(info.env.get("PYTHON_VERSION", ""))


def raise_problems(loaded: LoadedPayload, problems: list[tuple[int, str]]) -> None:
    """Raise :class:`PayloadInvalid` naming payload.yaml, each field and line."""
    if not problems:
        return
    file = str(loaded.yaml_path)
    raise PayloadInvalid([
        Problem(file, f"install[{index}].pip.python", message,
                loaded.line_for(("install", index, "pip", "python")))
        for index, message in problems])


def check_against_base(loaded: LoadedPayload, base_image: str,
                       info: engine.ImageInfo) -> BaseCheck:
    """Check the payload's ``python3.N`` requests against an existing base.

    Raises
    ------
    PayloadInvalid
        When a requested interpreter cannot exist in the image.
    """
    facts = step_facts(loaded)
    if not needs_base(facts):
        return BaseCheck("not needed")
    version = base_python(base_image, info)
    if version is None:
        return BaseCheck("not done", f"the base image {base_image} records no "
                         f"Python version ({MANIFEST_DIR}/{BASE_PYTHON_FILE} or "
                         "PYTHON_VERSION); rebuild it with `nublado-build base`")
    raise_problems(loaded, base_problems(version, base_image, facts))
    return BaseCheck("done", base_python=f"{version[0]}.{version[1]}")
