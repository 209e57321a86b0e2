"""Read a pip requirements file far enough to plan and police its install.

What the plan needs (the package names, whether it is hash-locked) and what
the payload boundary refuses: options that would change where packages come
from (the operator's index settings always win), includes of other files,
and local paths or URLs outside the payload.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
#: Options that pull in other files (any spelling, attached or not).
_INCLUDE = re.compile(r"^(-r|-c|--requirement|--constraint)(?=[\s=]|\S)")
#: Options that change where packages come from.
_INDEX = re.compile(r"^(-i|-f|--index-url|--extra-index-url|--trusted-host|"
                    r"--find-links|--no-index|--index|--extra-index|--trusted|"
                    r"--find|--pre-index)(?=[\s=]|\S|$)")
#: Options that are harmless for the install (pip accepts them per line).
_ALLOWED_OPTIONS = ("--hash", "--prefer-binary", "--only-binary", "--no-binary",
                    "--pre", "--use-feature", "--config-settings")
#: Requirement forms that point at the file system: paths, file URLs,
#: editables, archives and wheels named as files, directories with a "/".
#: A line naming a project directory of the payload: ``.`` or ``./sub``,
#: editable (``-e``/``--editable``) or not, with extras or not.
_PROJECT_LINE = re.compile(
    r"^(?P<editable>(?:-e|--editable)(?:\s+|\s*=\s*))?"
    r"(?P<path>\.(?:/[A-Za-z0-9._+/-]*)?)(?P<extras>\[[A-Za-z0-9._,\s-]*\])?$")
_LOCAL = re.compile(r"^(\.|/|~|file:|-e\b|--editable\b|[A-Za-z0-9._-]+\s*@\s*"
                    r"(file:|\.|/)|[^\s;@]*/[^\s;]*$|[^\s;@]+\.(whl|zip|tar\.gz|"
                    r"tgz|tar\.bz2|tar\.xz|tar)(\s|;|$))", re.IGNORECASE)


def canonical(name: str) -> str:
    """Return the PEP 503 normalized form of a project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class ProjectLine:
    """A requirements line naming a project directory of the payload.

    Attributes
    ----------
    line : int
        Its line number.
    path : str
        The directory relative to the payload directory, normalized (``.``).
    editable : bool
        Whether it is installed editable (``-e``).
    extras : str
        Its extras as written (``[plot]``), or ``""``.
    """

    line: int
    path: str
    editable: bool
    extras: str = ""


@dataclass(frozen=True)
class Requirements:
    """What the plan needs to know about a requirements file.

    Attributes
    ----------
    names : frozenset of str
        Normalized project names.
    hashed : bool
        Whether any line carries ``--hash``.
    problems : tuple of (int, str)
        Refused lines: line number and the reason.
    projects : tuple of ProjectLine
        Lines naming a project directory of the payload (``.``, ``-e .``).
    """

    names: frozenset[str]
    hashed: bool
    problems: tuple[tuple[int, str], ...] = ()
    projects: tuple[ProjectLine, ...] = ()

    def has(self, name: str) -> bool:
        """Return whether the file names a project (normalized comparison)."""
        return canonical(name) in self.names


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip()
        line = "" if stripped.startswith("#") else re.split(r"\s#", raw, maxsplit=1)[0]
        if not buf:
            start = number
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1]
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _line_problem(line: str) -> str | None:
    head = line.strip()
    if _INCLUDE.match(head):
        return ("includes another file with -r/-c; flatten it into one file "
                "(pip-compile does)")
    if _INDEX.match(head):
        return ("sets where packages come from (index, find-links or trusted "
                "host); the operator's index settings apply to every build, so "
                "remove the line")
    if _LOCAL.match(head):
        return ("installs from a local path or file URL, which is not in the "
                "build; list the project by name (or use a `script` step)")
    if head.startswith("-") and not head.startswith(_ALLOWED_OPTIONS):
        option = head.split()[0].split("=")[0]
        return (f"option {option} is not allowed in a payload's requirements; "
                f"allowed: {', '.join(_ALLOWED_OPTIONS)}")
    return None


def parse_requirements(text: str, *, projects: bool = False) -> Requirements:
    """Parse the text of a requirements file.

    Parameters
    ----------
    text
        The file's contents.
    projects
        Accept lines naming a project directory of the payload (``.``,
        ``-e ./sub``; a pip step copies them into the image) instead of
        refusing them as local paths.

    Returns
    -------
    Requirements
        Normalized names, whether any line carries ``--hash``, and the lines
        the payload boundary refuses.
    """
    names: set[str] = set()
    hashed = False
    problems: list[tuple[int, str]] = []
    named: list[ProjectLine] = []
    text = text.removeprefix("\ufeff")  # pip drops a UTF-8 BOM too
    for number, line in _logical_lines(text):
        if not line.strip():
            continue
        project = _PROJECT_LINE.match(line.strip()) if projects else None
        if project is not None:
            path = posixpath.normpath(project.group("path"))
            if path == ".." or path.startswith("../"):
                problems.append((number, f"{project.group('path')!r} is outside "
                                 "the payload directory; move the project in"))
            else:
                named.append(ProjectLine(number, path,
                                         bool(project.group("editable")),
                                         project.group("extras") or ""))
            continue
        problem = _line_problem(line)
        if problem is not None:
            problems.append((number, problem))
            continue
        if "--hash" in line:
            hashed = True
        match = _NAME.match(line)
        if match and not line.lstrip().startswith("-"):
            names.add(canonical(match.group(1)))
        for option in re.findall(r"\s(-[-A-Za-z]+)", line):
            if option != "--hash" and not option.startswith(_ALLOWED_OPTIONS):
                problems.append((number, f"option {option} is not allowed after a "
                                 "requirement; only --hash may follow it"))
    if hashed:
        for line_of in named:
            problems.append((line_of.line, "names a project directory of the "
                             "payload, but the file is hash-locked (--hash) and "
                             "pip refuses a path in hash-checking mode; install "
                             "the project in a step of its own (`pip: {project: "
                             ".}`)"))
    return Requirements(frozenset(names), hashed, tuple(problems), tuple(named))


def rewrite_projects(text: str, root: str) -> str:
    """Point each project line (``.``, ``-e ./sub``) at its copy under ``root``.

    Parameters
    ----------
    text
        A requirements file.
    root
        Where the payload's project directories are in the image.

    Returns
    -------
    str
        The text with those lines rewritten (``-e ROOT/sub[extras]``), every
        other line as it was.
    """
    out: list[str] = []
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        code = "" if body.lstrip().startswith("#") else \
            re.split(r"\s#", body, maxsplit=1)[0]
        match = _PROJECT_LINE.match(code.strip())
        if match is None:
            out.append(raw)
            continue
        path = posixpath.normpath(match.group("path"))
        where = root if path == "." else f"{root}/{path}"
        out.append(("-e " if match.group("editable") else "") + where
                   + (match.group("extras") or "") + raw[len(body):])
    return "".join(out)
