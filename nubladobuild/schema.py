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
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

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
    _interpreter,
    inside,
)
from nubladobuild.kernels import BUILTIN_TESTS
from nubladobuild.kinds import KINDS, Environment
from nubladobuild.kinds.conda import CondaStep
from nubladobuild.kinds.dockerfile import DockerfileStep
from nubladobuild.kinds.pip import PipStep
from nubladobuild.kinds.script import ScriptStep
from nubladobuild.kinds.transplant import TransplantStep
from nubladobuild.lab import Lab

__all__ = [
    "INSTALL_KINDS", "LAB_ROOT", "MAX_KERNELS", "MAX_STEPS", "CompatLink",
    "CondaStep", "DockerfileStep", "InstallStep", "Kernel", "KernelTest", "Lab",
    "Payload", "PipStep", "ScriptStep", "Shell", "Start", "Tags", "TransplantStep",
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


#: At most this many kernels in ``kernels:``.
MAX_KERNELS = 16
#: What a payload without ``kernel`` and ``kernels`` is told.
MISSING_KERNEL = ("required field is missing: give kernel (one kernel) or kernels "
                  f"(a list of up to {MAX_KERNELS}, the first the default)")


def _located(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """Return a validation error at ``loc`` (a model validator's own is at the model).

    Raised inside a validator, its location is taken relative to the model
    being validated, so the loader names the field and its YAML line.
    """
    return ValidationError.from_exception_data("Payload", [InitErrorDetails(
        type=PydanticCustomError("nublado", message), loc=loc, input=value)])


class KernelTest(Strict):
    """Code the image contract runs in a kernel, and the stdout it must print."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    stdout: Annotated[Line, StringConstraints(max_length=1024)]


class Kernel(Strict):
    """A Jupyter kernel of the payload: Python (``python``) or any (``argv``)."""

    name: KernelName
    display_name: Annotated[Line, StringConstraints(min_length=1, max_length=128)]
    python: Interpreter | None = None
    argv: list[Annotated[Line, StringConstraints(min_length=1, max_length=1024)]] \
        | None = Field(default=None, min_length=1, max_length=64)
    language: Annotated[str, StringConstraints(
        pattern=r"^[A-Za-z][A-Za-z0-9_+#.-]{0,31}$")] | None = None
    test: KernelTest | None = None
    setup: list[Line] = Field(default_factory=list, max_length=256)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=256)

    @model_validator(mode="after")
    def _python_or_argv(self) -> Kernel:
        if self.argv is None:
            if self.language is not None and self.language.lower() != "python":
                raise _located(("language",), (
                    f"language {self.language!r} needs argv: a kernel without "
                    "argv runs ipykernel (Python); give argv (the kernel's "
                    "command with {connection_file}) or drop language"),
                    self.language)
            return self
        if self.python is not None:
            raise _located(("argv",), (
                "give python (a Python kernel, run by ipykernel) or argv (any "
                "other kernel's command), not both"), self.argv)
        try:
            _interpreter(self.argv[0])
        except ValueError as exc:
            raise _located(("argv", 0), f"the kernel's program: {exc}",
                           self.argv[0]) from None
        if not any("{connection_file}" in arg for arg in self.argv):
            raise _located(("argv",), (
                "argv must contain {connection_file}, where Jupyter puts the "
                "connection file (IRkernel: [/usr/bin/R, --slave, -e, "
                "'IRkernel::main()', --args, '{connection_file}'])"), self.argv)
        if self.language is None:
            raise _located(("language",), (
                "required with argv: the kernel's language as the kernel names "
                "it (R, julia, ...)"), None)
        if self.test is None and self.language.lower() not in BUILTIN_TESTS:
            raise _located(("test",), (
                f"the image contract runs code in every kernel, and has no "
                f"snippet for language {self.language!r} (it has one for "
                f"{', '.join(sorted(BUILTIN_TESTS))}); give test: {{code, stdout}} "
                "(a statement and the one line it prints)"), None)
        return self

    @property
    def needs_wrapper(self) -> bool:
        """Whether the kernel runs through a generated wrapper script."""
        return bool(self.setup or self.env)

    @property
    def language_name(self) -> str:
        """Return the kernel's language: given, or ``python``."""
        return self.language or "python"


class Start(Strict):
    """A start hook: a script run at lab start, before the server.

    repo2docker's ``start``: called as ``SCRIPT CMD...``, it must end with
    ``exec "$@"``; what it exports reaches kernels and terminals (see
    :mod:`nubladobuild.start`).
    """

    script: RelFile
    timeout: Annotated[int, Field(strict=True, ge=1, le=600)] = 60


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

    # Exactly one of kernel and kernels, said in the JSON Schema too (editors).
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["kernel"]}, {"required": ["kernels"]}]})

    name: Annotated[DnsLabel, AfterValidator(_payload_name)]
    description: Annotated[Text, StringConstraints(max_length=4096)] = ""
    install: list[InstallStep] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=MAX_STEPS)
    # Absent is allowed (one of the two), null is not (``_not_null``; the
    # JSON Schema drops the null branch, see payload_schema.py).
    kernel: Kernel | None = None
    kernels: list[Kernel] | None = Field(default=None, min_length=1,
                                         max_length=MAX_KERNELS)
    shell: Shell = Field(default_factory=Shell)
    compat: list[DnsLabel | CompatLink] = Field(default_factory=list, max_length=64)
    tags: Tags = Field(default_factory=Tags)
    tests: RelFile | None = None
    lab: Lab = Field(default_factory=Lab)
    start: Start | None = None

    @field_validator("kernel", "kernels", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # "kernel: ~" is a mistake, not "no kernel": say what goes there.
        if value is None:
            raise ValueError("must be a valid dictionary (name, display_name, ...) "
                             "for kernel, or a list of them for kernels; not null")
        return value

    @model_validator(mode="after")
    def _kernels_valid(self) -> Payload:
        if self.kernel is not None and self.kernels is not None:
            raise _located(("kernels",), (
                "give kernel (one kernel) or kernels (a list), not both; move "
                "the kernel into the kernels list"), None)
        if self.kernel is None and self.kernels is None:
            raise _located(("kernel",), MISSING_KERNEL, None)
        field = "kernel" if self.kernel is not None else "kernels"
        seen: dict[str, int] = {}
        for index, kernel in enumerate(self.all_kernels):
            loc: tuple[str | int, ...] = (field,) if field == "kernel" \
                else (field, index)
            where = "kernel" if field == "kernel" else f"kernels[{index}]"
            # Jupyter finds kernelspec directories case-insensitively.
            key = kernel.name.lower()
            if key in seen:
                raise _located(loc + ("name",), (
                    f"duplicate kernel name {kernel.name!r} (also "
                    f"kernels[{seen[key]}].name; Jupyter compares kernel names "
                    "case-insensitively); give each kernel its own name"),
                    kernel.name)
            seen[key] = index
            if index == 0 and kernel.argv is not None:
                raise _located(loc + ("argv",), (
                    "the first kernel is the payload's default (the terminal's "
                    "Python, what notebooks asking for python3 get): it must be "
                    "a Python kernel; list a Python kernel first"), kernel.argv)
            if kernel.argv is None and kernel.python is None and \
                    derived_environment(self.steps(), self.name) is None:
                raise _located(loc, (
                    f"{where}.python cannot be derived from the install steps "
                    "(no pip or conda step, and no 'python' on a script or "
                    f"transplant step); set {where}.python to the payload "
                    "interpreter"), None)
        return self

    @property
    def all_kernels(self) -> tuple[Kernel, ...]:
        """Return the payload's kernels, the default first."""
        if self.kernels is not None:
            return tuple(self.kernels)
        assert self.kernel is not None  # the validator guarantees one of them
        return (self.kernel,)

    @property
    def default_kernel(self) -> Kernel:
        """Return the default kernel: ``kernel``, or the first of ``kernels``."""
        return self.all_kernels[0]

    def steps(self) -> list[_InstallBase]:
        """Return the install steps (typed)."""
        return cast(list[_InstallBase], self.install)

    @property
    def environment(self) -> Environment:
        """Return the environment the default kernel and terminal run.

        See :meth:`kernel_environment`; the default kernel is always a
        Python kernel.
        """
        return self.kernel_environment(self.default_kernel)

    def kernel_environment(self, kernel: Kernel) -> Environment:
        """Return the environment a kernel runs: derived once here.

        The kernel's explicit ``python`` when given (with the step
        environment whose interpreter it is, for activation), else the last
        step that provides an interpreter. A kernel with ``argv`` gets the
        default kernel's (its PATH and activation, as in a terminal).
        """
        if kernel.argv is not None:
            return self.environment
        envs = [e for e in (KINDS[s.kind].environment(s.spec, self.name)
                            for s in self.steps()) if e is not None]
        if kernel.python is None:
            env = derived_environment(self.steps(), self.name)
            assert env is not None  # the validator guarantees it
            return env
        python = kernel.python
        for env in reversed(envs):
            if env.python == python:
                return env
        prefix = python.rsplit("/", 2)[0] or "/"
        return Environment(prefix, python)

    @property
    def kernel_python(self) -> str:
        """Return the interpreter the default kernel runs: explicit, or derived."""
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
