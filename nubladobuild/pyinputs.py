"""The inputs of a pip step besides a requirements file, read at load time.

A pip step names one source (``kernels/pip.py``): a requirements file, the
payload's own project (``project: .``), the PEP 621 dependencies of a
``pyproject.toml`` (``pyproject:``), a ``uv.lock``, a ``Pipfile.lock`` or a
``Pipfile``. This module reads each format and turns what it can into the
text of a requirements file the step installs (``uv.lock`` is exported by uv
in the image, so that uv's own marker and group logic applies); every
problem names the file and, where the format has them, the line.

The payload's project directories are copied into the image at
:data:`PROJECT_ROOT` (``.`` is the root itself, ``sub`` is
``PROJECT_ROOT/sub``), so that an editable install (``-e .``) stays
importable at run time.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from nubladobuild.requirements import canonical, parse_requirements

__all__ = ["KERNEL_SUPPORT_PREFIX", "PROJECT_ROOT", "ProjectFiles", "SourceText",
           "UvLock", "image_path", "kernel_support_added", "load_toml",
           "pipfile_lock_requirements", "pipfile_requirements",
           "project_extras", "project_files", "project_problem",
           "pyproject_requirements", "read_uv_lock"]

#: Where the payload's project directories are copied in the image: outside
#: the lab tree, next to the default venv, read-only for the lab user.
PROJECT_ROOT = "/opt/payload/project"
#: How the payload manifest (``base/build/write-manifest``) names each package
#: the tool added to a lock for the kernel: ``# kernel-support-added: NAME
#: VERSION`` (no ``==``, so readers of ``name==version`` lines skip it).
KERNEL_SUPPORT_PREFIX = "# kernel-support-added: "
#: Directories never copied with a project (caches, VCS, build output).
_SKIP_DIRS = ("__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache",
              ".tox", ".nox", "build", "dist", "node_modules")
#: A project directory copied into the image is at most this big ...
MAX_PROJECT_BYTES = 256 * 1024 * 1024
#: ... and holds at most this many files.
MAX_PROJECT_FILES = 20_000
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def image_path(relative: str) -> str:
    """Return where a payload-relative project directory is in the image.

    Parameters
    ----------
    relative
        A normalized payload-relative directory (``.`` or ``sub/dir``).

    Returns
    -------
    str
        ``PROJECT_ROOT`` for ``.``, else ``PROJECT_ROOT/relative``.
    """
    return PROJECT_ROOT if relative == "." else f"{PROJECT_ROOT}/{relative}"


def load_toml(text: str, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """Parse TOML; return the data or a problem naming ``name:LINE``.

    Parameters
    ----------
    text
        The file's contents.
    name
        The file's payload-relative name, for the message.

    Returns
    -------
    tuple
        ``(data, None)``, or ``(None, message)`` when the TOML is invalid.
    """
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        where = f"{name}:{found.group(1)}" if found else name
        reason = _TOML_LINE.sub("", str(exc)).strip()
        return None, f"{where}: not valid TOML ({reason}); fix the file"


def _line_of(text: str, pattern: str) -> str:
    """Return ``:N`` for the first line matching ``pattern``, else ``""``."""
    regex = re.compile(pattern)
    for number, line in enumerate(text.splitlines(), start=1):
        if regex.search(line):
            return f":{number}"
    return ""


def project_problem(directory: Path, relative: str) -> str | None:
    """Return why a payload-relative directory is not a Python project, or None.

    It must be inside the payload directory (symbolic links included), be a
    directory, and hold ``pyproject.toml`` or ``setup.py``.
    """
    path = directory / relative
    try:
        resolved = path.resolve(strict=True)
        resolved.relative_to(directory.resolve())
    except (OSError, RuntimeError):
        return (f"directory {relative!r} does not exist in the payload directory "
                f"{directory}; create it or fix the path")
    except ValueError:
        return (f"{relative!r} resolves outside the payload directory {directory}; "
                "move the project into it")
    if not resolved.is_dir():
        return f"{relative!r} is not a directory; name the project's directory"
    if not ((resolved / "pyproject.toml").is_file()
            or (resolved / "setup.py").is_file()):
        where = "the payload directory" if relative == "." else repr(relative)
        return (f"{where} has no pyproject.toml or setup.py, so it is not a Python "
                "project; add one, or remove the line and list packages by name")
    return None


@dataclass
class ProjectFiles:
    """The files of a project directory, as the step copies them.

    Attributes
    ----------
    files : dict of str to bytes
        Contents by path relative to the payload directory.
    modes : dict of str to int
        Their modes (0755 or 0644).
    problems : list of str
        What could not be copied, and why.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def project_files(directory: Path, relative: str,
                  exclude: Iterable[str] = ()) -> ProjectFiles:
    """Read every file of a project directory (hidden files and caches aside).

    Parameters
    ----------
    directory
        The payload directory.
    relative
        The project's directory in it (checked by :func:`project_problem`).
    exclude
        Payload-relative paths left out (``payload.yaml``, the tests).

    Returns
    -------
    ProjectFiles
        Files keyed by payload-relative path, and the problems found.
    """
    out = ProjectFiles()
    root = (directory / relative).resolve()
    top = directory.resolve()
    skip = tuple(exclude)
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and d not in _SKIP_DIRS
                             and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(top).as_posix()
            if name.startswith(".") or rel in skip or \
                    any(rel.startswith(s.rstrip("/") + "/") for s in skip if s):
                continue
            try:
                target = path.resolve(strict=True)
                target.relative_to(top)
                mode = target.stat().st_mode
            except (OSError, RuntimeError):
                out.problems.append(f"project file {rel!r} is a symbolic link that "
                                    "loops or points to nothing; remove it")
                continue
            except ValueError:
                out.problems.append(f"project file {rel!r} is a symbolic link out "
                                    "of the payload directory; copy the file in")
                continue
            if not stat.S_ISREG(mode):
                continue
            data = target.read_bytes()
            total += len(data)
            if total > MAX_PROJECT_BYTES or len(out.files) >= MAX_PROJECT_FILES:
                out.problems.append(
                    f"the project {relative!r}, which the step copies into the "
                    f"image, is over {MAX_PROJECT_BYTES >> 20} MiB or "
                    f"{MAX_PROJECT_FILES} files; move large data out of it")
                return out
            out.files[rel] = data
            out.modes[rel] = 0o755 if mode & stat.S_IXUSR else 0o644
    return out


