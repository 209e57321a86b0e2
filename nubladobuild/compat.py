"""Compatibility links: legacy paths made to point at the new layout.

Profiles are data, one YAML file per profile in ``compat/`` (see
:func:`profiles_dir`): a name, a description and a list of links
``{path, target, mode}``. A payload opts in with ``compat: [PROFILE]`` and
may add explicit ``{path, target[, mode]}`` entries. Targets are absolute
paths in the image or placeholders for the payload's generated kernel
files (``{kernel.json}``, ``{kernel.wrapper}``, ``{kernel.dir}``), which
are resolved here per payload.

The build applies the resolved list with ``base/build/apply-compat`` (a
links file in the build context, one tab-separated line per link); that
script fails the build when a target does not exist in the image or when a
link path is already taken by a payload file.
"""

from __future__ import annotations

import itertools
import posixpath
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, StringConstraints, ValidationError

from nubladobuild.errors import (
    CompatError,
    InputError,
    LineFor,
    Loc,
    PayloadInvalid,
    Problem,
)
from nubladobuild.fields import (
    LAB_ROOT,
    PROTECTED_TREES,
    SYSTEM_DIRS,
    DnsLabel,
    Strict,
    inside,
)
from nubladobuild.kernels import KernelFiles
from nubladobuild.resources import data_root
from nubladobuild.schema import CompatLink, Payload

#: Where the links file goes in the build context.
LINKS_FILE = "compat/links.tsv"
#: Where apply-compat records the links it made, in the image.
RECORD_PATH = f"{LAB_ROOT}/compat-links.tsv"
#: Image label naming the profiles applied (comma-separated).
LABEL = "io.nublado.compat"
#: The parts of the lab tree a compat link may go into (everything else in
#: it is protected, like the trees in :data:`PROTECTED_TREES`).
_LAB_LINKABLE = (f"{LAB_ROOT}/versions-installed", f"{LAB_ROOT}/kernels")


def _protected(path: str) -> str | None:
    """Return why a compat link may not be at ``path``, or None."""
    if any(inside(path, root) and path != root for root in _LAB_LINKABLE):
        return None
    if path in SYSTEM_DIRS or path in _LAB_LINKABLE:
        return "a system directory cannot be replaced by a compat link"
    for root, reason in PROTECTED_TREES:
        if inside(path, root) or inside(root, path):
            return (f"{root} is {reason}; compat links may not go there or "
                    "replace a directory holding it")
    return None



class Profile(Strict):
    """One compat profile file."""

    name: DnsLabel
    description: Annotated[str, StringConstraints(max_length=4096)] = ""
    links: list[CompatLink] = Field(min_length=1)


@dataclass(frozen=True)
class ResolvedLink:
    """A link ready for the build: placeholders replaced by image paths.

    ``source`` names where the link came from, for messages
    (``profile nublado-legacy`` or ``payload.yaml compat[2]``).
    """

    path: str
    target: str
    mode: str
    source: str


def profiles_dir() -> Path:
    """Return the directory holding the compat profile files."""
    return data_root() / "compat"


def available_profiles() -> dict[str, Path]:
    """Return every shipped profile name and its file."""
    directory = profiles_dir()
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))}


@cache
def load_profile(name: str) -> Profile:
    """Load and validate a shipped compat profile.

    Parameters
    ----------
    name
        The profile name (its file is ``compat/<name>.yaml``).

    Returns
    -------
    Profile
        The validated profile.

    Raises
    ------
    InputError
        When no such profile exists, or its file is not a valid profile.

    """
    path = available_profiles().get(name)
    if path is None:
        raise InputError(f"unknown compat profile {name!r}; available: "
                         f"{', '.join(available_profiles()) or 'none'}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        profile = Profile.model_validate(data)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read compat profile: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: {where}: {first['msg']} "
                         f"({exc.error_count()} problem(s) in the profile)") from None
    if profile.name != name:
        raise InputError(f"{path}: name {profile.name!r} does not match the file "
                         f"name; rename one so both are {name!r}")
    return profile


def resolve_target(target: str, kernel: KernelFiles) -> str:
    """Replace a placeholder at the start of ``target`` with the image path.

    Parameters
    ----------
    target
        An absolute path, or ``{kernel.json}``, ``{kernel.wrapper}`` or
        ``{kernel.dir}`` optionally followed by ``/sub/path``.
    kernel
        The payload's generated kernel files.

    Raises
    ------
    CompatError
        When the placeholder names a file this payload does not have (a
        kernel without setup or env lines has no wrapper).

    """
    if not target.startswith("{"):
        return target
    head, _, rest = target.partition("}")
    head += "}"
    if head == "{kernel.json}":
        value = f"{kernel.spec_dir}/kernel.json"
    elif head == "{kernel.dir}":
        value = kernel.spec_dir
    elif head == "{kernel.wrapper}":
        if kernel.wrapper_path is None:
            raise CompatError(
                f"{{kernel.wrapper}}: kernel {kernel.name!r} has no wrapper script "
                "(it gets one only with kernel.setup or kernel.env lines); add "
                "setup lines or list explicit compat links instead of the profile")
        value = kernel.wrapper_path
    else:
        raise CompatError(f"unknown placeholder {head!r}")
    return value + rest


