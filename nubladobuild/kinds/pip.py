"""The ``pip`` kind: one Python source installed into a venv.

A step names exactly one source: a requirements file, the payload's own
project (``project: .``), the PEP 621 dependencies of a ``pyproject.toml``,
a ``uv.lock``, a ``Pipfile.lock`` or a ``Pipfile``. The formats are read in
:mod:`nubladobuild.pyinputs`; this module checks the step, keeps what the
plan needs and plans the step. Project directories the step installs are
copied to :data:`nubladobuild.pyinputs.PROJECT_ROOT` in the image.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from nubladobuild.fields import Prefix, RelFile, Strict
from nubladobuild.kinds._protocol import (
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
)
from nubladobuild.piplock import input_digest, recorded_digest
from nubladobuild.pyinputs import (
    PROJECT_ROOT,
    SourceText,
    image_path,
    load_toml,
    pipfile_lock_requirements,
    pipfile_requirements,
    project_extras,
    project_files,
    project_problem,
    pyproject_requirements,
    read_uv_lock,
)
from nubladobuild.requirements import (
    Requirements,
    canonical,
    parse_requirements,
    rewrite_projects,
)

#: Where the requirements file goes in the step's context directory.
REQUIREMENTS = "requirements.txt"
#: Where a ``uv.lock`` and its ``pyproject.toml`` go in it (uv exports there).
UV_DIR = "uv"
#: Where the project directories go in it (copied to ``PROJECT_ROOT``).
PROJECT_DIR = "project"
#: Where the step directory is mounted in the image (read-only, one build).
STEP_MOUNT = "/tmp/nb-step"  # noqa: S108 (a path in the image, not on this host)
#: Where install-pip writes uv's export of a ``uv.lock`` in the image.
UV_EXPORT = "/tmp/nb-uv-export/requirements.txt"  # noqa: S108 (in the image)
#: The fields that name a source; a step has exactly one.
SOURCES = ("requirements", "project", "pyproject", "uv_lock", "pipfile_lock",
           "pipfile")
#: Sources whose ``groups`` select more than the default dependencies.
_GROUPED = ("pyproject", "uv_lock", "pipfile_lock", "pipfile")
_GROUP_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?")


class PipStep(Strict):
    """One Python source installed into a venv (exactly one source field)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": [s]} for s in SOURCES]})

    requirements: RelFile | None = None
    #: A payload-relative directory holding the payload's own project.
    project: RelFile | None = None
    extras: list[str] = Field(default_factory=list, max_length=64)
    pyproject: RelFile | None = None
    uv_lock: RelFile | None = None
    pipfile_lock: RelFile | None = None
    pipfile: RelFile | None = None
    groups: list[str] = Field(default_factory=list, max_length=64)
    prefix: Prefix = "/opt/payload/venv"
    python: str = Field(
        default="python3",
        pattern=r"^(/[A-Za-z0-9._+/-]+|python3(\.[0-9]+)?)$",
        description="Interpreter that creates the venv (path or python3[.N]).",
    )
    #: uv by default: 0.72 of pip's cold time for the same file, and a warm
    #: rebuild copies from its cache mount; pip stays selectable.
    installer: Literal["pip", "uv"] = "uv"
    #: A hash lock of ``requirements`` made by ``nublado-build lock``; when
    #: given, the step installs it (``--require-hashes``) instead.
    lock: RelFile | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PipStep:
        given = [s for s in SOURCES if getattr(self, s) is not None]
        if len(given) != 1:
            said = f"it has {', '.join(given)}" if given else "it has none"
            raise ValueError(f"a pip step installs exactly one source, one of "
                             f"{', '.join(SOURCES)}; {said}")
        source = given[0]
        names = [*self.extras, *self.groups]
        bad = [n for n in names if not _valid_name(n)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a valid extra or group name "
                             "(letters, digits and ._-)")
        if self.extras and source != "project":
            raise ValueError("extras go with project (the project's extras); "
                             "for a pyproject, uv_lock or Pipfile use groups")
        if self.groups and source not in _GROUPED:
            raise ValueError(f"groups go with {', '.join(_GROUPED)}, not "
                             f"{source}" + ("; use extras" if source == "project"
                                            else ""))
        if self.lock is not None and source != "requirements":
            raise ValueError("lock goes with requirements only (a hash lock "
                             "made by `nublado-build lock`)")
        return self

    @property
    def source(self) -> str:
        """Return the name of the step's source field."""
        return next(s for s in SOURCES if getattr(self, s) is not None)


