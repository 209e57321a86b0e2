"""``nublado-build init``: a payload.yaml from a repo2docker (Binder) repository.

The configuration directory is chosen as repo2docker chooses it:
``binder/`` or ``.binder/`` (never both), else the repository root; files
outside it are ignored. The environment follows repo2docker's build packs,
first match wins:

1. ``environment.yml`` (or ``.yaml``): a conda step;
2. ``Pipfile.lock``, else ``Pipfile``: a pip step (``pipfile_lock`` or
   ``pipfile``, with the dev section, as repo2docker's ``pipenv install
   --dev``); the repository itself is not installed;
3. the Python build pack: ``requirements.txt`` (a pip step), then, at the
   root only, the repository as a Python project (``setup.py``, or a
   ``pyproject.toml`` with ``[project]`` and ``[build-system]``) as a
   ``project: .`` step. A ``uv.lock`` next to ``pyproject.toml`` (which
   repo2docker does not read) becomes a ``uv_lock`` step instead of
   ``requirements.txt``.

``runtime.txt``'s ``python-3.X`` becomes the pip steps' ``python``;
``apt.txt`` an apt step (first), ``postBuild`` a script step (last),
``start`` the start hook. Everything else is listed as not mapped, with
the reason.
"""

from __future__ import annotations

import json
import re
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nubladobuild.errors import InputError
from nubladobuild.fields import control_characters
from nubladobuild.kinds import KINDS
from nubladobuild.schema import RESERVED_NAMES, Payload

PAYLOAD_FILE = "payload.yaml"
#: The configuration directories repo2docker reads, in its order.
CONFIG_DIRS = ("binder", ".binder")
#: Files init reads in the configuration directory, in the order listed.
CONFIG_FILES = ("environment.yml", "environment.yaml", "Pipfile", "Pipfile.lock",
                "requirements.txt", "apt.txt", "postBuild", "start", "runtime.txt",
                "Dockerfile", "install.R", "Project.toml", "REQUIRE", "default.nix")
#: Files repo2docker reads only at the root, when there is no config directory
#: (``uv.lock`` it does not read at all; init does, next to pyproject.toml).
ROOT_ONLY_FILES = ("setup.py", "pyproject.toml", "uv.lock", "DESCRIPTION")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_RUNTIME_PYTHON = re.compile(r"^python-(3)(?:\.([0-9]+))?(\.[0-9]+)?\Z")
#: A requirements line that installs the repository itself (``.``, ``-e .``).
_LOCAL_PROJECT = re.compile(
    r"^(?:-e\s+|--editable[=\s]+)?\.(?:\[[^\]]*\])?/?\s*(?:#.*)?\Z")

_R_HINT = ("install R with an apt step (r-base, r-cran-irkernel) and add an R "
           "kernel under kernels: (see payloads/r-lab)")
_REASONS = {
    "Dockerfile": "a whole Dockerfile is not supported (repo2docker would build "
                  "it instead of the other files); port its RUN, COPY and ENV "
                  "lines to a dockerfile fragment step",
    "install.R": f"R packages from install.R are not installed by init: {_R_HINT}, "
                 "then install the packages with Debian's r-cran-* packages or a "
                 "script step running install.R",
    "DESCRIPTION": f"an R package (DESCRIPTION) is not installed by init: "
                   f"{_R_HINT}",
    "Project.toml": "Julia environments are not supported",
    "REQUIRE": "Julia environments are not supported",
    "default.nix": "Nix environments are not supported",
}


@dataclass(frozen=True)
class Mapped:
    """A repository file that became an install step."""

    file: str
    kind: str
    note: str = ""


@dataclass(frozen=True)
class NotMapped:
    """A repository file that init could not turn into payload.yaml."""

    file: str
    reason: str


@dataclass(frozen=True)
class InitResult:
    """What init makes of a repository: the payload and the listing."""

    directory: Path
    config_dir: str
    payload: dict[str, Any]
    mapped: tuple[Mapped, ...]
    not_mapped: tuple[NotMapped, ...]
    text: str

    @property
    def path(self) -> Path:
        """Return where payload.yaml goes."""
        return self.directory / PAYLOAD_FILE

    def as_json(self) -> dict[str, Any]:
        """Return the result for ``--json``."""
        return {
            "directory": str(self.directory),
            "config_dir": self.config_dir,
            "payload": self.payload,
            "mapped": [{"file": m.file, "kind": m.kind, "note": m.note}
                       for m in self.mapped],
            "not_mapped": [{"file": n.file, "reason": n.reason}
                           for n in self.not_mapped],
        }

    def listing(self) -> str:
        """Return the mapped and not-mapped files as text, one per line."""
        lines = [f"mapped: {m.file} -> {m.kind}" + (f" ({m.note})" if m.note else "")
                 for m in self.mapped]
        lines += [f"not mapped: {n.file}: {n.reason}" for n in self.not_mapped]
        return "\n".join(lines)


