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

from nubladobuild.errors import InputError, LineFor, Loc, Problem
from nubladobuild.kernels import KernelFiles, kernel_files
from nubladobuild.resources import data_root
from nubladobuild.schema import LAB_ROOT, CompatLink, DnsLabel, Payload, _Strict
from nubladobuild.shell import shell_path

#: Where the links file goes in the build context.
LINKS_FILE = "compat/links.tsv"
#: Where apply-compat records the links it made, in the image.
RECORD_PATH = f"{LAB_ROOT}/compat-links.tsv"
#: Image label naming the profiles applied (comma-separated).
LABEL = "io.nublado.compat"
#: Paths a compat link may never be, or sit inside: the protected lab tree.
_PROTECTED = (f"{LAB_ROOT}/venv", f"{LAB_ROOT}/runlab", f"{LAB_ROOT}/build",
              f"{LAB_ROOT}/base-checksums.txt", f"{LAB_ROOT}/shell.d",
              "/usr/local/etc/jupyter", "/etc/profile.d/zz-nublado-payload.sh",
              "/etc/bash.bashrc")
#: Directories a link may not replace.
_SYSTEM_DIRS = frozenset((
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt",
    "/proc", "/root", "/run", "/sbin", "/sys", "/tmp", "/usr", "/usr/bin",  # noqa: S108
    "/usr/lib", "/usr/local", "/usr/local/bin", "/usr/local/lib",
    "/usr/local/share", "/usr/share", "/var", LAB_ROOT,
    "/usr/local/share/jupyter", "/usr/local/share/jupyter/kernels",
))



class Profile(_Strict):
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


class CompatError(ValueError):
    """A compat entry cannot be resolved for this payload."""


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


def _entries(payload: Payload, skip: set[str] | None = None
             ) -> list[tuple[Loc, str, CompatLink]]:
    """Return (YAML location, source, link) for every link, profiles expanded."""
    out: list[tuple[Loc, str, CompatLink]] = []
    for index, entry in enumerate(payload.compat):
        if isinstance(entry, str):
            if skip and entry in skip:
                continue
            for link in load_profile(entry).links:
                out.append((("compat", index), f"profile {entry}", link))
        else:
            out.append((("compat", index), f"payload.yaml compat[{index}]", entry))
    return out


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def compat_problems(payload: Payload, file: str, line_for: LineFor) -> list[Problem]:
    """Return every problem with a payload's compat entries.

    Unknown profiles, placeholders the payload cannot fill, duplicate link
    paths, links over the payload's generated files or the protected
    JupyterLab tree, and links nested inside other links.

    Parameters
    ----------
    payload
        The validated payload.
    file
        The payload.yaml path, for messages.
    line_for
        Maps a YAML location to its line number.

    Returns
    -------
    list of Problem
        Empty when the compat entries are sound.

    """
    problems: list[Problem] = []
    known = available_profiles()
    for index, entry in enumerate(payload.compat):
        if isinstance(entry, str) and entry not in known:
            problems.append(Problem(
                file, f"compat[{index}]",
                f"unknown compat profile {entry!r}; available: "
                f"{', '.join(known) or 'none'} (files in {profiles_dir()})",
                line_for(("compat", index))))
    try:
        entries = _entries(payload, skip=set(profile_names(payload)) - set(known))
    except InputError as exc:
        return [Problem(file, "compat", exc.message, line_for(("compat",)))]
    kernel = kernel_files(payload.kernel, payload.kernel_python)
    generated = {f"{kernel.spec_dir}/kernel.json": "the generated kernel.json",
                 shell_path(payload): "the generated shell setup"}
    if kernel.wrapper_path:
        generated[kernel.wrapper_path] = "the generated kernel wrapper"
    seen: dict[str, str] = {}
    for loc, source, link in entries:
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
            add(str(exc))
            continue
        if link.path in _SYSTEM_DIRS:
            add("a system directory cannot be replaced by a compat link")
        elif any(_inside(link.path, p) for p in _PROTECTED):
            add(f"inside the protected JupyterLab files ({LAB_ROOT}/venv, runlab, "
                "server config, shell hook); compat links may not go there")
        elif link.path in generated:
            add(f"is {generated[link.path]}; a compat link cannot replace it")
        elif link.path == target or _inside(target, link.path):
            add(f"target {target} is the link itself or inside it")
    paths = sorted(seen)
    for first, second in itertools.pairwise(paths):
        if _inside(second, first):
            problems.append(Problem(
                file, "compat", f"compat link {second} ({seen[second]}) is inside "
                f"compat link {first} ({seen[first]}); it would be written into "
                "the link's target. Drop one of them", line_for(("compat",))))
    return problems


def format_where(loc: Loc) -> str:
    """Format a compat location such as ``compat[1]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc)


def compat_links(payload: Payload) -> list[ResolvedLink]:
    """Return the payload's compat links, profiles expanded, targets resolved.

    Parameters
    ----------
    payload
        A payload that passed :func:`compat_problems` (the loader checks).

    Returns
    -------
    list of ResolvedLink
        In the order they are applied: profiles and explicit entries as
        listed in ``compat:``.

    Raises
    ------
    InputError
        When an entry cannot be resolved (not reached after validation).

    """
    kernel = kernel_files(payload.kernel, payload.kernel_python)
    links = []
    for _loc, source, link in _entries(payload):
        try:
            target = resolve_target(link.target, kernel)
        except CompatError as exc:
            raise InputError(f"{source}: {link.path}: {exc}") from None
        links.append(ResolvedLink(path=posixpath.normpath(link.path), target=target,
                                  mode=link.mode, source=source))
    return links


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


def compat_plan(payload: Payload) -> CompatPlan:
    """Return the compat plan of a validated payload."""
    return CompatPlan(profiles=tuple(profile_names(payload)),
                      links=tuple(compat_links(payload)))


def links_file(links: list[ResolvedLink] | tuple[ResolvedLink, ...]) -> bytes:
    """Return the links file apply-compat reads.

    One line per link: ``mode<TAB>path<TAB>target<TAB>source``.
    """
    lines = ["# nublado-build compat links: mode, path, target, source\n"]
    for link in links:
        lines.append("\t".join((link.mode, link.path, link.target, link.source))
                     + "\n")
    return "".join(lines).encode()