def profile_names(payload: Payload) -> list[str]:
    """Return the profiles a payload asks for, in order."""
    return [entry for entry in payload.compat if isinstance(entry, str)]


def _entries(payload: Payload) -> list[tuple[Loc, str, CompatLink]]:
    """Return (YAML location, source, link) for every link, profiles expanded."""
    out: list[tuple[Loc, str, CompatLink]] = []
    for index, entry in enumerate(payload.compat):
        if isinstance(entry, str):
            for link in load_profile(entry).links:
                out.append((("compat", index), f"profile {entry}", link))
        else:
            out.append((("compat", index), f"payload.yaml compat[{index}]", entry))
    return out


def profile_problems(raw: object, file: str, line_for: LineFor) -> list[Problem]:
    """Return load-time problems of ``compat:``: unknown or broken profiles.

    Parameters
    ----------
    raw
        The ``compat`` value as parsed from YAML (any shape).
    file
        The payload.yaml path, for messages.
    line_for
        Maps a YAML location to its line number.

    Returns
    -------
    list of Problem
        Empty when every named profile exists and is valid.
    """
    problems: list[Problem] = []
    known = available_profiles()
    for index, entry in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(entry, str):
            continue
        where, line = f"compat[{index}]", line_for(("compat", index))
        if entry not in known:
            problems.append(Problem(
                file, where, f"unknown compat profile {entry!r}; available: "
                f"{', '.join(known) or 'none'} (files in {profiles_dir()})", line))
            continue
        try:
            load_profile(entry)
        except InputError as exc:
            problems.append(Problem(file, where, exc.message, line))
    return problems


def _link_problems(payload: Payload, kernel: KernelFiles,
                   generated: dict[str, str], file: str,
                   line_for: LineFor) -> list[Problem]:
    """Return the problems of the payload's links, given its kernel files."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for loc, source, link in _entries(payload):
        where = format_where(loc)
        line = line_for(loc)

        def add(message: str, where: str = where, line: int | None = line,
                source: str = source, path: str = link.path) -> None:
            problems.append(Problem(file, where, f"{source}: {path}: {message}", line))

        if link.path in seen:
            add(f"duplicate compat link path (also from {seen[link.path]}); "
                "keep one")
            continue
        seen[link.path] = source
        try:
            target = resolve_target(link.target, kernel)
        except CompatError as exc:
            add(exc.message)
            continue
        reason = _protected(link.path)
        if reason is not None:
            add(reason)
        elif link.path in generated:
            add(f"is {generated[link.path]}; a compat link cannot replace it")
        elif link.path == target or inside(target, link.path):
            add(f"target {target} is the link itself or inside it")
    paths = sorted(seen)
    for first, second in itertools.pairwise(paths):
        if inside(second, first):
            problems.append(Problem(
                file, "compat", f"compat link {second} ({seen[second]}) is inside "
                f"compat link {first} ({seen[first]}); it would be written into "
                "the link's target. Drop one of them", line_for(("compat",))))
    return problems


def format_where(loc: Loc) -> str:
    """Format a compat location such as ``compat[1]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc)


@dataclass(frozen=True)
class CompatPlan:
    """The compat part of a build plan: profiles, links and the links file."""

    profiles: tuple[str, ...] = ()
    links: tuple[ResolvedLink, ...] = ()
    file: str = LINKS_FILE

    @property
    def label(self) -> str:
        """Return the value of the ``io.nublado.compat`` label."""
        return ",".join(self.profiles) if self.profiles else "explicit"


def compat_plan(payload: Payload, kernel: KernelFiles, generated: dict[str, str],
                file: str, line_for: LineFor) -> CompatPlan:
    """Return the compat plan of a payload, from the plan's own kernel files.

    Parameters
    ----------
    payload
        The validated payload.
    kernel
        The kernel files the plan generates (placeholders resolve to them).
    generated
        Other generated paths (path -> description) a link may not replace.
    file
        The payload.yaml path, for messages.
    line_for
        Maps a YAML location to its line number.

    Returns
    -------
    CompatPlan
        The profiles and the resolved links, in the order they apply.

    Raises
    ------
    PayloadInvalid
        With every problem of the links.
    """
    problems = _link_problems(payload, kernel, generated, file, line_for)
    if problems:
        raise PayloadInvalid(problems)
    links = tuple(ResolvedLink(path=posixpath.normpath(link.path),
                               target=resolve_target(link.target, kernel),
                               mode=link.mode, source=source)
                  for _loc, source, link in _entries(payload))
    return CompatPlan(profiles=tuple(profile_names(payload)), links=links)


def links_file(links: list[ResolvedLink] | tuple[ResolvedLink, ...]) -> bytes:
    """Return the links file apply-compat reads.

    One line per link: ``mode<TAB>path<TAB>target<TAB>source``.
    """
    lines = ["# nublado-build compat links: mode, path, target, source\n"]
    for link in links:
        lines.append("\t".join((link.mode, link.path, link.target, link.source))
                     + "\n")
    return "".join(lines).encode()
