"""The payload.yaml schema: pydantic v2 models, strict, with clear messages.

Only shapes and values are checked here; files on disk are checked by
:mod:`nubladobuild.loader`, which also maps errors to YAML lines.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

#: The JupyterLab tree that payloads must never write into.
LAB_ROOT = "/usr/local/share/jupyterlab"
#: Directories a payload prefix may not be, or sit inside, besides LAB_ROOT.
_SYSTEM_DIRS = (
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root",
    "/run", "/sbin", "/sys", "/tmp", "/usr",  # noqa: S108 - refused, not used "/usr/bin", "/usr/lib",
    "/usr/local", "/usr/local/bin", "/usr/local/lib", "/usr/sbin", "/var",
    "/opt", "/home",
)
_PATH_CHARS = re.compile(r"^/[A-Za-z0-9._+/-]*\Z")  # \Z: "$" allows a final "\n"
_REL_CHARS = re.compile(r"^[A-Za-z0-9._+/-]+\Z")
INSTALL_KINDS = ("pip", "conda", "script", "dockerfile", "transplant")


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path, got {value!r}")
    if not _PATH_CHARS.match(value):
        raise ValueError(
            f"{value!r} contains characters other than letters, digits and ._+-/"
        )
    if ".." in value.split("/") or posixpath.normpath(value) != value.rstrip("/"):
        raise ValueError(f"{value!r} must be a normalized path without '..'")
    return value.rstrip("/") or "/"


def _prefix(value: str) -> str:
    value = _absolute_path(value)
    if value == LAB_ROOT or value.startswith(LAB_ROOT + "/"):
        raise ValueError(
            f"{value!r} is inside the JupyterLab tree {LAB_ROOT}; payloads must "
            "install elsewhere (for example /opt/payload/venv)"
        )
    if value in _SYSTEM_DIRS:
        raise ValueError(
            f"{value!r} is a system directory; use a dedicated prefix such as "
            "/opt/<payload>"
        )
    return value


def _relative_file(value: str) -> str:
    if value.startswith("/") or not _REL_CHARS.match(value):
        raise ValueError(
            f"{value!r} must be a path relative to the payload directory, "
            "made of letters, digits and ._+-/"
        )
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} escapes the payload directory ('..')")
    return posixpath.normpath(value)


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError("must be a single line (no newline or NUL characters)")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


AbsPath = Annotated[str, AfterValidator(_absolute_path)]
Prefix = Annotated[str, AfterValidator(_prefix)]
RelFile = Annotated[str, AfterValidator(_relative_file)]
Line = Annotated[str, AfterValidator(_one_line)]
EnvValue = Annotated[str, AfterValidator(_no_nul)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
DnsLabel = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"),
]
KernelName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
]
ImageRef = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:@-]*[A-Za-z0-9._-]$",
                      max_length=255),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class PipStep(_Strict):
    """A pip ``requirements.txt`` installed into a venv."""

    requirements: RelFile
    prefix: Prefix = "/opt/payload/venv"
    python: str = Field(
        default="python3",
        pattern=r"^(/[A-Za-z0-9._+/-]+|python3(\.[0-9]+)?)$",
        description="Interpreter that creates the venv (path or python3[.N]).",
    )
    installer: Literal["pip", "uv"] = "pip"


class CondaStep(_Strict):
    """A conda environment (YAML, optionally locked) installed into a prefix."""

    environment: RelFile
    lock: RelFile | None = None
    prefix: Prefix | None = None
    channels: list[str] | None = None


class ScriptStep(_Strict):
    """An install script run with ``PAYLOAD_PREFIX`` set."""

    path: RelFile
    prefix: Prefix
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    python: AbsPath | None = None


class DockerfileStep(_Strict):
    """A validated Dockerfile fragment spliced into the payload build."""

    path: RelFile


class TransplantStep(_Strict):
    """Directories copied from another image."""

    image: ImageRef
    paths: list[Prefix] = Field(min_length=1)
    python: AbsPath | None = None


StepSpec = PipStep | CondaStep | ScriptStep | DockerfileStep | TransplantStep


class InstallStep(_Strict):
    """One install step: exactly one of the five kinds."""

    pip: PipStep | None = None
    conda: CondaStep | None = None
    script: ScriptStep | None = None
    dockerfile: DockerfileStep | None = None
    transplant: TransplantStep | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InstallStep:
        given = [k for k in INSTALL_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "each install step needs exactly one kind "
                f"({', '.join(INSTALL_KINDS)}); got "
                f"{', '.join(given) if given else 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        """Return the name of this step's kind."""
        return next(k for k in INSTALL_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> StepSpec:
        """Return this step's kind-specific settings."""
        value = getattr(self, self.kind)
        assert value is not None
        return value  # type: ignore[no-any-return]


class Kernel(_Strict):
    """The Jupyter kernel that runs the payload Python."""

    name: KernelName
    display_name: Annotated[Line, StringConstraints(min_length=1, max_length=128)]
    python: AbsPath | None = None
    setup: list[Line] = Field(default_factory=list)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)

    @property
    def needs_wrapper(self) -> bool:
        """Whether the kernel runs through a generated wrapper script."""
        return bool(self.setup or self.env)