def config_dir(directory: Path) -> str:
    """Return repo2docker's configuration directory: ``binder``, ``.binder`` or ``""``.

    Raises
    ------
    InputError
        When both ``binder/`` and ``.binder/`` exist (repo2docker refuses too).
    """
    found = [d for d in CONFIG_DIRS if (directory / d).is_dir()]
    if len(found) > 1:
        raise InputError(f"{directory}: has both binder/ and .binder/; repo2docker "
                         "reads only one of them. Remove one and run init again.")
    return found[0] if found else ""


def _rel(config: str, name: str) -> str:
    return f"{config}/{name}" if config else name


def repo2docker_files(directory: Path) -> list[str]:
    """Return the repo2docker files in ``directory`` (relative paths), if any.

    Never raises: used for hints in other commands' messages.
    """
    try:
        config = config_dir(directory)
    except InputError:
        config = CONFIG_DIRS[0]
    names = CONFIG_FILES + (() if config else ROOT_ONLY_FILES)
    return [_rel(config, n) for n in names if (directory / config / n).is_file()]


def derive_name(raw: str) -> str:
    """Return a DNS label made from a directory name.

    Lower case; every run of characters other than ``a-z0-9`` becomes one
    ``-``; leading and trailing ``-`` go; at most 63 characters.

    Raises
    ------
    InputError
        When nothing is left, or the name is reserved: pass ``--name``.
    """
    label = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[:63].rstrip("-")
    if not label:
        raise InputError(f"cannot make an image name from the directory name "
                         f"{raw!r}; pass --name NAME (a DNS label)")
    return check_name(label, f"the name {label!r} (from the directory name)")


def check_name(name: str, what: str = "") -> str:
    """Return ``name`` when it is a valid, unreserved payload name."""
    what = what or f"--name {name!r}"
    if not _DNS_LABEL.match(name):
        raise InputError(f"{what} is not valid: use a DNS label: lowercase letters, "
                         "digits and '-', at most 63 characters, starting and "
                         "ending with a letter or digit")
    if name in RESERVED_NAMES:
        raise InputError(f"{what} is reserved (it would tag over {name}:latest); "
                         "pass --name NAME")
    return name


def _display_name(raw: str, name: str) -> str:
    text = "".join(" " if control_characters(c) else c for c in raw)
    text = " ".join(text.split())[:128].strip()
    return text or name


def _read_text(path: Path) -> str | None:
    """Return a file's UTF-8 text, None when it cannot be read (the loader says why)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _toml(path: Path) -> dict[str, Any]:
    """Return a TOML file's tables; empty when it is missing or invalid."""
    text = _read_text(path)
    try:
        return tomllib.loads(text) if text is not None else {}
    except tomllib.TOMLDecodeError:
        return {}


def is_python_project(directory: Path) -> bool:
    """Return whether repo2docker installs the root as a Python project.

    As its Python build pack decides: a ``setup.py``, or a ``pyproject.toml``
    with both ``[project]`` and ``[build-system]``.
    """
    if (directory / "setup.py").is_file():
        return True
    data = _toml(directory / "pyproject.toml")
    return "project" in data and "build-system" in data


def installs_project(requirements: Path) -> bool:
    """Return whether a requirements file has a ``.`` or ``-e .`` line."""
    text = _read_text(requirements) or ""
    return any(_LOCAL_PROJECT.match(line.strip()) for line in text.splitlines())


def _dev_group(path: Path, lock: bool) -> list[str]:
    """Return the dev section of a Pipfile(.lock) when it lists anything.

    repo2docker runs ``pipenv install --dev``: the dev packages too.
    """
    if lock:
        text = _read_text(path)
        try:
            data = json.loads(text) if text is not None else {}
        except ValueError:
            return []
        section = "develop"
    else:
        data, section = _toml(path), "dev-packages"
    return [section] if isinstance(data, dict) and data.get(section) else []


@dataclass(frozen=True)
class _Runtime:
    """What ``runtime.txt`` asks for: a Python minor version, or why not mapped."""

    python: str = ""
    not_mapped: NotMapped | None = None