def _valid_name(name: str) -> bool:
    return _GROUP_NAME.fullmatch(name) is not None


@dataclass
class PipInput:
    """What the loader read for a pip step, as the plan installs it.

    Attributes
    ----------
    reqs : Requirements
        The requirements as parsed (names, hashes, project lines).
    text : bytes
        The requirements file the step installs, before ipykernel is added
        and project lines point at the image (empty for ``uv_lock``).
    projects : tuple of str
        Payload-relative project directories copied into the image.
    kernel_support : bool
        Install the lock as locked, then add ipykernel from the tool's own
        hash lock (``base/build/ipykernel.txt``).
    uv_args : tuple of str
        uv export's group options (``uv_lock``).
    project_files : dict of str to bytes
        The project directories' files, by payload-relative path.
    project_modes : dict of str to int
        Their modes.
    """

    reqs: Requirements
    text: bytes = b""
    projects: tuple[str, ...] = ()
    kernel_support: bool = False
    uv_args: tuple[str, ...] = ()
    project_files: dict[str, bytes] = field(default_factory=dict)
    project_modes: dict[str, int] = field(default_factory=dict)


def lock_input(text: bytes, reqs: Requirements) -> bytes:
    """Return the requirements as the step installs them: ipykernel added.

    The kernel needs ipykernel; an unhashed file that lacks it gets it
    (a hash-locked one gets it from the tool's own lock instead). A
    ``lock`` is made from, and records the digest of, exactly this text.
    """
    if reqs.has("ipykernel"):
        return text
    return (text.rstrip(b"\n") + b"\n# added by nublado-build for the kernel\n"
            b"ipykernel\n") if text.strip() else b"ipykernel\n"


def _read_text(ctx: StepContext, field_name: str, name: str,
               hint: str) -> str | None:
    """Read a payload file as UTF-8 text; None after a problem (``hint`` ends it)."""
    data = ctx.read(field_name, name)
    if data is None:
        return None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        ctx.problem(field_name, f"{name!r} is not UTF-8 text{hint}")
        return None


def _add_project(spec: PipStep, ctx: StepContext, field_name: str, path: str,
                 where: str, pip_input: PipInput) -> bool:
    """Check a project directory and read its files; False after a problem."""
    problem = project_problem(ctx.directory, path)
    if problem is not None:
        ctx.problem(field_name, f"{where}{problem}")
        return False
    if path in pip_input.projects:
        return True
    copied = project_files(ctx.directory, path, ctx.exclude)
    for message in copied.problems:
        ctx.problem(field_name, message)
    pip_input.projects += (path,)
    pip_input.project_files.update(copied.files)
    pip_input.project_modes.update(copied.modes)
    # Among the files the loader read: the inputs digest (provenance label)
    # changes with the project's sources.
    ctx.input.files.update(copied.files)
    ctx.input.modes.update(copied.modes)
    return not copied.problems


