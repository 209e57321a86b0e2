"""The payload.yaml schema: pydantic v2 models, strict, with clear messages.

Only shapes and values are checked here; the files a payload names are read
and checked by :mod:`nubladobuild.loader` through each install kind. The
install step model is made from the kinds registry
(:data:`nubladobuild.kinds.KINDS`): one optional field per kind, exactly
one given.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    model_validator,
)

from nubladobuild.fields import (
    LAB_ROOT,
    AbsPath,
    DnsLabel,
    EnvName,
    EnvValue,
    Interpreter,
    KernelName,
    Line,
    RelFile,
    Strict,
    Text,
    _absolute_path,
    inside,
)
from nubladobuild.kinds import KINDS, Environment
from nubladobuild.kinds.conda import CondaStep
from nubladobuild.kinds.dockerfile import DockerfileStep
from nubladobuild.kinds.pip import PipStep
from nubladobuild.kinds.script import ScriptStep
from nubladobuild.kinds.transplant import TransplantStep
from nubladobuild.lab import Lab

__all__ = [
    "INSTALL_KINDS", "LAB_ROOT", "MAX_STEPS", "CompatLink", "CondaStep",
    "DockerfileStep", "InstallStep", "Kernel", "Lab", "Payload", "PipStep",
    "ScriptStep", "Shell", "Tags", "TransplantStep",
]

#: The install kinds, by name, in registry order.
INSTALL_KINDS = tuple(KINDS)
#: At most this many install steps (each becomes build instructions).
MAX_STEPS = 64


class _InstallBase(Strict):
    """Behaviour of the generated :class:`InstallStep` model."""

    # Exactly one kind per step, said in the JSON Schema too (for editors).
    model_config = ConfigDict(json_schema_extra={"minProperties": 1,
                                                 "maxProperties": 1})

    @model_validator(mode="after")
    def _exactly_one(self) -> _InstallBase:
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
    def spec(self) -> Any:
        """Return this step's kind-specific settings (the kind's model)."""
        return getattr(self, self.kind)


#: One install step: exactly one of the kinds, each an optional field.
InstallStep = cast(type[_InstallBase], create_model(  # type: ignore[call-overload]
    "InstallStep", __base__=_InstallBase, __module__=__name__,
    **{name: (kind.model | None, None) for name, kind in KINDS.items()}))


class Kernel(Strict):
    """The Jupyter kernel that runs the payload Python."""

    name: KernelName
    display_name: Annotated[Line, StringConstraints(min_length=1, max_length=128)]
    python: Interpreter | None = None
    setup: list[Line] = Field(default_factory=list, max_length=256)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=256)

    @property
    def needs_wrapper(self) -> bool:
        """Whether the kernel runs through a generated wrapper script."""
        return bool(self.setup or self.env)


class Shell(Strict):
    """What a terminal inside the lab gets."""

    setup: list[Line] | None = Field(default=None, max_length=256)


#: Compat link targets that stand for a payload's generated kernel files.
COMPAT_PLACEHOLDERS = ("{kernel.json}", "{kernel.wrapper}", "{kernel.dir}")


def _compat_target(value: str) -> str:
    if value.startswith("{"):
        head, sep, rest = value.partition("}")
        head += sep
        if head not in COMPAT_PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {head!r}; use one of "
                             f"{', '.join(COMPAT_PLACEHOLDERS)} or an absolute path")
        if rest:
            if not rest.startswith("/"):
                raise ValueError(f"{value!r}: after {head} only a '/sub/path' may "
                                 "follow")
            _absolute_path(rest)
        return value
    value = _absolute_path(value)
    for root in ("/run", "/proc", "/sys", "/dev"):
        if inside(value, root):
            raise ValueError(f"{value!r} is in {root} (build-time secrets, kernel "
                             "and device files): a compat link may not point there")
    return value


class CompatLink(Strict):
    """An explicit legacy path and what it points to (see compat/)."""

    path: AbsPath
    target: Annotated[str, AfterValidator(_compat_target)]
    mode: Literal["link", "copy"] = "link"


class Tags(Strict):
    """How image tags are formed and checked."""

    policy: Literal["rsp", "semver", "calver"] = "rsp"


#: Image names a payload may not take: they would tag over the base.
RESERVED_NAMES = ("nublado-jupyterlab-base", "nublado-build")


def _payload_name(value: str) -> str:
    if value in RESERVED_NAMES:
        raise ValueError(f"{value!r} is reserved (it would tag over "
                         f"{value}:latest); choose another name")
    return value


class Payload(Strict):
    """A payload: what to install on the base, and how to start it."""

    name: Annotated[DnsLabel, AfterValidator(_payload_name)]
    description: Annotated[Text, StringConstraints(max_length=4096)] = ""
    install: list[InstallStep] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=MAX_STEPS)
    kernel: Kernel
    shell: Shell = Field(default_factory=Shell)
    compat: list[DnsLabel | CompatLink] = Field(default_factory=list, max_length=64)
    tags: Tags = Field(default_factory=Tags)
    tests: RelFile | None = None
    lab: Lab = Field(default_factory=Lab)

    @model_validator(mode="after")
    def _kernel_python_known(self) -> Payload:
        if self.kernel.python is None and derived_environment(
                self.steps(), self.name) is None:
            raise ValueError(
                "kernel.python cannot be derived from the install steps "
                "(no pip or conda step, and no 'python' on a script or "
                "transplant step); set kernel.python to the payload interpreter"
            )
        return self

    def steps(self) -> list[_InstallBase]:
        """Return the install steps (typed)."""
        return cast(list[_InstallBase], self.install)

    @property
    def environment(self) -> Environment:
        """Return the environment the kernel and terminal run: derived once here.

        The explicit ``kernel.python`` when given (with the step environment
        whose interpreter it is, for activation), else the last step that
        provides an interpreter.
        """
        envs = [e for e in (KINDS[s.kind].environment(s.spec, self.name)
                            for s in self.steps()) if e is not None]
        if self.kernel.python is None:
            env = derived_environment(self.steps(), self.name)
            assert env is not None  # the validator guarantees it
            return env
        python = self.kernel.python
        for env in reversed(envs):
            if env.python == python:
                return env
        prefix = python.rsplit("/", 2)[0] or "/"
        return Environment(prefix, python)

    @property
    def kernel_python(self) -> str:
        """Return the interpreter the kernel runs: explicit, or derived."""
        return self.environment.python


def derived_environment(steps: list[_InstallBase], payload_name: str
                        ) -> Environment | None:
    """Return the environment of the last step that provides an interpreter."""
    for step in reversed(steps):
        env = KINDS[step.kind].environment(step.spec, payload_name)
        if env is not None:
            return env
    return None


def conda_prefix(spec: CondaStep, payload_name: str) -> str:
    """Return a conda step's prefix: explicit, or ``/opt/conda/envs/<payload>``."""
    from nubladobuild.kinds.conda import prefix_of

    return prefix_of(spec, payload_name)
