"""The guarded ``lab`` section: lab extensions and settings, one place.

A payload may add JupyterLab extensions to the lab venv and set lab
settings, but only through ``lab:`` in payload.yaml, never from its own
steps. The extensions are hash-locked by ``nublado-build lock`` into
:data:`LOCK_FILE` in the payload directory, resolved inside a container of
the base image with the lab venv's installed versions as constraints; the
build installs exactly the locked additions in one stage of its own
(``nublado-lab``, before the payload's steps), writes the settings there,
and the isolation guard then allows exactly what that stage added.

This module holds the schema of the section, the lock file's format, the
pure checks of a lock against payload.yaml (plan stage) and the lock
command's resolution (through :mod:`nubladobuild.engine`).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import AfterValidator, Field, StringConstraints, field_validator

from nubladobuild.fields import LAB_ROOT, Strict, control_characters

#: The lock file of ``lab.extensions``, in the payload directory.
LOCK_FILE = "lab-requirements.txt"
#: The lab venv the extensions go into.
LAB_VENV = f"{LAB_ROOT}/venv"
#: The image-side installer (``base/lab/``), copied into the context's ``lab/``.
SCRIPT = "install-lab-extensions"
#: Image label listing the added packages (``name==version``, comma-separated).
LABEL = "io.nublado.lab.extensions"
#: The isolation record of the lab tree after the lab stage (the base's
#: own, ``base-checksums.txt``, is never changed).
CHECKSUMS = f"{LAB_ROOT}/lab-checksums.txt"
#: At most this many extensions.
MAX_EXTENSIONS = 64
#: The settings overrides, as JSON, are at most this big.
MAX_SETTINGS_BYTES = 64 * 1024
#: Where the lab stage writes the settings defaults (JupyterLab's
#: ``overrides.d``, below the lab venv's app settings directory: layered,
#: one file per source, so it never collides with a base's own file).
OVERRIDES_DIR = f"{LAB_VENV}/share/jupyter/lab/settings/overrides.d"
#: Where the lab stage writes the disabled extensions: a labconfig directory
#: in the lab venv's own Jupyter config path (``sys.prefix/etc/jupyter``),
#: merged by the server with the base's /usr/local/etc/jupyter/labconfig.
LABCONFIG_DIR = f"{LAB_VENV}/etc/jupyter/labconfig"

_HEADER_INPUTS = "# nublado-lab-inputs: "
_HEADER_BASE = "# nublado-lab-base: "
_HEADER_IN_BASE = "# nublado-lab-in-base: "
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)\Z")
#: A JupyterLab extension (npm package) name, optionally with a plugin id.
_EXTENSION = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*"
                        r"(:[A-Za-z0-9][A-Za-z0-9._~/-]*)?\Z")
#: A settings plugin id: ``package:plugin``.
_PLUGIN_ID = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*"
                        r":[A-Za-z0-9][A-Za-z0-9._~/-]*\Z")


def _requirement(value: str) -> str:
    """Check one ``lab.extensions`` entry: a PEP 508 name and specifiers."""
    found = control_characters(value)
    if found:
        raise ValueError(f"{value!a} contains {found}; write one requirement "
                         "such as 'jupyterlab-spellchecker>=0.8'")
    text = value.strip()
    if not text:
        raise ValueError("an extension must name a package, e.g. "
                         "'jupyterlab-spellchecker'")
    if text.startswith("-"):
        raise ValueError(f"{value!r} is a pip option; lab.extensions takes "
                         "package requirements only (the operator's index "
                         "settings apply)")
    if text.startswith((".", "/", "~")) or "://" in text or text.startswith("file:"):
        raise ValueError(f"{value!r} is a path or URL; name the package as it is "
                         "on the index, e.g. 'jupyterlab-spellchecker==0.9.0'")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{value!r} is not a valid requirement ({exc}); use a "
                         "package name with optional version specifiers, e.g. "
                         "'jupyterlab-spellchecker>=0.8,<1'") from None
    if req.url:
        raise ValueError(f"{value!r} installs from a URL; name the package as it "
                         "is on the index")
    if req.marker is not None:
        raise ValueError(f"{value!r} has an environment marker; the lab venv is "
                         "one known interpreter, so list the package or leave it "
                         "out")
    return text


def _json_value(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what is not plain JSON text (or would smuggle control chars)."""
    if depth > 32:
        raise ValueError(f"{where}: nested more than 32 levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string; JSON "
                                 "objects have string keys")
            found = control_characters(key)
            if found:
                raise ValueError(f"{where}: key {key!a} contains {found}")
            _json_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_value(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, str):
        found = control_characters(value.replace("\t", " "))
        if found:
            raise ValueError(f"{where}: {value!a} contains {found}")
    elif isinstance(value, float) and (value != value or value in (
            float("inf"), float("-inf"))):
        raise ValueError(f"{where}: {value!r} is not a JSON number")
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise ValueError(f"{where}: a {type(value).__name__} is not a JSON value "
                         "(use strings, numbers, true/false, null, lists, "
                         "mappings)")