def _load_requirements(spec: PipStep, ctx: StepContext) -> PipInput | None:
    assert spec.requirements is not None
    text = _read_text(ctx, "requirements", spec.requirements, "")
    if text is None:
        return None
    reqs = parse_requirements(text, projects=True)
    for line, message in reqs.problems:
        ctx.problem("requirements", f"{spec.requirements}:{line}: {message}")
    pip_input = PipInput(reqs, text.encode("utf-8"),
                         kernel_support=reqs.hashed and not reqs.has("ipykernel"))
    for project in reqs.projects:
        _add_project(spec, ctx, "requirements", project.path,
                     f"{spec.requirements}:{project.line}: ", pip_input)
    if spec.lock is not None and reqs.projects:
        ctx.problem("lock", f"{spec.requirements!r} names the payload's project "
                    "(a path), which a hash lock cannot hold; drop lock, or lock "
                    "the other requirements and install the project in a step of "
                    "its own (`project: .`)")
    elif spec.lock is not None and reqs.hashed:
        ctx.problem("lock", f"{spec.requirements!r} is hash-locked already; "
                    "install it as it is and drop lock")
    elif spec.lock is not None and not ctx.locking:
        _check_lock(spec, ctx, lock_input(text.encode("utf-8"), reqs))
    return pip_input


def _load_project(spec: PipStep, ctx: StepContext) -> PipInput | None:
    assert spec.project is not None
    pip_input = PipInput(parse_requirements(""))
    if not _add_project(spec, ctx, "project", spec.project, "", pip_input):
        return None
    pyproject = posixpath.normpath(posixpath.join(spec.project,
                                                  "pyproject.toml"))
    data = pip_input.project_files.get(pyproject)
    extras = ""
    if spec.extras:
        extras = f"[{','.join(spec.extras)}]"
    if data is not None and spec.extras:
        parsed, why = load_toml(data.decode("utf-8", "replace"), pyproject)
        if why:
            ctx.problem("project", why)
            return None
        assert parsed is not None
        known = project_extras(parsed)
        unknown = [e for e in spec.extras
                   if known is not None and canonical(e) not in known]
        if unknown:
            ctx.problem("extras", f"{pyproject} has no optional-dependencies "
                        f"{', '.join(repr(u) for u in unknown)}; available: "
                        f"{', '.join(sorted(known or ())) or 'none'}")
            return None
    pip_input.text = f"{image_path(spec.project)}{extras}\n".encode()
    return pip_input


def _converted(ctx: StepContext, field_name: str, converted: SourceText,
               hashed: bool) -> PipInput | None:
    for message in converted.problems:
        ctx.problem(field_name, message)
    if converted.problems:
        return None
    reqs = Requirements(converted.names, hashed)
    return PipInput(reqs, converted.text.encode("utf-8"),
                    kernel_support=hashed and not reqs.has("ipykernel"))


def _load_uv_lock(spec: PipStep, ctx: StepContext) -> PipInput | None:
    assert spec.uv_lock is not None
    pyproject = posixpath.join(posixpath.dirname(spec.uv_lock), "pyproject.toml")
    lock = _read_text(ctx, "uv_lock", spec.uv_lock, "")
    if not (ctx.directory / pyproject).is_file():
        ctx.problem("uv_lock", f"{spec.uv_lock!r} needs the pyproject.toml it was "
                    f"locked from next to it, but there is no {pyproject}; "
                    "commit it with the lock")
        return None
    project = _read_text(ctx, "uv_lock", pyproject, "")
    if lock is None or project is None:
        return None
    uv = read_uv_lock(lock, spec.uv_lock, project, pyproject, spec.groups)
    for message in uv.problems:
        ctx.problem("groups" if "available:" in message else "uv_lock", message)
    if uv.problems:
        return None
    return PipInput(Requirements(uv.names, True), uv_args=uv.args,
                    kernel_support="ipykernel" not in uv.names)


def load(spec: PipStep, ctx: StepContext) -> None:
    """Read the step's source and refuse what the boundary forbids."""
    source = spec.source
    pip_input: PipInput | None
    if source == "requirements":
        pip_input = _load_requirements(spec, ctx)
    elif source == "project":
        pip_input = _load_project(spec, ctx)
    elif source == "uv_lock":
        pip_input = _load_uv_lock(spec, ctx)
    else:
        name = getattr(spec, source)
        text = _read_text(ctx, source, name, "")
        if text is None:
            return
        if source == "pyproject":
            data, why = load_toml(text, name)
            if data is None:
                ctx.problem(source, why or name)
                return
            converted = pyproject_requirements(data, text, name, spec.groups)
        elif source == "pipfile_lock":
            converted = pipfile_lock_requirements(text, name, spec.groups)
        else:
            converted = pipfile_requirements(text, name, spec.groups)
        pip_input = _converted(ctx, "groups" if any(
            "available:" in p for p in converted.problems) else source,
            converted, source == "pipfile_lock")
    if pip_input is not None:
        ctx.input.extra = pip_input


