"""The ``script`` kind: an install script run with ``PAYLOAD_PREFIX`` set.

The script runs (``base/build/run-install-script``) as root in a copy of the
payload directory with ``PAYLOAD_PREFIX``, ``PAYLOAD_PYTHON`` (the payload
environment earlier steps made, when there is one), the step's ``env``,
``HOME`` a throwaway directory, and ``PATH`` :func:`search_path` first.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from nubladobuild.fields import (
    SECRET_IDS,
    EnvName,
    EnvValue,
    Interpreter,
    Prefix,
    RelFile,
    SecretName,
    Strict,
)
from nubladobuild.kinds._protocol import (
    MAX_TREE_BYTES,
    MAX_TREE_FILES,
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
    file_mode,
    special_kind,
)

if TYPE_CHECKING:
    from nubladobuild.schema import Payload

#: Names skipped when the payload directory is copied into the build.
SKIP_NAMES = ("__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache")
#: Environment names a script's ``env`` may not set: they would override the
#: operator's index or CA settings, or run code in every shell of the build.
RESERVED_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST",
                "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_CERT", "PIP_CONFIG_FILE",
                "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_DEFAULT_INDEX",
                "UV_FIND_LINKS", "CONDA_CHANNELS", "SSL_CERT_FILE", "SSL_CERT_DIR",
                "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "BASH_ENV", "ENV",
                "PAYLOAD_PREFIX", "PAYLOAD_PYTHON", "HOME", "PATH",
                "LD_PRELOAD", "LD_LIBRARY_PATH")
#: The context directory of the payload files, shared by every script step
#: (one copy, however many steps run scripts).
PAYLOAD_DIR = "payload"


class ScriptStep(Strict):
    """An install script run with ``PAYLOAD_PREFIX`` set."""

    path: RelFile
    prefix: Prefix
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=256)
    python: Interpreter | None = None
    secrets: list[SecretName] = Field(default_factory=list, max_length=2)


def _walk(root: Path, ctx: StepContext, skip: tuple[str, ...]) -> None:
    """Read every file under ``root`` into the step input, within bounds."""
    total = 0
    resolved_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and d not in SKIP_NAMES)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or rel in skip or \
                    any(rel.startswith(s + "/") for s in skip if s):
                continue
            try:
                mode = path.lstat().st_mode
                if stat.S_ISLNK(mode):
                    target = path.resolve(strict=True)
                    target.relative_to(resolved_root)
                    mode = target.stat().st_mode
            except (OSError, RuntimeError):
                ctx.problem("path", f"payload file {rel!r} is a symbolic link "
                            "that loops or points to nothing; remove it")
                continue
            except ValueError:
                ctx.problem("path", f"payload file {rel!r} is a symbolic link "
                            "out of the payload directory; copy the file in")
                continue
            special = special_kind(mode)
            if special is not None:
                ctx.problem("path", f"payload file {rel!r} is {special}; remove "
                            "it from the payload directory")
                continue
            if not stat.S_ISREG(mode):
                continue
            data = path.read_bytes()
            total += len(data)
            if total > MAX_TREE_BYTES or len(ctx.input.files) >= MAX_TREE_FILES:
                ctx.problem("path", "the payload directory, which script steps "
                            f"copy into the build, is over {MAX_TREE_BYTES >> 20} "
                            f"MiB or {MAX_TREE_FILES} files; move large data out "
                            "and download it in the script")
                return
            ctx.input.files[rel] = data
            ctx.input.modes[rel] = file_mode(path)


def load(spec: ScriptStep, ctx: StepContext) -> None:
    """Read the script and the payload directory it runs in."""
    for name in spec.env:
        if name.upper() in RESERVED_ENV or name.startswith(("NUBLADO_", "LAB_")):
            ctx.problem(("env", name), f"{name} may not be set by a payload "
                        "script: it would override the operator's index, CA or "
                        "build settings; remove it")
    if ctx.read("path", spec.path) is None:
        return
    _walk(ctx.directory, ctx, ctx.exclude)


def earlier_environments(index: int, payload: Payload) -> list[Environment]:
    """Return the Python environments the steps before ``index`` make, in order."""
    from nubladobuild.kinds import KINDS  # the registry imports this module

    envs = (KINDS[s.kind].environment(s.spec, payload.name)
            for s in payload.steps()[:index])
    return [env for env in envs if env is not None]


def search_path(index: int, spec: ScriptStep, payload: Payload) -> str:
    """Return the directories the script finds commands in before the image's PATH.

    The bin directory of the step's own ``python`` (when set), the step's
    ``<prefix>/bin``, then the bin directories of the environments earlier
    steps made, the latest first (the payload environment so far leads);
    each once.
    """
    dirs = [posixpath.dirname(spec.python)] if spec.python else []
    dirs.append(posixpath.join(spec.prefix, "bin"))
    dirs += [env.bin for env in reversed(earlier_environments(index, payload))]
    return ":".join(dict.fromkeys(dirs))


def payload_python(index: int, payload: Payload) -> str:
    """Return the interpreter of the payload environment before step ``index``.

    The last earlier step's environment that has one; "" when none does.
    """
    envs = earlier_environments(index, payload)
    return envs[-1].python if envs else ""


def plan(index: int, spec: ScriptStep, step: StepInput, payload: Payload) -> StepPlan:
    """Plan the step: the payload directory, the script and its settings."""
    return StepPlan(
        index=index,
        kind=KIND.name,
        dir=PAYLOAD_DIR,
        files=dict(sorted(step.files.items())),
        modes=dict(step.modes),
        vars={"step": f"install[{index}].{KIND.name}", "path": spec.path,
              "prefix": spec.prefix,
              "search_path": search_path(index, spec, payload),
              "python": payload_python(index, payload)},
        data={"env": sorted(spec.env.items()),
              "secrets": [i for name in sorted(set(spec.secrets))
                          for i in SECRET_IDS[name]]},
    )


def environment(spec: ScriptStep, payload_name: str) -> Environment | None:
    """Return the script's interpreter environment, when it names one."""
    if spec.python is None:
        return None
    return Environment(spec.prefix, spec.python)


KIND = Kind(name="script", model=ScriptStep, load=load, plan=plan,
            environment=environment, files=("path",))