def _overrides(value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for plugin, settings in value.items():
        found = control_characters(plugin)
        if found:
            raise ValueError(f"plugin id {plugin!a} contains {found}")
        if not _PLUGIN_ID.match(plugin):
            raise ValueError(f"{plugin!r} is not a JupyterLab plugin id; use "
                             "'package:plugin', e.g. "
                             "'@jupyterlab/notebook-extension:tracker'")
        _json_value(settings, plugin)
    size = len(json.dumps(value))
    if size > MAX_SETTINGS_BYTES:
        raise ValueError(f"the overrides are {size} bytes as JSON; at most "
                         f"{MAX_SETTINGS_BYTES}")
    return value


def _extension_name(value: str) -> str:
    found = control_characters(value)
    if found:
        raise ValueError(f"{value!a} contains {found}")
    if not _EXTENSION.match(value):
        raise ValueError(f"{value!r} is not a JupyterLab extension or plugin "
                         "name; use e.g. '@jupyterlab/apputils-extension' or "
                         "'@jupyterlab/apputils-extension:announcements'")
    return value


LabRequirement = Annotated[str, StringConstraints(max_length=256),
                           AfterValidator(_requirement)]
ExtensionName = Annotated[str, StringConstraints(max_length=214),
                          AfterValidator(_extension_name)]


class LabSettings(Strict):
    """Lab settings a payload sets, written by nublado-build in the lab stage.

    ``overrides``: setting defaults per plugin id (the content of
    JupyterLab's ``overrides.json``); ``disabled_extensions``: extensions or
    plugins the page config disables.
    """

    overrides: Annotated[dict[str, dict[str, Any]], AfterValidator(_overrides)] \
        = Field(default_factory=dict, max_length=256)
    disabled_extensions: list[ExtensionName] = Field(default_factory=list,
                                                     max_length=256)

    @property
    def empty(self) -> bool:
        """Whether nothing is set."""
        return not self.overrides and not self.disabled_extensions


class Lab(Strict):
    """The ``lab`` section: what a payload adds to the JupyterLab server.

    ``extensions``: packages installed into the lab venv (hash-locked in
    :data:`LOCK_FILE` by ``nublado-build lock``); ``settings``: lab
    settings; ``pairing``: what a kernel-side package without its lab-side
    frontend does to the build, ``fail`` (default) or ``warn``.
    """

    extensions: list[LabRequirement] = Field(default_factory=list,
                                             max_length=MAX_EXTENSIONS)
    settings: LabSettings = Field(default_factory=LabSettings)
    pairing: Literal["fail", "warn"] = "fail"

    @field_validator("extensions")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for text in value:
            name = canonicalize_name(Requirement(text).name)
            if name in seen:
                raise ValueError(f"{name!r} is named twice; give it once, with "
                                 "all its specifiers")
            seen.add(name)
        return value

    @property
    def has_stage(self) -> bool:
        """Whether the build needs the ``nublado-lab`` stage."""
        return bool(self.extensions) or not self.settings.empty


def inputs_digest(extensions: Sequence[str]) -> str:
    """Return the digest of the extension list a lock was made from."""
    canonical = sorted(str(Requirement(text)) for text in extensions)
    return "sha256:" + hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def freeze_digest(freeze: dict[str, str]) -> str:
    """Return the digest of a lab venv's ``name -> version`` freeze."""
    text = "".join(f"{n}=={v}\n" for n, v in sorted(freeze.items()))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class LabLock:
    """A parsed lab lock file.

    Attributes
    ----------
    inputs : str
        Digest of the ``lab.extensions`` it was made from.
    base : str
        Digest of the base lab venv it was resolved against.
    added : tuple of (name, version)
        What the lab stage installs (with hashes in the file).
    in_base : tuple of (name, version)
        Packages of the resolution already in the base's lab venv, at these
        versions (checked at build time, never installed).
    """

    inputs: str
    base: str
    added: tuple[tuple[str, str], ...]
    in_base: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """Return the value of :data:`LABEL`."""
        return ",".join(f"{n}=={v}" for n, v in self.added)


def _logical(text: str) -> list[str]:
    lines, buf = [], ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        lines.append(buf + raw)
        buf = ""
    if buf:
        lines.append(buf)
    return lines


def parse_lock(text: str) -> LabLock:
    """Parse a lab lock file.

    Raises
    ------
    ValueError
        Naming what is wrong (then the file is not one ``lock`` wrote).
    """
    inputs = base = ""
    added: list[tuple[str, str]] = []
    in_base: list[tuple[str, str]] = []
    for line in _logical(text):
        stripped = line.strip()
        if stripped.startswith(_HEADER_INPUTS.strip()):
            inputs = stripped.removeprefix(_HEADER_INPUTS.strip()).strip()
        elif stripped.startswith(_HEADER_BASE.strip()):
            base = stripped.removeprefix(_HEADER_BASE.strip()).split()[0] \
                if stripped.removeprefix(_HEADER_BASE.strip()).strip() else ""
        elif stripped.startswith(_HEADER_IN_BASE.strip()):
            match = _PIN.match(stripped.removeprefix(_HEADER_IN_BASE.strip()).strip())
            if not match:
                raise ValueError(f"bad line {stripped!r}")
            in_base.append((canonicalize_name(match.group(1)), match.group(2)))
        elif not stripped or stripped.startswith("#"):
            continue
        else:
            head, *rest = stripped.split()
            match = _PIN.match(head)
            if not match or not rest or not all(
                    re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", r) for r in rest):
                raise ValueError(f"{head!r} is not a pinned requirement with "
                                 "sha256 hashes")
            added.append((canonicalize_name(match.group(1)), match.group(2)))
    if not inputs or not base:
        raise ValueError("its nublado-lab header lines are missing")
    return LabLock(inputs, base, tuple(added), tuple(in_base))


def lock_text(payload: str, directory: str, extensions: Sequence[str],
              freeze: dict[str, str], resolved: dict[str, tuple[str, list[str]]]
              ) -> str:
    """Return the lock file for a resolution.

    Parameters
    ----------
    payload, directory
        The payload's name and directory (for the header).
    extensions
        ``lab.extensions``.
    freeze
        The base lab venv: canonical name -> version.
    resolved
        The resolution: canonical name -> (version, sha256 hashes).
    """
    lines = [
        f"# Lab extensions of payload {payload!r}, hash-locked by nublado-build.",
        "# Do not edit: after changing lab.extensions or the base, run",
        f"#   nublado-build lock {directory}",
        "# Installed into the lab venv with --require-hashes --no-deps in the",
        "# nublado-lab build stage; the packages of the resolution that the",
        "# base's lab venv already has are listed as nublado-lab-in-base and",
        "# must keep exactly these versions.",
        f"{_HEADER_INPUTS}{inputs_digest(extensions)}",
        f"{_HEADER_BASE}{freeze_digest(freeze)} ({len(freeze)} packages)",
    ]
    for name, (version, _) in sorted(resolved.items()):
        if name in freeze:
            lines.append(f"{_HEADER_IN_BASE}{name}=={version}")
    for name, (version, hashes) in sorted(resolved.items()):
        if name not in freeze:
            lines.append(f"{name}=={version} \\")
            lines += [f"    --hash=sha256:{h} \\" for h in sorted(hashes)[:-1]]
            lines.append(f"    --hash=sha256:{sorted(hashes)[-1]}")
    return "\n".join(lines) + "\n"


def parse_compiled(text: str) -> dict[str, tuple[str, list[str]]]:
    """Parse pip-compile's output: canonical name -> (version, hashes)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for line in _logical(text):
        stripped = line.split(" #", 1)[0].strip()
        if not stripped or stripped.startswith(("#", "-")):
            continue
        head, *rest = stripped.split()
        match = _PIN.match(head.split(";")[0])
        if not match:
            continue
        hashes = [r.removeprefix("--hash=sha256:") for r in rest
                  if r.startswith("--hash=sha256:")]
        out[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return out


def parse_freeze(text: str) -> dict[str, str]:
    """Parse ``name==version`` lines (list-packages): canonical name -> version."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            out[canonicalize_name(match.group(1))] = match.group(2)
    return out


def conflicts(freeze: dict[str, str],
              resolved: dict[str, tuple[str, list[str]]]) -> list[str]:
    """Return "name base -> wanted" for each base package a resolution changes."""
    return [f"{name} {freeze[name]} (in the base's lab venv) -> {version}"
            for name, (version, _) in sorted(resolved.items())
            if name in freeze and freeze[name] != version]


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class LabPlan:
    """What the ``nublado-lab`` stage writes and installs.

    Attributes
    ----------
    files : dict of str to bytes
        Files of the context's ``lab/`` directory (the installer,
        :data:`SCRIPT`, is added by the renderer).
    lock : LabLock or None
        The parsed lock, when there are extensions.
    record : str
        The image path of the record of what the stage added.
    allowed : tuple of str
        What the guard allows the stage to add (prefixes end in ``/``).
    """

    files: dict[str, bytes]
    lock: LabLock | None
    record: str
    allowed: tuple[str, ...] = field(default=())

    @property
    def label(self) -> tuple[tuple[str, str], ...]:
        """Return the image label listing the extensions (none without)."""
        return ((LABEL, self.lock.label),) if self.lock is not None else ()


def record_path(payload_name: str) -> str:
    """Return where the lab stage records what it added."""
    return f"{LAB_ROOT}/versions-installed/lab-extensions-{payload_name}.txt"


def lab_plan(lab: Lab, payload_name: str, lock: bytes | None,
             problem: Callable[[str, str], None], directory: str) -> LabPlan | None:
    """Plan the lab stage; pure. None when the payload has no lab section.

    Parameters
    ----------
    lab
        The ``lab`` section.
    payload_name
        The payload's name.
    lock
        The lock file's bytes, or None when it does not exist.
    problem
        Called with (YAML path, message) for a missing or stale lock.
    directory
        The payload directory, for the command in messages.
    """
    if not lab.has_stage:
        return None
    files: dict[str, bytes] = {}
    parsed: LabLock | None = None
    run = f"run `nublado-build lock {directory}` (it resolves them on the base)"
    if lab.extensions:
        if lock is None:
            problem("lab.extensions", f"no lock file {LOCK_FILE} in {directory}; "
                    f"{run} and commit the file")
        else:
            try:
                parsed = parse_lock(lock.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                problem("lab.extensions", f"{LOCK_FILE} is not a lab lock file "
                        f"nublado-build wrote ({exc}); {run}")
            else:
                if parsed.inputs != inputs_digest(lab.extensions):
                    problem("lab.extensions", f"{LOCK_FILE} is stale: it was made "
                            "for other lab.extensions than payload.yaml lists; "
                            f"{run}")
                    parsed = None
                else:
                    files[LOCK_FILE] = lock
    settings = lab.settings
    if settings.overrides:
        files["overrides.json"] = (json.dumps(settings.overrides, indent=2,
                                              sort_keys=True) + "\n").encode()
    if settings.disabled_extensions:
        files["page_config.json"] = (json.dumps(
            {"disabledExtensions": {name: True for name in
                                    settings.disabled_extensions}},
            indent=2, sort_keys=True) + "\n").encode()
    record = record_path(payload_name)
    return LabPlan(files=files, lock=parsed, record=record,
                   allowed=(f"{LAB_VENV}/", CHECKSUMS, record))


# ------------------------------------------------------------ the lock command


@dataclass(frozen=True)
class LabLockResult:
    """What ``nublado-build lock`` did for the lab section."""

    lock: Path
    added: tuple[tuple[str, str], ...]
    written: bool
    hint: str = ""


def run_lock_helper(base_image: str, io_dir: Path, tools: Path, helper: str,
                    args: list[str], secrets: Any) -> tuple[int, str]:
    """Run a lock helper of ``tools`` in a throwaway container of the base image.

    The helper gets ``args`` and then the container path of ``io_dir`` (its
    only writable place). The secrets go in as files under /run/secrets,
    where the base's ``with-build-secrets`` reads them in a build.

    Parameters
    ----------
    base_image
        The image to run.
    io_dir
        Host directory the helper reads its input from and writes into.
    tools
        Host directory of the helpers (``base/lab``), mounted read-only.
    helper
        The helper's file name in ``tools``.
    args
        Its arguments before the IO directory.
    secrets
        The build secrets (CA bundle, index URLs).

    Returns
    -------
    tuple of (int, str)
        The exit code and the output, credentials masked.
    """
    from nubladobuild.engine import run_docker
    from nubladobuild.secrets import mask_secrets

    # Paths inside the throwaway container, not on this host.
    inside_io, inside_tools = "/tmp/nb-lab-io", "/tmp/nb-lab-tools"  # noqa: S108 - container path
    docker_args = ["-v", f"{io_dir}:{inside_io}", "-v", f"{tools}:{inside_tools}:ro"]
    if secrets.ca_bundle is not None:
        docker_args += ["-v", f"{secrets.ca_bundle}:/run/secrets/ca:ro"]
    names = ("pip_index_url", "pip_extra_index_url")
    try:
        for name, value in zip(names, (secrets.index_url, secrets.extra_index_url),
                               strict=True):
            if value:
                path = io_dir.parent / f"{io_dir.name}.{name}"
                path.touch(mode=0o600)
                path.write_text(value)
                docker_args += ["-v", f"{path}:/run/secrets/{name}:ro"]
        argv = ["run", "--rm", "--user", "0:0", "--entrypoint", "/bin/bash",
                *docker_args, base_image, f"{inside_tools}/{helper}", *args,
                inside_io]
        proc = run_docker(*argv, timeout=1800)
    finally:  # the credentials never outlive the container, whatever happens
        for name in names:
            (io_dir.parent / f"{io_dir.name}.{name}").unlink(missing_ok=True)
    output = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    return proc.returncode, mask_secrets(output, secrets)


def lock_lab(*, lab: Lab, payload_name: str, directory: Path, base_image: str,
             secrets: Any, check: bool, tools: Path,
             where: Callable[[str], str]) -> LabLockResult:
    """Resolve ``lab.extensions`` on the base and write (or check) the lock.

    Parameters
    ----------
    lab, payload_name, directory
        The payload's lab section, name and directory.
    base_image
        The base image whose lab venv constrains the resolution.
    secrets
        The build secrets (CA bundle, index) for pip-compile.
    check
        Write nothing; raise :class:`LockOutdated` when the lock is missing
        or stale (other extensions, or another base lab venv).
    tools
        The directory of the image-side lock helper.
    where
        Returns "file:line: yaml.path" for a YAML path (messages).

    Raises
    ------
    InputError
        When an extension cannot be resolved, or would change a package of
        the base's lab venv (naming the package and both versions).
    LockOutdated
        With ``check``, when the lock is missing or stale.
    BuildFailed
        When the container cannot run.
    """
    from nubladobuild.errors import BuildFailed, InputError, LockOutdated

    path = directory / LOCK_FILE
    with tempfile.TemporaryDirectory(prefix="nublado-lab-lock-") as tmp:
        io_dir = Path(tmp) / "io"
        io_dir.mkdir()
        (io_dir / "lab.in").write_text("".join(f"{e}\n" for e in lab.extensions))
        mode = "freeze" if check else "resolve"
        code, output = run_lock_helper(base_image, io_dir, tools,
                                       "lock-lab-extensions", [mode], secrets)
        freeze_file = io_dir / "freeze.txt"
        if not freeze_file.is_file() or not freeze_file.read_text().strip():
            tail = "\n".join(f"  | {ln}" for ln in output.splitlines()[-20:])
            raise BuildFailed(f"lock: the lab venv of {base_image} could not be "
                              f"read (exit {code}):\n{tail}")
        freeze = parse_freeze(freeze_file.read_text())
        if check:
            stale = _stale(path, lab, freeze)
            if stale:
                raise LockOutdated(f"{path}: {stale}; run `nublado-build lock "
                                   f"{directory}` and commit the file")
            lock = parse_lock(path.read_text())
            return LabLockResult(path, lock.added, False)
        compiled = io_dir / "compiled.txt"
        if code == 0 and compiled.is_file():
            resolved = parse_compiled(compiled.read_text())
            changed = conflicts(freeze, resolved)
            if changed:  # the constraints should have prevented it
                raise InputError(f"{where('lab.extensions')}: the resolution would "
                                 f"change the base's lab venv: {'; '.join(changed)}")
            text = lock_text(payload_name, str(directory), lab.extensions, freeze,
                             resolved)
            written = not path.is_file() or path.read_text() != text
            if written:
                path.write_text(text)
            return LabLockResult(path, parse_lock(text).added, written)
        free = io_dir / "free.txt"
        changed = conflicts(freeze, parse_compiled(free.read_text())) \
            if free.is_file() else []
        if changed:
            raise InputError(
                f"{where('lab.extensions')}: these extensions need versions of "
                f"packages the base's lab venv already has: {'; '.join(changed)}. "
                "An extension may only add packages to the lab venv, never "
                "upgrade or downgrade one; pick versions that work with the "
                "base (or a base that has what they need).")
        said = "\n".join(f"  | {ln}" for ln in pip_errors(output))
        raise InputError(f"{where('lab.extensions')}: the extensions cannot be "
                         f"resolved on {base_image} (pip-compile, exit {code}):\n"
                         f"{said}\nCheck the names and versions on the index.")


#: What pip and pip-compile say when a resolution fails (their own words).
_PIP_ERROR = re.compile(
    r"(No matching distribution found for .+|Could not find a version that "
    r"satisfies the requirement .+|Cannot install .+|The conflict is caused "
    r"by:.*)")


def pip_errors(output: str, keep: int = 12) -> list[str]:
    """Return pip's own error lines from pip-compile's output, no traceback.

    pip-compile prints a Python traceback around pip's message when a
    requirement cannot be found; the user needs the message only. When no
    line looks like one of pip's, the last lines that are not traceback
    frames are returned.

    Parameters
    ----------
    output
        pip-compile's standard output and error.
    keep
        At most this many lines.

    Returns
    -------
    list of str
        The lines to show.
    """
    found: list[str] = []
    for line in output.splitlines():
        match = _PIP_ERROR.search(line)
        said = match.group(1) if match else line.partition("ERROR: ")[2]
        if said and said not in found:
            found.append(said)
    if found:
        return found[:keep]
    frames = re.compile(r"^\s*(Traceback |File \"|\^+$|~+|\|)")
    plain = [ln for ln in output.splitlines() if ln.strip() and not frames.match(ln)]
    return plain[-keep:]


def _stale(path: Path, lab: Lab, freeze: dict[str, str]) -> str:
    """Return why the lock at ``path`` is stale, or "" when it is current."""
    if not path.is_file():
        return f"no {LOCK_FILE}"
    try:
        lock = parse_lock(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not a lab lock file ({exc})"
    if lock.inputs != inputs_digest(lab.extensions):
        return "stale: made for other lab.extensions than payload.yaml lists"
    for name, version in lock.in_base:
        if freeze.get(name) != version:
            return (f"stale: it pins {name} {version}, the base's lab venv has "
                    f"{name} {freeze.get(name, '(not installed)')}")
    if lock.base != freeze_digest(freeze):
        return "stale: made on a base whose lab venv had other packages"
    return ""