def _runtime(directory: Path, rel: str, env_kind: str) -> _Runtime:
    text = _read_text(directory / rel)
    if text is None:
        return _Runtime(not_mapped=NotMapped(rel, "cannot be read as UTF-8 text"))
    first = (text.strip().split("\n") or [""])[0].strip()
    match = _RUNTIME_PYTHON.match(first)
    if match and match.group(2) is None:
        return _Runtime(not_mapped=NotMapped(
            rel, f"{first!r} asks for Python 3 without a minor version: pip steps "
            "use the base image's python3 already"))
    if match:
        version = f"3.{match.group(2)}"
        if env_kind == "pip":
            return _Runtime(python=f"python{version}")
        if env_kind == "conda":
            how = (f"the conda environment's own Python is used: pin "
                   f"python={version} in environment.yml")
        else:
            how = ("repo2docker takes a Pipfile's Python from its [requires]; "
                   "the pip step uses the base image's python3")
        return _Runtime(not_mapped=NotMapped(rel, f"asks for Python {version}: "
                                             f"{how}"))
    if first.lower().startswith("r-"):
        return _Runtime(not_mapped=NotMapped(
            rel, f"asks for R ({first}), which init does not map: {_R_HINT}"))
    return _Runtime(not_mapped=NotMapped(
        rel, f"{first!r} is not a runtime init knows (python-3.X)"))


def _start(directory: Path, rel: str) -> Mapped:
    """Map repo2docker's ``start`` to the start hook; say if it is not executable."""
    note = ("runs at lab start, before the server, as the lab user, at most 60 s; "
            "it must end with exec \"$@\"")
    try:
        mode = (directory / rel).stat().st_mode
    except OSError:
        mode = 0
    if not mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        note += (f"; it is not executable in the repository: run `chmod +x {rel}` "
                 "(repo2docker and nublado-build both install it executable, so it "
                 "runs either way)")
    return Mapped(rel, "start", note)


def plan_init(directory: Path, name: str | None = None) -> InitResult:
    """Read a repo2docker repository and make its payload.yaml (not written).

    Raises
    ------
    InputError
        When the directory is missing, the name cannot be made, or nothing
        gives the kernel an environment (no environment.yml, Pipfile(.lock),
        requirements.txt or, at the root, Python project that repo2docker
        would use).
    """
    if not directory.is_dir():
        raise InputError(f"{directory}: directory does not exist. Pass the "
                         "repository directory that holds binder/ or the "
                         "repo2docker files.")
    config = config_dir(directory)
    raw_name = directory.resolve().name
    name = check_name(name) if name is not None else derive_name(raw_name)
    where = f"{config}/" if config else "the repository root"

    def has(file: str) -> bool:
        return (directory / config / file).is_file()

    mapped: list[Mapped] = []
    not_mapped: list[NotMapped] = []
    steps: list[dict[str, Any]] = []
    if config:  # repo2docker ignores the root's files when there is a config dir
        for file in CONFIG_FILES + ROOT_ONLY_FILES:
            if (directory / file).is_file():
                not_mapped.append(NotMapped(file, f"ignored: repo2docker reads only "
                                            f"{config}/ when it exists"))
    if has("apt.txt"):
        rel = _rel(config, "apt.txt")
        if "apt" in KINDS:
            steps.append({"apt": {"file": rel}})
            mapped.append(Mapped(rel, "apt"))
        else:
            not_mapped.append(NotMapped(rel, "Debian packages (the apt kind) are "
                                        "not supported by this nublado-build"))
    env_kind, pip_steps = _environment(directory, config, has, steps, mapped,
                                       not_mapped)
    if has("postBuild"):
        rel = _rel(config, "postBuild")
        steps.append({"script": {"path": rel, "prefix": f"/opt/{name}"}})
        mapped.append(Mapped(rel, "script", f"runs as root at build time with "
                             f"PAYLOAD_PREFIX=/opt/{name}, not as the notebook user "
                             "inside the environment as repo2docker runs it; check "
                             "what it writes where"))
    start: dict[str, Any] | None = None
    if has("start"):
        rel = _rel(config, "start")
        start = {"script": rel}
        mapped.append(_start(directory, rel))
    for file in ("Dockerfile", "install.R", "Project.toml", "REQUIRE", "default.nix"):
        if has(file):
            not_mapped.append(NotMapped(_rel(config, file), _REASONS[file]))
    if not config and has("DESCRIPTION"):
        not_mapped.append(NotMapped("DESCRIPTION", _REASONS["DESCRIPTION"]))
    if has("runtime.txt"):
        rel = _rel(config, "runtime.txt")
        runtime = _runtime(directory, rel, env_kind)
        if runtime.not_mapped is not None:
            not_mapped.append(runtime.not_mapped)
        else:
            for step in pip_steps:
                step["python"] = runtime.python
            mapped.append(Mapped(rel, "pip.python", f"{runtime.python} makes the "
                                 "venv; validate and build check that the base "
                                 "image has it"))

    if not env_kind:
        looked = ("binder/ or .binder/, then " if not config else "") + \
            ", ".join(CONFIG_FILES + (() if config else ROOT_ONLY_FILES))
        found = "".join(f"\n  not mapped: {n.file}: {n.reason}" for n in not_mapped)
        found += "".join(f"\n  found: {m.file} ({m.kind})" for m in mapped)
        root = "" if config else ", or a Python project (setup.py, or " \
            "pyproject.toml with [project] and [build-system])"
        raise InputError(
            f"{directory}: nothing gives the kernel an environment: init needs an "
            f"environment.yml, a Pipfile.lock or Pipfile, a requirements.txt{root} "
            f"in {where} (looked for {looked}). Add one, or write payload.yaml by "
            f"hand (see the README).{found}")

    payload: dict[str, Any] = {
        "name": name,
        "description": f"Made by nublado-build init from the repo2docker files in "
                       f"{where}",
        "install": steps,
    }
    if start is not None:
        payload["start"] = start
    payload["kernel"] = {"name": name, "display_name": _display_name(raw_name, name)}
    _validate(payload, directory)
    result = InitResult(directory, config, payload, tuple(mapped), tuple(not_mapped),
                        "")
    return InitResult(directory, config, payload, tuple(mapped), tuple(not_mapped),
                      render(result))