def project_extras(pyproject: Mapping[str, Any]) -> set[str] | None:
    """Return the project's extras when ``pyproject.toml`` declares them statically.

    None when they are ``dynamic`` or there is no ``[project]`` table (a
    setup.py project): then the extras cannot be checked before the build.
    """
    project = pyproject.get("project")
    if not isinstance(project, dict) or "optional-dependencies" in \
            project.get("dynamic", []):
        return None
    extras = project.get("optional-dependencies", {})
    return {canonical(k) for k in extras} if isinstance(extras, dict) else None


@dataclass(frozen=True)
class SourceText:
    """A source converted to the text of a requirements file.

    Attributes
    ----------
    text : str
        The requirements, one per line (with hashes when the source has them).
    names : frozenset of str
        Normalized names it lists.
    problems : tuple of str
        Why the source cannot be installed (file and line first).
    """

    text: str
    names: frozenset[str] = frozenset()
    problems: tuple[str, ...] = ()


def _groups_problem(name: str, what: str, unknown: list[str],
                    available: Iterable[str]) -> str:
    known = sorted(available)
    listed = ", ".join(known) if known else "none"
    return (f"{name} has no {what} {', '.join(repr(u) for u in unknown)}; "
            f"available: {listed}")


def _dependency_group(groups: Mapping[str, Any], name: str, file: str,
                      seen: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Expand a PEP 735 dependency group (``include-group`` entries included)."""
    by_canon = {canonical(k): k for k in groups}
    key = by_canon[canonical(name)]
    if canonical(name) in seen:
        return [], [f"{file}: dependency group {key!r} includes itself "
                    f"({' -> '.join((*seen, canonical(name)))}); break the cycle"]
    entries = groups[key]
    if not isinstance(entries, list):
        return [], [f"{file}: [dependency-groups] {key} must be a list"]
    out: list[str] = []
    problems: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
            included = entry["include-group"]
            if canonical(included) not in by_canon:
                problems.append(f"{file}: dependency group {key!r} includes "
                                f"{included!r}, which is not defined")
                continue
            more, why = _dependency_group(groups, included, file,
                                          (*seen, canonical(name)))
            out += more
            problems += why
        else:
            problems.append(f"{file}: [dependency-groups] {key}: {entry!r} is "
                            "neither a requirement nor {include-group = ...}")
    return out, problems


def pyproject_requirements(data: Mapping[str, Any], text: str, name: str,
                           groups: Iterable[str]) -> SourceText:
    """Turn ``[project].dependencies`` and named groups into requirements.

    The project itself is not installed. Each group name is looked up in
    ``[project.optional-dependencies]`` (PEP 621) and ``[dependency-groups]``
    (PEP 735); a requirement naming the project itself with extras
    (``demo[plot]``, a common way to combine extras) is expanded.

    Parameters
    ----------
    data
        The parsed ``pyproject.toml``.
    text
        Its text (for line numbers).
    name
        Its payload-relative name.
    groups
        The group names the step asks for.

    Returns
    -------
    SourceText
        The requirements (unhashed) and any problems.
    """
    project = data.get("project")
    if not isinstance(project, dict):
        return SourceText("", problems=(
            f"{name} has no [project] table (PEP 621), so it declares no "
            "dependencies nublado-build can read; install the project with "
            "`project:` instead",))
    dynamic = project.get("dynamic", [])
    if "dependencies" in dynamic:
        line = _line_of(text, r"^\s*dynamic\s*=")
        return SourceText("", problems=(
            f"{name}{line}: the dependencies are "
            "declared dynamic (computed by the build backend), so they cannot "
            "be read without building the project; use `project:` to install "
            "the project with its dependencies",))
    problems: list[str] = []
    extras = project.get("optional-dependencies", {})
    extras = extras if isinstance(extras, dict) else {}
    dep_groups = data.get("dependency-groups", {})
    dep_groups = dep_groups if isinstance(dep_groups, dict) else {}
    wanted = list(dict.fromkeys(groups))
    extra_names = {canonical(k): k for k in extras}
    group_names = {canonical(k) for k in dep_groups}
    unknown = [g for g in wanted
               if canonical(g) not in extra_names and canonical(g) not in group_names]
    if unknown:
        problems.append(_groups_problem(
            name, "optional-dependencies or dependency-groups group", unknown,
            list(extras) + list(dep_groups)))
    if unknown and "optional-dependencies" in dynamic:
        problems[-1] += ("; its optional-dependencies are dynamic: use `project:` "
                         "with `extras:`")
    self_name = canonical(str(project.get("name", "")))
    lines: list[str] = []
    done: set[str] = set()

    def add(requirement: str, origin: str) -> None:
        try:
            parsed = Requirement(requirement)
        except InvalidRequirement as exc:
            problems.append(f"{name}: {origin}: {requirement!r} is not a valid "
                            f"requirement ({exc}); fix it")
            return
        if self_name and canonical(parsed.name) == self_name:
            for extra in sorted(parsed.extras):
                add_extra(extra)
            return
        lines.append(requirement)

    def add_extra(extra: str) -> None:
        key = extra_names.get(canonical(extra))
        if key is None or key in done:
            return
        done.add(key)
        values = extras[key]
        for requirement in values if isinstance(values, list) else []:
            add(str(requirement), f"optional-dependencies {key}")

    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list):
        problems.append(f"{name}: [project].dependencies must be a list")
        dependencies = []
    for requirement in dependencies:
        add(str(requirement), "dependencies")
    for group in wanted:
        if canonical(group) in extra_names:
            add_extra(group)
        if canonical(group) in group_names:
            more, why = _dependency_group(dep_groups, group, name)
            problems += why
            for requirement in more:
                add(requirement, f"dependency-groups {group}")
    body = "".join(f"{line}\n" for line in dict.fromkeys(lines))
    parsed = parse_requirements(body)
    for number, message in parsed.problems:
        problems.append(f"{name}: {body.splitlines()[number - 1]!r}: {message}")
    return SourceText(body, parsed.names, tuple(problems))


@dataclass(frozen=True)
class UvLock:
    """What the loader checked of a ``uv.lock`` and its ``pyproject.toml``.

    Attributes
    ----------
    names : frozenset of str
        Normalized names of the locked packages.
    args : tuple of str
        uv export's options for the step's groups (``--extra``, ``--group``).
    problems : tuple of str
        Why it cannot be installed.
    """

    names: frozenset[str]
    args: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def read_uv_lock(lock_text: str, lock_name: str, pyproject_text: str,
                 pyproject_name: str, groups: Iterable[str]) -> UvLock:
    """Check a ``uv.lock`` and map the step's groups to uv's options.

    Parameters
    ----------
    lock_text, lock_name
        The lock's text and payload-relative name.
    pyproject_text, pyproject_name
        The ``pyproject.toml`` next to it.
    groups
        Extras (``[project.optional-dependencies]``) or dependency groups
        (``[dependency-groups]``, ``[tool.uv] dev-dependencies`` as ``dev``).

    Returns
    -------
    UvLock
        The locked names, uv export's group options and any problems.
    """
    problems: list[str] = []
    lock, why = load_toml(lock_text, lock_name)
    if why:
        problems.append(why)
    pyproject, why = load_toml(pyproject_text, pyproject_name)
    if why:
        problems.append(why)
    if lock is None or pyproject is None:
        return UvLock(frozenset(), problems=tuple(problems))
    if not isinstance(lock.get("version"), int):
        problems.append(f"{lock_name} has no integer `version`, so it is not a "
                        "uv.lock; make it with `uv lock`")
    packages = lock.get("package")
    if not isinstance(packages, list) or not packages:
        problems.append(f"{lock_name} has no [[package]] entries, so it is not a "
                        "uv.lock of anything; make it with `uv lock`")
        packages = []
    names = frozenset(canonical(str(p.get("name", ""))) for p in packages
                      if isinstance(p, dict))
    tool_uv = pyproject.get("tool", {}).get("uv", {})
    if isinstance(tool_uv, dict) and "workspace" in tool_uv:
        line = _line_of(pyproject_text, r"workspace")
        problems.append(f"{pyproject_name}{line}: declares a uv workspace, which "
                        "a payload step cannot export member by member; lock a "
                        "single project")
    project = pyproject.get("project")
    project = project if isinstance(project, dict) else {}
    extras = project.get("optional-dependencies", {})
    extras = extras if isinstance(extras, dict) else {}
    dep_groups = dict(pyproject.get("dependency-groups", {}) or {})
    if isinstance(tool_uv, dict) and tool_uv.get("dev-dependencies"):
        dep_groups.setdefault("dev", [])
    extra_names = {canonical(k): k for k in extras}
    group_names = {canonical(k): k for k in dep_groups}
    args: list[str] = []
    unknown: list[str] = []
    for group in dict.fromkeys(groups):
        if canonical(group) in extra_names:
            args += ["--extra", extra_names[canonical(group)]]
        elif canonical(group) in group_names:
            args += ["--group", group_names[canonical(group)]]
        else:
            unknown.append(group)
    if unknown:
        problems.append(_groups_problem(
            pyproject_name, "optional-dependencies or dependency-groups group",
            unknown, list(extras) + list(dep_groups)))
    return UvLock(names, tuple(args), tuple(problems))


def _lock_entry(name: str, entry: Any, section: str, where: str
                ) -> tuple[str | None, str | None]:
    """Return one Pipfile.lock entry as a hash-checked requirement, or a problem."""
    if not isinstance(entry, dict):
        return None, f"{where}: {section}.{name} is not an object"
    for local in ("path", "file", "editable", "git", "hg", "svn", "bzr"):
        if local in entry:
            return None, (f"{where}: {section}.{name} is installed from {local} "
                          f"({entry[local]!r}), which a hash-checked install "
                          "cannot take; list the project by name (or install "
                          "the payload's own project with `project:`)")
    version = entry.get("version")
    hashes = entry.get("hashes")
    if not isinstance(version, str) or not version.startswith("=="):
        return None, (f"{where}: {section}.{name} has no pinned version "
                      "(\"version\": \"==X\"); lock again with `pipenv lock`")
    if not isinstance(hashes, list) or not hashes or \
            not all(isinstance(h, str) and h.startswith("sha256:") for h in hashes):
        return None, (f"{where}: {section}.{name} has no sha256 hashes; lock again "
                      "with `pipenv lock`")
    extras = entry.get("extras")
    head = name + (f"[{','.join(sorted(extras))}]" if isinstance(extras, list)
                   and extras else "") + version
    markers = entry.get("markers")
    if isinstance(markers, str) and markers.strip():
        head += f" ; {markers.strip()}"
    lines = [head] + [f"    --hash={h}" for h in sorted(set(hashes))]
    return " \\\n".join(lines) + "\n", None


def pipfile_lock_requirements(text: str, name: str,
                              groups: Iterable[str]) -> SourceText:
    """Convert a ``Pipfile.lock`` (read with plette) into hash-checked requirements.

    ``default`` always, then each named section (``develop``, or another
    category), each package once.

    Parameters
    ----------
    text
        The lock's text (JSON).
    name
        Its payload-relative name.
    groups
        Sections besides ``default``.

    Returns
    -------
    SourceText
        ``name==version ; markers`` with ``--hash`` lines, and any problems.
    """
    import plette

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return SourceText("", problems=(
            f"{name}:{exc.lineno}: not valid JSON ({exc.msg}); a Pipfile.lock is "
            "JSON written by `pipenv lock`",))
    try:
        lock = plette.Lockfile(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return SourceText("", problems=(
            f"{name}: not a Pipfile.lock ({exc}); make it with `pipenv lock`",))
    sections = [k for k in lock._data if k != "_meta"]
    wanted = ["default", *dict.fromkeys(g for g in groups if g != "default")]
    unknown = [g for g in wanted if g not in sections]
    if unknown:
        return SourceText("", problems=(_groups_problem(
            name, "section", unknown, [s for s in sections if s != "default"]),))
    chosen: dict[str, tuple[str, str]] = {}
    blocks: list[str] = []
    problems: list[str] = []
    for section in wanted:
        packages = lock._data[section]
        for package in sorted(packages):
            key = re.escape(json.dumps(package))
            where = name + _line_of(text, rf"^\s*{key}\s*:")
            version = packages[package].get("version") \
                if isinstance(packages[package], dict) else None
            first = chosen.get(canonical(package))
            if first is not None:
                if first[1] != version:
                    problems.append(f"{where}: {package} is locked at {version} in "
                                    f"{section} but at {first[1]} in {first[0]}; "
                                    "lock again with `pipenv lock`")
                continue
            block, why = _lock_entry(package, packages[package], section, where)
            if why:
                problems.append(why)
                continue
            assert block is not None
            chosen[canonical(package)] = (section, str(version))
            blocks.append(block)
    return SourceText("".join(blocks), frozenset(chosen), tuple(problems))


#: Pipfile keys that are PEP 508 marker names (``os_name = "== 'posix'"``).
_MARKER_KEYS = ("os_name", "sys_platform", "platform_machine",
                "platform_python_implementation", "platform_release",
                "platform_system", "platform_version", "python_version",
                "python_full_version", "implementation_name",
                "implementation_version")


def _pipfile_entry(name: str, value: Any, where: str
                   ) -> tuple[str | None, str | None]:
    """Return one Pipfile package as a requirement line, or a problem."""
    if isinstance(value, str):
        return name + ("" if value.strip() == "*" else value.strip()), None
    if not isinstance(value, dict):
        return None, f"{where}: {name} must be a version string or a table"
    for local in ("path", "file", "editable", "git", "hg", "svn", "bzr"):
        if local in value:
            return None, (f"{where}: {name} is installed from {local} "
                          f"({value[local]!r}), which is not in the build; list "
                          "the project by name, or install the payload's own "
                          "project with `project:`")
    version = str(value.get("version", "*")).strip()
    extras = value.get("extras")
    line = name + (f"[{','.join(sorted(map(str, extras)))}]"
                   if isinstance(extras, list) and extras else "")
    line += "" if version == "*" else version
    markers = [str(value["markers"])] if value.get("markers") else []
    markers += [f"{key} {value[key]}" for key in _MARKER_KEYS if key in value]
    if markers:
        line += " ; " + " and ".join(f"({m})" if len(markers) > 1 else m
                                     for m in markers)
    return line, None


def pipfile_requirements(text: str, name: str, groups: Iterable[str]) -> SourceText:
    """Convert a ``Pipfile`` (read with plette) into unhashed requirements.

    ``[packages]`` always, then each named section (``dev-packages`` or a
    custom category).

    Parameters
    ----------
    text
        The Pipfile's text (TOML).
    name
        Its payload-relative name.
    groups
        Sections besides ``packages``.

    Returns
    -------
    SourceText
        The requirements and any problems.
    """
    import plette

    data, why = load_toml(text, name)
    if data is None:
        return SourceText("", problems=(why or f"{name}: not valid TOML",))
    try:
        plette.Pipfile(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return SourceText("", problems=(
            f"{name}: not a valid Pipfile ({exc}); fix it",))
    reserved = ("source", "requires", "scripts", "pipfile", "pipenv")
    sections = [k for k in data if k not in reserved]
    wanted = ["packages", *dict.fromkeys(g for g in groups if g != "packages")]
    unknown = [g for g in wanted if g != "packages" and g not in sections]
    if unknown:
        return SourceText("", problems=(_groups_problem(
            name, "section", unknown, [s for s in sections if s != "packages"]),))
    lines: list[str] = []
    problems: list[str] = []
    for section in wanted:
        packages = data.get(section, {})
        if not isinstance(packages, dict):
            problems.append(f"{name}: [{section}] must be a table")
            continue
        for package, value in packages.items():
            key = re.escape(package)
            where = name + _line_of(text, rf'^\s*"?{key}"?\s*=')
            line, why = _pipfile_entry(package, value, where)
            if why:
                problems.append(why)
            elif line is not None:
                lines.append(line)
    body = "".join(f"{line}\n" for line in dict.fromkeys(lines))
    parsed = parse_requirements(body)
    for number, message in parsed.problems:
        problems.append(f"{name}: {body.splitlines()[number - 1]!r}: {message}")
    return SourceText(body, parsed.names, tuple(problems))


def kernel_support_added(manifest: str) -> dict[str, str]:
    """Return what nublado-build added to a payload lock for the kernel.

    Parameters
    ----------
    manifest
        A payload manifest (``versions-installed/payload-<name>.txt``).

    Returns
    -------
    dict of str to str
        ``name -> version`` from its ``# kernel-support-added:`` lines;
        empty for a manifest without them (every manifest before them).
    """
    added: dict[str, str] = {}
    for line in manifest.splitlines():
        if line.startswith(KERNEL_SUPPORT_PREFIX):
            name, _, version = line[len(KERNEL_SUPPORT_PREFIX):].strip().partition(" ")
            if name and version:
                added[name] = version.strip()
    return added
