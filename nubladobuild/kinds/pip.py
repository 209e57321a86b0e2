"""The ``pip`` kind: a requirements file installed into a venv."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from nubladobuild.fields import Prefix, RelFile, Strict
from nubladobuild.kinds._protocol import (
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
)
from nubladobuild.piplock import input_digest, recorded_digest
from nubladobuild.requirements import Requirements, parse_requirements

#: Where the requirements file goes in the step's context directory.
REQUIREMENTS = "requirements.txt"


class PipStep(Strict):
    """A pip ``requirements.txt`` installed into a venv."""

    requirements: RelFile
    prefix: Prefix = "/opt/payload/venv"
    python: str = Field(
        default="python3",
        pattern=r"^(/[A-Za-z0-9._+/-]+|python3(\.[0-9]+)?)$",
        description="Interpreter that creates the venv (path or python3[.N]).",
    )
    installer: Literal["pip", "uv"] = "pip"
    #: A hash lock of ``requirements`` made by ``nublado-build lock``; when
    #: given, the step installs it (``--require-hashes``) instead.
    lock: RelFile | None = None


def lock_input(text: bytes, reqs: Requirements) -> bytes:
    """Return the requirements as the step installs them: ipykernel added.

    The kernel needs ipykernel; a file that lacks it gets it (the loader
    refuses hash-locked files that lack it). A ``lock`` is made from, and
    records the digest of, exactly this text.
    """
    if reqs.has("ipykernel"):
        return text
    return (text.rstrip(b"\n") + b"\n# added by nublado-build for the kernel\n"
            b"ipykernel\n") if text.strip() else b"ipykernel\n"


def _read_text(ctx: StepContext, field: str, name: str, hint: str) -> str | None:
    """Read a payload file as UTF-8 text; None after a problem (``hint`` ends it)."""
    data = ctx.read(field, name)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        ctx.problem(field, f"{name!r} is not UTF-8 text{hint}")
        return None


def load(spec: PipStep, ctx: StepContext) -> None:
    """Read the requirements file and refuse what the boundary forbids."""
    text = _read_text(ctx, "requirements", spec.requirements, "")
    if text is None:
        return
    data = text.encode("utf-8")
    reqs = parse_requirements(text)
    for line, message in reqs.problems:
        ctx.problem("requirements", f"{spec.requirements}:{line}: {message}")
    if reqs.hashed and not reqs.has("ipykernel") \
            and ctx.kernel_python == f"{spec.prefix}/bin/python":
        ctx.problem("requirements",
                    f"{spec.requirements!r} is hash-locked but lacks ipykernel, "
                    "which the kernel needs; add ipykernel to the input and lock "
                    "again")
    ctx.input.extra = reqs
    if spec.lock is not None and reqs.hashed:
        ctx.problem("lock", f"{spec.requirements!r} is hash-locked already; "
                    "install it as it is and drop lock")
    elif spec.lock is not None and not ctx.locking:
        _check_lock(spec, ctx, lock_input(data, reqs))


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
    """Plan the step: its requirements (with ipykernel added) and settings."""
    reqs = step.extra
    if spec.lock is not None:  # the loader checked it is current and hashed
        text, hashed = step.files[spec.lock], True
    else:
        text, hashed = lock_input(step.files[spec.requirements], reqs), reqs.hashed
    return StepPlan(
        index=index,
        kind=KIND.name,
        dir=KIND.step_dir(index),
        files={REQUIREMENTS: text},
        vars={
            "python": spec.python,
            "prefix": spec.prefix,
            "installer": spec.installer,
            "hashes": "hashes" if hashed else "nohashes",
        },
    )


def environment(spec: PipStep, payload_name: str) -> Environment:
    """Return the venv the step makes."""
    return Environment(spec.prefix, f"{spec.prefix}/bin/python", "venv")


KIND = Kind(name="pip", model=PipStep, load=load, plan=plan,
            environment=environment, files=("requirements", "lock"))