def _environment(directory: Path, config: str, has: Callable[[str], bool],
                 steps: list[dict[str, Any]],
                 mapped: list[Mapped], not_mapped: list[NotMapped]
                 ) -> tuple[str, list[dict[str, Any]]]:
    """Add the environment's steps as repo2docker's build packs pick them.

    Returns the environment's kind (``conda``, ``pipenv``, ``pip`` or ``""``)
    and the pip steps' settings (``runtime.txt`` sets their ``python``).
    """
    root_project = [f for f in ("setup.py", "pyproject.toml", "uv.lock")
                    if not config and has(f)]
    env_file = next((f for f in ("environment.yml", "environment.yaml") if has(f)),
                    "")
    pipfile = next((f for f in ("Pipfile.lock", "Pipfile") if has(f)), "")
    if env_file:
        rel = _rel(config, env_file)
        steps.append({"conda": {"environment": rel}})
        mapped.append(Mapped(rel, "conda", "the environment's own Python runs the "
                             "kernel; list python and ipykernel in it"))
        ignored = [f for f in ("environment.yaml", "Pipfile", "Pipfile.lock",
                               "requirements.txt") if f != env_file and has(f)]
        not_mapped.extend(NotMapped(_rel(config, f), f"ignored: repo2docker uses "
                                    f"{env_file} when it exists") for f in ignored)
        not_mapped.extend(NotMapped(f, f"ignored: with {env_file} repo2docker does "
                                    "not install the repository itself")
                          for f in root_project)
        return "conda", []
    if pipfile:
        rel = _rel(config, pipfile)
        lock = pipfile == "Pipfile.lock"
        pip: dict[str, Any] = {"pipfile_lock" if lock else "pipfile": rel}
        groups = _dev_group(directory / rel, lock)
        if groups:
            pip["groups"] = groups
        steps.append({"pip": pip})
        what = ("hash-checked, as locked" if lock else
                "unlocked, resolved at build time (commit a Pipfile.lock to pin it)")
        dev = f" and [{groups[0]}]" if groups else ""
        mapped.append(Mapped(rel, "pip", f"a venv made with the base image's python3; "
                             f"[{'default' if lock else 'packages'}]{dev} installed "
                             f"{what}, as repo2docker's pipenv install --dev does"))
        if lock and has("Pipfile"):
            not_mapped.append(NotMapped(_rel(config, "Pipfile"), "ignored: "
                                        "Pipfile.lock is installed instead, as "
                                        "repo2docker does (pipenv --ignore-pipfile)"))
        if has("requirements.txt"):
            not_mapped.append(NotMapped(_rel(config, "requirements.txt"),
                                        f"ignored: repo2docker uses {pipfile} when "
                                        "it exists"))
        not_mapped.extend(NotMapped(f, f"ignored: repo2docker's {pipfile} build does "
                                    "not install the repository itself")
                          for f in root_project)
        return "pipenv", [pip]
    pip_steps: list[dict[str, Any]] = []
    uv_lock = not config and has("uv.lock") and has("pyproject.toml")
    if uv_lock:
        pip_steps.append({"uv_lock": "uv.lock"})
        mapped.append(Mapped("uv.lock", "pip", "repo2docker does not read uv.lock; "
                             "nublado-build installs the locked dependencies "
                             "(uv export --frozen, hash-checked) into a venv made "
                             "with the base image's python3"))
        if has("requirements.txt"):
            not_mapped.append(NotMapped("requirements.txt", "ignored: uv.lock pins "
                                        "the project's environment; add a pip step "
                                        "for it if it holds more"))
    elif has("requirements.txt"):
        rel = _rel(config, "requirements.txt")
        pip_steps.append({"requirements": rel})
        mapped.append(Mapped(rel, "pip", "a venv made with the base image's "
                             "python3; ipykernel is added when missing"))
    project = not config and is_python_project(directory)
    if project:
        file = "setup.py" if has("setup.py") else "pyproject.toml"
        if not uv_lock and has("requirements.txt") \
                and installs_project(directory / "requirements.txt"):
            not_mapped.append(NotMapped(file, "requirements.txt installs the "
                                        "repository itself already (a . line)"))
        else:
            pip_steps.append({"project": "."})
            mapped.append(Mapped(file, "pip", "the repository installed as a Python "
                                 "project (pip install .), as repo2docker does; "
                                 "copied to /opt/payload/project in the image"))
    elif not config and has("pyproject.toml") and not uv_lock:
        not_mapped.append(NotMapped("pyproject.toml", "not a Python project "
                                    "repo2docker installs (it needs [project] and "
                                    "[build-system]); for its dependencies only, "
                                    "add a pip step `pyproject: pyproject.toml`"))
    if not config and has("uv.lock") and not has("pyproject.toml"):
        not_mapped.append(NotMapped("uv.lock", "uv.lock without pyproject.toml: "
                                    "uv needs both"))
    steps.extend({"pip": pip} for pip in pip_steps)
    return ("pip" if pip_steps else ""), pip_steps


