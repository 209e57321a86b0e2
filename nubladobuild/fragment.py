r"""Dockerfile fragments (the ``dockerfile`` install kind): parse, check, splice.

A fragment is a short list of Dockerfile instructions that a payload adds to
the generated Dockerfile, in the final stage, as root, on the JupyterLab
base. Only instructions that cannot change how the image starts, which user
it runs as, or read from outside the payload directory are allowed:

``RUN``, ``COPY`` (sources inside the payload directory), ``ENV``, ``ARG``,
``WORKDIR`` and ``LABEL``.

Every other instruction is refused with the file, the line and the reason.
Line continuations (``\\`` at the end of a line) and comments follow the
Dockerfile rules: comment lines are dropped, also inside a continued
instruction.
"""

from __future__ import annotations

import glob
import json
import posixpath
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

#: Instructions a fragment may use.
ALLOWED = ("RUN", "COPY", "ENV", "ARG", "WORKDIR", "LABEL")
#: Refused instructions and why (other known ones get a generic reason).
REFUSED: dict[str, str] = {
    "FROM": "FROM starts a new build stage, but a fragment runs inside the "
            "payload stage on the JupyterLab base; to use files from another "
            "image, add a 'transplant' install step",
    "USER": "USER is refused: install steps run as root and nublado-build "
            "switches to the lab user at the end; use 'chown' in RUN or "
            "'COPY --chown' for file ownership",
    "ENTRYPOINT": "ENTRYPOINT is refused: the image starts JupyterLab with "
                  "runlab and a payload may not change how the container starts",
    "CMD": "CMD is refused: the image starts JupyterLab with runlab and a "
           "payload may not change how the container starts",
    "ONBUILD": "ONBUILD is refused: its instructions would run in images built "
               "FROM this one, where nothing validates them",
    "HEALTHCHECK": "HEALTHCHECK is refused: the Nublado controller checks the "
                   "lab's health; a payload may not change how the container runs",
    "ADD": "ADD is refused: it can download URLs and silently unpack archives, "
           "bringing in files that were never checked from outside the payload "
           "directory; use COPY for payload files and RUN (curl, tar) for "
           "downloads",
}
#: Other Dockerfile instructions: known, but not allowed in a fragment.
_KNOWN = ("EXPOSE", "VOLUME", "SHELL", "STOPSIGNAL", "MAINTAINER")
_RUN_MOUNT_TYPES = ("cache", "secret", "tmpfs")
_COPY_FLAGS = ("--chown", "--chmod")
_DIRECTIVE = re.compile(r"^#\s*(syntax|escape|check)\s*=", re.IGNORECASE)
_HEREDOC = re.compile(r"^<<-?[\"']?[A-Za-z_]")


@dataclass(frozen=True)
class Instruction:
    """One instruction of a fragment.

    Attributes
    ----------
    line : int
        The line (1-based) it starts on.
    keyword : str
        The instruction, upper case (``RUN``).
    args : str
        Its arguments, continuation lines joined with a space.
    lines : tuple of str
        Its physical lines as written (comment lines removed).

    """

    line: int
    keyword: str
    args: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class CopySpec:
    """A checked ``COPY``: flags, sources relative to the payload, destination."""

    flags: tuple[str, ...]
    sources: tuple[str, ...]
    dest: str


@dataclass(frozen=True)
class FragmentProblem:
    """A refused line of a fragment."""

    line: int
    message: str


@dataclass(frozen=True)
class Fragment:
    """A parsed and checked fragment.

    Attributes
    ----------
    instructions : tuple of Instruction
        Every instruction, in order.
    copies : dict of int to CopySpec
        The checked ``COPY`` instructions, by their index in ``instructions``.
    files : tuple of str
        Payload-relative paths of every file the ``COPY`` sources match.
    problems : tuple of FragmentProblem
        Refused lines; empty when the fragment can be spliced.

    """

    instructions: tuple[Instruction, ...]
    copies: dict[int, CopySpec]
    files: tuple[str, ...]
    problems: tuple[FragmentProblem, ...]

    @property
    def sets_workdir(self) -> bool:
        """Whether the fragment changes the working directory."""
        return any(i.keyword == "WORKDIR" for i in self.instructions)


