"""Read a pip requirements file far enough to plan and police its install.

What the plan needs (the package names, whether it is hash-locked) and what
the payload boundary refuses: options that would change where packages come
from (the operator's index settings always win), includes of other files,
and local paths or URLs outside the payload.
"""

from __future__ import annotations

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
_LOCAL = re.compile(r"^(\.|/|~|file:|-e\b|--editable\b|[A-Za-z0-9._-]+\s*@\s*"
                    r"(file:|\.|/)|[^\s;@]*/[^\s;]*$|[^\s;@]+\.(whl|zip|tar\.gz|"
                    r"tgz|tar\.bz2|tar\.xz|tar)(\s|;|$))", re.IGNORECASE)


def canonical(name: str) -> str:
    """Return the PEP 503 normalized form of a project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


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
    """

    names: frozenset[str]
    hashed: bool
    problems: tuple[tuple[int, str], ...] = ()

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


def parse_requirements(text: str) -> Requirements:
    """Parse the text of a requirements file.

    Parameters
    ----------
    text
        The file's contents.

    Returns
    -------
    Requirements
        Normalized names, whether any line carries ``--hash``, and the lines
        the payload boundary refuses.
    """
    names: set[str] = set()
    hashed = False
    problems: list[tuple[int, str]] = []
    text = text.removeprefix("\ufeff")  # pip drops a UTF-8 BOM too
    for number, line in _logical_lines(text):
        if not line.strip():
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
    return Requirements(frozenset(names), hashed, tuple(problems))
