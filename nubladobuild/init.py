"""``nublado-build init``: a payload.yaml from a repo2docker (Binder) repository.

The configuration directory is chosen as repo2docker chooses it:
``binder/`` or ``.binder/`` (never both), else the repository root; files
outside it are ignored. Of the environment files the first match wins, as
repo2docker's build packs do: ``environment.yml`` (conda), then
``Pipfile``/``Pipfile.lock``, then ``requirements.txt`` (with ``setup.py``
and ``pyproject.toml`` at the root when there is no configuration
directory). What maps to an install kind becomes a step (``apt.txt`` first,
then the environment, then ``postBuild``); everything else is listed as not
mapped, with the reason.
"""

from __future__ import annotations

import re
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
CONFIG_FILES = ("environment.yml", "Pipfile", "Pipfile.lock", "requirements.txt",
                "apt.txt", "postBuild", "start", "runtime.txt", "Dockerfile",
                "install.R", "Project.toml", "default.nix")
#: Files repo2docker reads only at the root, when there is no config directory.
ROOT_ONLY_FILES = ("setup.py", "pyproject.toml")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_RUNTIME_PYTHON = re.compile(r"^python-(3)\.([0-9]+)(\.[0-9]+)?\Z")

_PLANNED = "not supported yet (planned)"
_REASONS = {
    "Pipfile": f"pipenv files are {_PLANNED}; export them with `pipenv "
               "requirements > requirements.txt` and use a pip step",
    "setup.py": f"installing the repository itself (pip install .) is "
                f"{_PLANNED}; run it from a script step",
    "pyproject.toml": f"installing the repository itself (pip install .) is "
                      f"{_PLANNED}; run it from a script step",
    "start": f"a start script run when the container starts is {_PLANNED}; "
             "kernel.setup or kernel.env in payload.yaml cover environment "
             "settings",
    "Dockerfile": "a whole Dockerfile is not supported (repo2docker would build "
                  "it instead of the other files); port its RUN, COPY and ENV "
                  "lines to a dockerfile fragment step",
    "install.R": "R environments are not supported",
    "Project.toml": "Julia environments are not supported",
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


def _runtime(directory: Path, rel: str, env_kind: str) -> NotMapped:
    try:
        first = (directory / rel).read_text(encoding="utf-8").strip().split("\n")[0]
    except (OSError, UnicodeDecodeError):
        return NotMapped(rel, "cannot be read as UTF-8 text")
    first = first.strip()
    match = _RUNTIME_PYTHON.match(first)
    if match:
        version = f"{match.group(1)}.{match.group(2)}"
        if env_kind == "conda":
            how = (f"the conda environment's own Python is used: pin "
                   f"python={version} in environment.yml")
        else:
            how = (f"pip steps make the venv with the base image's python3, so it "
                   f"is honoured only if that is {version}; for another Python "
                   "use a conda environment")
        return NotMapped(rel, f"asks for Python {version}: {how}")
    if first.lower().startswith("r-"):
        return NotMapped(rel, f"asks for R ({first}): R is not supported")
    return NotMapped(rel, f"{first!r} is not a runtime init knows (python-3.X)")


def plan_init(directory: Path, name: str | None = None) -> InitResult:
    """Read a repo2docker repository and make its payload.yaml (not written).

    Raises
    ------
    InputError
        When the directory is missing, the name cannot be made, or nothing
        gives the kernel an environment (no environment.yml or
        requirements.txt that repo2docker would use).
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
    env_kind = ""
    if has("environment.yml"):
        env_kind = "conda"
        rel = _rel(config, "environment.yml")
        steps.append({"conda": {"environment": rel}})
        mapped.append(Mapped(rel, "conda", "the environment's own Python runs the "
                             "kernel; list python and ipykernel in it"))
    pipfiles = [f for f in ("Pipfile", "Pipfile.lock") if has(f)]
    for file in pipfiles:
        reason = _REASONS["Pipfile"]
        if env_kind:
            reason = "ignored: repo2docker uses environment.yml when it exists"
        not_mapped.append(NotMapped(_rel(config, file), reason))
    env_kind = env_kind or ("pipenv" if pipfiles else "")
    if has("requirements.txt"):
        rel = _rel(config, "requirements.txt")
        if env_kind:
            first = "environment.yml" if env_kind == "conda" else "Pipfile"
            not_mapped.append(NotMapped(rel, f"ignored: repo2docker uses {first} "
                                        "when it exists"))
        else:
            env_kind = "pip"
            steps.append({"pip": {"requirements": rel}})
            mapped.append(Mapped(rel, "pip", "a venv made with the base image's "
                                 "python3; ipykernel is added when missing"))
    if not config:
        for file in ROOT_ONLY_FILES:
            if has(file):
                not_mapped.append(NotMapped(file, _REASONS[file]))
    if has("postBuild"):
        rel = _rel(config, "postBuild")
        steps.append({"script": {"path": rel, "prefix": f"/opt/{name}"}})
        mapped.append(Mapped(rel, "script", f"runs as root at build time with "
                             f"PAYLOAD_PREFIX=/opt/{name}, not as the notebook user "
                             "inside the environment as repo2docker runs it; check "
                             "what it writes where"))
    for file in ("start", "Dockerfile", "install.R", "Project.toml", "default.nix"):
        if has(file):
            not_mapped.append(NotMapped(_rel(config, file), _REASONS[file]))
    if has("runtime.txt"):
        not_mapped.append(_runtime(directory, _rel(config, "runtime.txt"), env_kind))

    if not any(k in step for step in steps for k in ("pip", "conda")):
        looked = ("binder/ or .binder/, then " if not config else "") + \
            ", ".join(CONFIG_FILES + (() if config else ROOT_ONLY_FILES))
        found = "".join(f"\n  not mapped: {n.file}: {n.reason}" for n in not_mapped)
        found += "".join(f"\n  found: {m.file} ({m.kind})" for m in mapped)
        raise InputError(
            f"{directory}: nothing gives the kernel an environment: init needs an "
            f"environment.yml or a requirements.txt in {where} (looked for "
            f"{looked}). Add one, or write payload.yaml by hand (see the "
            f"README).{found}")

    payload: dict[str, Any] = {
        "name": name,
        "description": f"Made by nublado-build init from the repo2docker files in "
                       f"{where}",
        "install": steps,
        "kernel": {"name": name, "display_name": _display_name(raw_name, name)},
    }
    _validate(payload, directory)
    result = InitResult(directory, config, payload, tuple(mapped), tuple(not_mapped),
                        "")
    return InitResult(directory, config, payload, tuple(mapped), tuple(not_mapped),
                      render(result))


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