def parse_fragment(text: str) -> tuple[list[Instruction], list[FragmentProblem]]:
    """Split fragment text into instructions, following Dockerfile line rules.

    Parameters
    ----------
    text
        The fragment's text.

    Returns
    -------
    tuple
        The instructions and the problems found while splitting (parser
        directives, a continuation at the end of the file).

    """
    instructions: list[Instruction] = []
    problems: list[FragmentProblem] = []
    start = 0
    physical: list[str] = []
    logical: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not physical:
            if not stripped:
                continue
            if stripped.startswith("#"):
                if _DIRECTIVE.match(stripped):
                    problems.append(FragmentProblem(number, "parser directives "
                                    f"({stripped}) have no effect in a fragment, "
                                    "which is spliced into a generated Dockerfile; "
                                    "remove the line"))
                continue
            start = number
        elif stripped.startswith("#") or not stripped:
            continue  # comments and blank lines inside a continued instruction
        physical.append(raw.rstrip())
        body = raw.rstrip()
        if body.endswith("\\"):
            logical.append(body[:-1].strip())
            continue
        logical.append(body.strip())
        instructions.append(_instruction(start, physical, logical))
        physical, logical = [], []
    if physical:
        problems.append(FragmentProblem(start, "the instruction ends with a line "
                                        "continuation ('\\') at the end of the file"))
    return instructions, problems


def _instruction(start: int, physical: list[str], logical: list[str]) -> Instruction:
    joined = " ".join(part for part in logical if part)
    keyword, _, args = joined.partition(" ")
    return Instruction(start, keyword.upper(), args.strip(), tuple(physical))


def _split_flags(args: str) -> tuple[list[str], str]:
    flags: list[str] = []
    rest = args
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    return flags, rest


def _check_run(instr: Instruction) -> str | None:
    flags, rest = _split_flags(instr.args)
    for flag in flags:
        name, _, value = flag.partition("=")
        if name != "--mount":
            return (f"RUN {name} is refused: only --mount=type=cache, secret or "
                    "tmpfs may be used in a fragment")
        options = dict(part.partition("=")[::2] for part in value.split(","))
        kind = options.get("type", "bind")
        if kind not in _RUN_MOUNT_TYPES:
            return (f"RUN --mount=type={kind} is refused: it can read another "
                    "image or the build context outside the payload; use COPY "
                    "(payload files) or a transplant step (other images); allowed "
                    f"mount types: {', '.join(_RUN_MOUNT_TYPES)}")
        if "from" in options:
            return ("RUN --mount with from= is refused: it reads another image "
                    "or stage; use a transplant step")
    if not rest:
        return "RUN needs a command"
    if _HEREDOC.match(rest):
        return ("RUN with a here-document (<<) is refused: it needs a newer "
                "Dockerfile syntax than the built-in frontend; write the commands "
                "on continued lines or COPY a script and RUN it")
    return None


def _copy_args(rest: str) -> list[str] | str:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            return "COPY in JSON form must be a valid JSON array of strings"
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "COPY in JSON form must be a valid JSON array of strings"
        return value
    try:
        return shlex.split(rest)
    except ValueError as exc:
        return f"COPY arguments cannot be split: {exc}"


def _check_copy(instr: Instruction, directory: Path
                ) -> tuple[CopySpec | None, list[str], str | None]:
    flags, rest = _split_flags(instr.args)
    for flag in flags:
        name = flag.partition("=")[0]
        if name == "--from":
            return None, [], ("COPY --from is refused: it copies from another "
                              "image or stage, outside the payload directory; "
                              "use a transplant step to copy from an image")
        if name not in _COPY_FLAGS:
            return None, [], (f"COPY {name} is refused: only "
                              f"{' and '.join(_COPY_FLAGS)} are allowed")
    args = _copy_args(rest)
    if isinstance(args, str):
        return None, [], args
    if len(args) < 2:
        return None, [], "COPY needs at least one source and a destination"
    *sources, dest = args
    root = directory.resolve()
    matched: list[str] = []
    for source in sources:
        problem = _source_problem(source)
        if problem:
            return None, [], problem
        normal = posixpath.normpath(source)
        hits = sorted(glob.glob(normal, root_dir=root)) if glob.has_magic(normal) \
            else [normal]
        if not hits:
            return None, [], (f"COPY source {source!r} matches no file in the "
                              f"payload directory {directory}")
        for hit in hits:
            path = root / hit
            try:
                path.resolve().relative_to(root)
            except ValueError:
                return None, [], (f"COPY source {source!r} resolves outside the "
                                  "payload directory (through a symbolic link)")
            if not path.exists():
                return None, [], (f"COPY source {source!r} does not exist in the "
                                  f"payload directory {directory}")
            matched.extend(_files_under(path, root))
    normalized = tuple(posixpath.normpath(s) for s in sources)
    return CopySpec(tuple(flags), normalized, dest), matched, None


