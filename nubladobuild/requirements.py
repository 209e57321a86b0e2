"""Read a pip requirements file far enough to plan its install.

Only what the plan needs: the package names, whether it is hash-locked, and
options we cannot carry into the build (includes of other files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_INCLUDE = re.compile(r"^\s*(-r|-c|--requirement|--constraint)(\s|=)")


def canonical(name: str) -> str:
    """Return the PEP 503 normalized form of a project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirements:
    """What the plan needs to know about a requirements file."""

    names: frozenset[str]
    hashed: bool
    includes: tuple[int, ...]

    def has(self, name: str) -> bool:
        """Return whether the file names a project (normalized comparison)."""
        return canonical(name) in self.names


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not buf:
            start = number
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def parse_requirements(path: Path) -> Requirements:
    """Parse a requirements file.

    Parameters
    ----------
    path
        The requirements file.

    Returns
    -------
    Requirements
        Normalized names, whether any line carries ``--hash``, and the line
        numbers of ``-r``/``-c`` includes.
    """
    names: set[str] = set()
    hashed = False
    includes: list[int] = []
    for number, line in _logical_lines(path.read_text(encoding="utf-8")):
        if not line.strip():
            continue
        if _INCLUDE.match(line):
            includes.append(number)
            continue
        if "--hash" in line:
            hashed = True
        match = _NAME.match(line)
        if match and not line.lstrip().startswith("-"):
            names.add(canonical(match.group(1)))
    return Requirements(frozenset(names), hashed, tuple(includes))
