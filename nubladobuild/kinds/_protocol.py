"""The small protocol every install kind implements, and what it passes around.

A kind is a module under :mod:`nubladobuild.kinds` that defines ``KIND``, a
:class:`Kind`: its pydantic model, the fields that name payload files, a
``load`` function (read and check its files, at load time, through a
:class:`StepContext`), a pure ``plan`` function and the Python
:class:`Environment` it provides (if any). Its Dockerfile template is
``templates/steps/<name>.j2`` (and ``<name>-stage.j2`` when ``stage``).
"""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nubladobuild.errors import LineFor, Loc, Problem
from nubladobuild.fields import Strict

if TYPE_CHECKING:
    from nubladobuild.schema import Payload

#: Referenced files larger than this are refused (requirements, scripts...).
MAX_INPUT_BYTES = 16 * 1024 * 1024
#: A payload directory copied into a build (script steps) is at most this big.
MAX_TREE_BYTES = 256 * 1024 * 1024
#: ... and holds at most this many files.
MAX_TREE_FILES = 20_000


@dataclass(frozen=True)
class Environment:
    """A Python environment an install step provides.

    Attributes
    ----------
    prefix : str
        Its root directory.
    python : str
        Its interpreter.
    flavour : {"venv", "conda", "plain"}
        How it is activated (``VIRTUAL_ENV``, ``CONDA_PREFIX`` or nothing).
    """

    prefix: str
    python: str
    flavour: Literal["venv", "conda", "plain"] = "plain"

    @property
    def bin(self) -> str:
        """Return the directory of the interpreter (first on PATH)."""
        return posixpath.dirname(self.python)

    @property
    def activation(self) -> list[tuple[str, str]]:
        """Return the variables activating this environment would set."""
        if self.flavour == "venv":
            return [("VIRTUAL_ENV", self.prefix)]
        if self.flavour == "conda":
            return [("CONDA_PREFIX", self.prefix),
                    ("CONDA_DEFAULT_ENV", posixpath.basename(self.prefix))]
        return []


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
        File modes for ``files`` that are not 0644.
    """

    index: int
    kind: str
    dir: str
    files: dict[str, bytes] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    stage_template: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)


@dataclass
class StepInput:
    """What a kind read from the payload directory at load time.

    Attributes
    ----------
    files : dict of str to bytes
        File contents by path relative to the payload directory.
    modes : dict of str to int
        Their modes (0755 for executables, else 0644).
    extra : Any
        Anything else the kind parsed and its plan needs (a fragment, an
        environment file).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    extra: Any = None


@dataclass
class StepContext:
    """Load-time access to the payload directory for one step.

    Every read goes through :meth:`read`, which refuses paths outside the
    payload directory, special files and oversized files, naming the field.
    Problems are collected, never raised.
    """

    index: int
    kind: str
    directory: Path
    file: str
    line_for: LineFor
    kernel_python: str | None
    payload_name: str
    exclude: tuple[str, ...] = ()
    #: Loading for ``nublado-build lock``: lock files may be missing or
    #: stale (the command is about to write them).
    locking: bool = False
    problems: list[Problem] = field(default_factory=list)
    input: StepInput = field(default_factory=StepInput)

    def loc(self, *fields: str | int) -> Loc:
        """Return the YAML location of one of this step's fields."""
        return ("install", self.index, self.kind, *fields)

    def problem(self, fields: tuple[str | int, ...] | str, message: str) -> None:
        """Record a problem at one of this step's fields."""
        parts = (fields,) if isinstance(fields, str) else fields
        loc = self.loc(*parts)
        where = f"install[{self.index}].{self.kind}" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
        self.problems.append(Problem(self.file, where, message, self.line_for(loc)))

    def read(self, field_name: str, relative: str) -> bytes | None:
        """Read a payload file named by ``field_name``; None after a problem."""
        data = read_payload_file(self.directory, relative,
                                 lambda msg: self.problem(field_name, msg))
        if data is not None:
            self.input.files[relative] = data
            self.input.modes[relative] = file_mode(self.directory / relative)
        return data


def file_mode(path: Path) -> int:
    """Return 0755 for an executable file, else 0644 (modes the context keeps)."""
    return 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644


def special_kind(mode: int) -> str | None:
    """Name what a non-regular, non-directory file is (FIFO, socket, device)."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return None


def read_payload_file(directory: Path, relative: str,
                      report: Callable[[str], None]) -> bytes | None:
    """Read a file inside ``directory``, reporting why it cannot be used.

    Parameters
    ----------
    directory
        The payload directory.
    relative
        The file's path relative to it (already checked for ``..``).
    report
        Called with a message for each problem.

    Returns
    -------
    bytes or None
        The contents, or None when a problem was reported.
    """
    path = directory / relative
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        kind = "a symbolic link to nothing" if path.is_symlink() else None
        report(f"file {relative!r} does not exist in {directory}"
               + (f" (it is {kind})" if kind else "") + "; create it or fix the path")
        return None
    except (RuntimeError, OSError) as exc:  # symlink loops and the like
        report(f"{relative!r} cannot be resolved ({type(exc).__name__}: a symbolic "
               "link loop?); replace it with a regular file")
        return None
    try:
        resolved.relative_to(directory.resolve())
    except ValueError:
        report(f"{relative!r} resolves outside the payload directory {directory} "
               "(a symbolic link?); copy the file into the payload directory")
        return None
    mode = resolved.stat().st_mode
    if stat.S_ISDIR(mode):
        report(f"{relative!r} is a directory; name a file")
        return None
    special = special_kind(mode)
    if special is not None:
        report(f"{relative!r} is {special}, not a regular file")
        return None
    size = resolved.stat().st_size
    if size > MAX_INPUT_BYTES:
        report(f"file {relative!r} is larger than {MAX_INPUT_BYTES // (1024 * 1024)}"
               " MiB")
        return None
    return resolved.read_bytes()


@dataclass(frozen=True)
class Kind:
    """An install kind: one module behind this record.

    Attributes
    ----------
    name : str
        The key in ``install:`` (``pip``) and the template name.
    model : type
        The pydantic model of the step's settings.
    load : callable
        ``load(spec, ctx)``: read and check the step's files through the
        :class:`StepContext`; problems go to ``ctx``, contents to ``ctx.input``.
    plan : callable
        ``plan(index, spec, step_input, payload) -> StepPlan``; pure.
    environment : callable
        ``environment(spec, payload_name) -> Environment | None``: the Python
        environment the step provides.
    stage : bool
        Whether the kind has a stage template (``<name>-stage.j2``).
    files : tuple of str
        Fields naming payload files: checked even when other settings of
        the step are invalid, so that every problem shows at once.
    """

    name: str
    model: type[Strict]
    load: Callable[[Any, StepContext], None]
    plan: Callable[[int, Any, StepInput, Payload], StepPlan]
    environment: Callable[[Any, str], Environment | None]
    stage: bool = False
    files: tuple[str, ...] = ()

    @property
    def template(self) -> str:
        """Return the step template's name."""
        return f"steps/{self.name}.j2"

    @property
    def stage_template(self) -> str | None:
        """Return the stage template's name, when the kind has one."""
        return f"steps/{self.name}-stage.j2" if self.stage else None

    def step_dir(self, index: int) -> str:
        """Return the step's directory in the build context."""
        return f"steps/{index:02d}-{self.name}"