def _source_problem(source: str) -> str | None:
    if "://" in source:
        return f"COPY source {source!r} is a URL; COPY takes payload files only"
    if "$" in source:
        return (f"COPY source {source!r} uses a variable; write payload paths "
                "literally so that they can be checked")
    if source.startswith("/"):
        return (f"COPY source {source!r} is absolute; sources are paths relative "
                "to the payload directory")
    normal = posixpath.normpath(source)
    if normal == ".." or normal.startswith("../"):
        return f"COPY source {source!r} escapes the payload directory ('..')"
    return None


def _files_under(path: Path, root: Path) -> list[str]:
    if path.is_file():
        return [path.relative_to(root).as_posix()]
    found = []
    for item in sorted(path.rglob("*")):
        if item.is_file():
            try:
                item.resolve().relative_to(root)
            except ValueError:
                continue
            found.append(item.relative_to(root).as_posix())
    return found


def _check(instr: Instruction, directory: Path
           ) -> tuple[CopySpec | None, list[str], str | None]:
    keyword = instr.keyword
    if keyword in REFUSED:
        return None, [], REFUSED[keyword]
    if keyword in _KNOWN:
        return None, [], (f"{keyword} is not allowed in a payload fragment "
                          f"(allowed: {', '.join(ALLOWED)})")
    if keyword not in ALLOWED:
        return None, [], (f"unknown instruction {keyword!r} (a fragment may use "
                          f"{', '.join(ALLOWED)})")
    if keyword == "COPY":
        return _check_copy(instr, directory)
    if keyword == "RUN":
        return None, [], _check_run(instr)
    if not instr.args:
        return None, [], f"{keyword} needs arguments"
    return None, [], None


def check_fragment(path: Path, directory: Path) -> Fragment:
    """Parse and check a fragment file of a payload.

    Parameters
    ----------
    path
        The fragment file.
    directory
        The payload directory; ``COPY`` sources must stay inside it.

    Returns
    -------
    Fragment
        The instructions, the files they copy, and every refused line.

    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return Fragment((), {}, (), (FragmentProblem(1, f"not UTF-8 text "
                                                     f"({exc.reason})"),))
    instructions, problems = parse_fragment(text)
    if not instructions and not problems:
        problems.append(FragmentProblem(1, "the fragment has no instructions"))
    copies: dict[int, CopySpec] = {}
    files: list[str] = []
    for index, instr in enumerate(instructions):
        spec, matched, problem = _check(instr, directory)
        if problem:
            problems.append(FragmentProblem(instr.line, problem))
        if spec is not None:
            copies[index] = spec
            files.extend(matched)
    problems.sort(key=lambda p: p.line)
    return Fragment(tuple(instructions), copies, tuple(sorted(set(files))),
                    tuple(problems))


@dataclass(frozen=True)
class Spliced:
    """One fragment instruction as the payload template writes it.

    Either ``lines`` (kept as written) or a ``COPY`` with ``copy_flags`` and
    ``copy_args`` (sources rewritten into the build context, JSON form).
    """

    line: int
    lines: tuple[str, ...] = ()
    copy_flags: tuple[str, ...] = ()
    copy_args: tuple[str, ...] = ()


def splice(fragment: Fragment, context_dir: str) -> tuple[Spliced, ...]:
    """Return the fragment's instructions for the payload Dockerfile template.

    ``COPY`` sources are moved under ``context_dir`` (where the payload files
    are put in the build context); every other instruction is kept as written.

    Parameters
    ----------
    fragment
        A fragment without problems.
    context_dir
        The build-context directory holding the copied payload files.

    Returns
    -------
    tuple of Spliced
        One entry per instruction, in order.

    """
    out: list[Spliced] = []
    for index, instr in enumerate(fragment.instructions):
        spec = fragment.copies.get(index)
        if spec is None:
            out.append(Spliced(instr.line, lines=instr.lines))
        else:
            args = tuple(posixpath.join(context_dir, s) for s in spec.sources)
            out.append(Spliced(instr.line, copy_flags=spec.flags,
                               copy_args=(*args, spec.dest)))
    return tuple(out)