def _check_lock(spec: PipStep, ctx: StepContext, locked_input: bytes) -> None:
    """Refuse a lock that is missing, unhashed or made from other requirements."""
    assert spec.lock is not None
    again = f"run `nublado-build lock {ctx.directory}` and commit {spec.lock}"
    if not (ctx.directory / spec.lock).exists():
        ctx.problem("lock", f"{spec.lock!r} does not exist yet; {again}")
        return
    text = _read_text(ctx, "lock", spec.lock, f"; {again}")
    if text is None:
        return
    recorded = recorded_digest(text)
    if recorded is None:
        ctx.problem("lock", f"{spec.lock!r} was not made by nublado-build lock "
                    f"(no input record); {again}")
    elif recorded != input_digest(locked_input):
        ctx.problem("lock", f"{spec.lock!r} is stale: {spec.requirements} "
                    f"changed since it was made; {again}")
    else:
        lock = parse_requirements(text)
        for line, message in lock.problems:
            ctx.problem("lock", f"{spec.lock}:{line}: {message}")
        if not lock.hashed:
            ctx.problem("lock", f"{spec.lock!r} has no hashes; {again}")


def plan(index: int, spec: PipStep, step: StepInput, payload: object) -> StepPlan:
    """Plan the step: what it installs, the files it needs and its settings."""
    pip_input: PipInput = step.extra
    files: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    requirements = f"{STEP_MOUNT}/{REQUIREMENTS}"
    uv_dir = ""
    if spec.lock is not None:  # the loader checked it is current and hashed
        files[REQUIREMENTS], hashed = step.files[spec.lock], True
    elif spec.uv_lock is not None:
        hashed, requirements, uv_dir = True, UV_EXPORT, f"{STEP_MOUNT}/{UV_DIR}"
        pyproject = posixpath.join(posixpath.dirname(spec.uv_lock), "pyproject.toml")
        files[f"{UV_DIR}/uv.lock"] = step.files[spec.uv_lock]
        files[f"{UV_DIR}/pyproject.toml"] = step.files[pyproject]
    elif pip_input.reqs.hashed:
        files[REQUIREMENTS], hashed = pip_input.text, True
    else:
        text = rewrite_projects(pip_input.text.decode("utf-8"), PROJECT_ROOT)
        files[REQUIREMENTS] = lock_input(text.encode("utf-8"), pip_input.reqs)
        hashed = False
    for rel, data in sorted(pip_input.project_files.items()):
        files[f"{PROJECT_DIR}/{rel}"] = data
        modes[f"{PROJECT_DIR}/{rel}"] = pip_input.project_modes.get(rel, 0o644)
    return StepPlan(
        index=index,
        kind=KIND.name,
        dir=KIND.step_dir(index),
        files=files,
        modes=modes,
        vars={
            "python": spec.python,
            "prefix": spec.prefix,
            "installer": spec.installer,
            "hashes": "hashes" if hashed else "nohashes",
            "requirements": requirements,
            "kernel": "kernel-support" if pip_input.kernel_support else "as-is",
            "uv_dir": uv_dir,
            "project_root": PROJECT_ROOT,
        },
        data={"projects": [image_path(p) for p in pip_input.projects],
              "uv_args": list(pip_input.uv_args)},
    )


def environment(spec: PipStep, payload_name: str) -> Environment:
    """Return the venv the step makes."""
    return Environment(spec.prefix, f"{spec.prefix}/bin/python", "venv")


KIND = Kind(name="pip", model=PipStep, load=load, plan=plan,
            environment=environment,
            files=("requirements", "lock", "pyproject", "uv_lock", "pipfile_lock",
                   "pipfile"))