class Shell(_Strict):
    """What a terminal inside the lab gets."""

    setup: list[Line] | None = None


#: Compat link targets that stand for a payload's generated kernel files.
COMPAT_PLACEHOLDERS = ("{kernel.json}", "{kernel.wrapper}", "{kernel.dir}")


def _compat_target(value: str) -> str:
    if value.startswith("{"):
        head, sep, rest = value.partition("}")
        head += sep
        if head not in COMPAT_PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {head!r}; use one of "
                             f"{', '.join(COMPAT_PLACEHOLDERS)} or an absolute path")
        if rest and (not rest.startswith("/") or not _PATH_CHARS.match(rest)
                     or ".." in rest.split("/")):
            raise ValueError(f"{value!r}: after {head} only a '/sub/path' may follow")
        return value
    return _absolute_path(value)


class CompatLink(_Strict):
    """An explicit legacy path and what it points to (see compat/)."""

    path: AbsPath
    target: Annotated[str, AfterValidator(_compat_target)]
    mode: Literal["link", "copy"] = "link"


class Tags(_Strict):
    """How image tags are formed and checked."""

    policy: Literal["rsp", "semver", "calver"] = "rsp"


class Payload(_Strict):
    """A payload: what to install on the base, and how to start it."""

    name: DnsLabel
    description: Annotated[str, StringConstraints(max_length=4096)] = ""
    install: list[InstallStep] = Field(min_length=1)
    kernel: Kernel
    shell: Shell = Field(default_factory=Shell)
    compat: list[DnsLabel | CompatLink] = Field(default_factory=list)
    tags: Tags = Field(default_factory=Tags)
    tests: RelFile | None = None

    @model_validator(mode="after")
    def _kernel_python_known(self) -> Payload:
        derived = derived_python(self.install, self.name)
        if self.kernel.python is None and derived is None:
            raise ValueError(
                "kernel.python cannot be derived from the install steps "
                "(no pip or conda step, and no 'python' on a script or "
                "transplant step); set kernel.python to the payload interpreter"
            )
        return self

    @property
    def kernel_python(self) -> str:
        """Return the interpreter the kernel runs: explicit, or derived."""
        python = self.kernel.python or derived_python(self.install, self.name)
        assert python is not None
        return python


def conda_prefix(spec: CondaStep, payload_name: str) -> str:
    """Return a conda step's prefix: explicit, or ``/opt/conda/envs/<payload>``."""
    return spec.prefix or f"/opt/conda/envs/{payload_name}"


def derived_python(steps: list[InstallStep], payload_name: str) -> str | None:
    """Return the payload interpreter implied by the last step that knows it."""
    for step in reversed(steps):
        spec = step.spec
        if isinstance(spec, PipStep):
            return f"{spec.prefix}/bin/python"
        if isinstance(spec, CondaStep):
            return f"{conda_prefix(spec, payload_name)}/bin/python"
        if isinstance(spec, ScriptStep | TransplantStep) and spec.python:
            return spec.python
    return None