def _validate(payload: dict[str, Any], directory: Path) -> None:
    """Check the payload against the schema (a safety net: init makes valid ones)."""
    try:
        Payload.model_validate(payload)
    except ValidationError as exc:  # pragma: no cover - init makes valid payloads
        raise InputError(f"{directory}: init made an invalid payload: {exc}") \
            from None


def render(result: InitResult) -> str:
    """Return the payload.yaml text: a header comment, then the payload."""
    where = f"{result.config_dir}/" if result.config_dir else "the repository root"
    lines = ["# Made by `nublado-build init` from the repo2docker files in "
             f"{where}:",
             f"#   {', '.join(m.file for m in result.mapped)}"]
    notes = [m for m in result.mapped if m.note]
    if notes:
        lines.append("# Check:")
        lines += [f"#   - {m.file}: {m.note}" for m in notes]
    if result.not_mapped:
        lines.append("# Not mapped:")
        lines += [f"#   - {n.file}: {n.reason}" for n in result.not_mapped]
    lines.append("# Then run `nublado-build validate` on this directory.")
    body = yaml.safe_dump(result.payload, sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=4096)
    return "\n".join(lines) + "\n" + body


def write_payload(result: InitResult, force: bool = False) -> Path:
    """Write ``result`` as payload.yaml; refuse to replace one unless ``force``."""
    path = result.path
    if (path.exists() or path.is_symlink()) and not force:
        raise InputError(f"{path}: already exists; init does not overwrite it. Pass "
                         "--force to replace it, or --dry-run to see what init "
                         "would write.")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(f"{path}: is not a regular file; remove it and run init "
                         "again.")
    path.write_text(result.text, encoding="utf-8")
    return path


def check_written(directory: Path) -> list[str]:
    """Return the problems ``nublado-build validate`` finds in the written payload."""
    from nubladobuild.errors import PayloadInvalid
    from nubladobuild.loader import load_payload

    try:
        load_payload(directory)
    except PayloadInvalid as exc:
        return [p.render() for p in exc.problems]
    except InputError as exc:
        return [exc.message]
    return []
