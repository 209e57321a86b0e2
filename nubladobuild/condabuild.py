"""The conda kind on the host: solve or read the lock, fetch, lock files.

Rendering stays pure (:mod:`nubladobuild.render` only writes the plan); the
conda packages are put into the rendered context afterwards by
:func:`fetch_conda_packages`, which ``nublado-build build`` always runs and
``nublado-build render`` runs unless ``--no-fetch`` is given. The build
stage then installs exactly those files, with no solving and no conda
channel access inside the build.

Channels, first match wins: ``--conda-channel`` (or ``NUBLADO_CONDA_CHANNEL``),
the step's ``channels``, the environment file's ``channels``, then
``conda-forge``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubladobuild.conda import (
    CondaEnvironment,
    CondaError,
    fetch_packages,
    load_environment,
    read_lock,
    solve,
    write_lock,
)
from nubladobuild.errors import (
    BuildFailed,
    EnvironmentProblem,
    InputError,
    NubladoError,
)
from nubladobuild.loader import LoadedPayload
from nubladobuild.plan import Plan
from nubladobuild.schema import CondaStep
from nubladobuild.steps import CONDA_PACKAGES

#: Channels used when neither the command line, the step nor the file names any.
DEFAULT_CHANNELS = ("conda-forge",)
#: Lock file written by ``nublado-build lock`` for a step without ``lock:``.
DEFAULT_LOCK_FILE = "conda-lock.yml"


class LockOutdated(NubladoError):
    """A lock file is missing or no longer matches its environment file."""


@dataclass(frozen=True)
class CondaFetch:
    """What was put into a context for one conda step."""

    index: int
    packages: int
    source: str


@dataclass(frozen=True)
class LockResult:
    """The outcome of locking (or checking) one conda step."""

    index: int
    lock: Path
    packages: int
    written: bool
    hint: str | None = None


def _need_rattler() -> None:
    try:
        import rattler  # noqa: F401
    except ImportError:
        raise EnvironmentProblem(
            "conda payloads need py-rattler on this machine: pip install "
            "'nubladobuild[conda]' (or py-rattler)") from None


def _conda_steps(loaded: LoadedPayload) -> list[tuple[int, CondaStep]]:
    return [(i, s.conda) for i, s in enumerate(loaded.model.install)
            if s.conda is not None]


def effective_channels(spec: CondaStep, env: CondaEnvironment,
                       override: Sequence[str] = ()) -> list[str]:
    """Return the channels a step solves against (see the module docstring).

    Parameters
    ----------
    spec
        The conda step.
    env
        Its environment file.
    override
        Channels from the command line; they win when given.

    Returns
    -------
    list of str
        Channel names or URLs, in priority order.
    """
    if override:
        return list(override)
    if spec.channels:
        return list(spec.channels)
    if env.channels:
        return list(env.channels)
    return list(DEFAULT_CHANNELS)


def _where(loaded: LoadedPayload, index: int, field: str) -> str:
    return f"{loaded.yaml_path}: install[{index}].conda.{field}"


def _records(loaded: LoadedPayload, index: int, spec: CondaStep,
             channels: Sequence[str], use_lock: bool) -> tuple[list[Any], str,
                                                               CondaEnvironment]:
    try:
        env = load_environment(loaded.file(spec.environment))
    except CondaError as exc:
        raise InputError(f"{_where(loaded, index, 'environment')}: {exc}") from None
    if use_lock and spec.lock:
        try:
            return read_lock(loaded.file(spec.lock)), f"lock {spec.lock}", env
        except CondaError as exc:
            raise InputError(f"{_where(loaded, index, 'lock')}: {exc}") from None
    chosen = effective_channels(spec, env, channels)
    env = dataclasses.replace(env, channels=chosen)
    try:
        records = solve(env)
    except CondaError as exc:
        raise InputError(f"{_where(loaded, index, 'environment')}: {exc}\n"
                         f"(channels: {', '.join(chosen)}). Check that the "
                         "channels are reachable and hold every package asked "
                         "for; name others with `channels:` in the step or "
                         "--conda-channel URL (a local file:// channel works "
                         "offline), or install from a `lock:` file.") from None
    return records, f"solved against {', '.join(chosen)}", env


def fetch_conda_packages(plan: Plan, context: Path,
                         channels: Sequence[str] = ()) -> list[CondaFetch]:
    """Put each conda step's packages into a rendered build context.

    Solves each environment (or reads its lock file), then downloads or
    copies every archive, checked against its sha256, into
    ``<step dir>/pkgs`` with the ``records.json`` that the build stage reads.

    Parameters
    ----------
    plan
        The plan the context was rendered from.
    context
        The rendered context directory.
    channels
        Channels that replace those of every step and environment file.

    Returns
    -------
    list of CondaFetch
        One entry per conda step (empty without conda steps).

    Raises
    ------
    InputError
        When an environment or lock cannot be read or solved.
    EnvironmentProblem
        When py-rattler is missing.
    BuildFailed
        When a package cannot be fetched or its hash differs.
    """
    steps = {s.index: s for s in plan.steps if s.kind == "conda"}
    if not steps:
        return []
    _need_rattler()
    done = []
    for index, spec in _conda_steps(plan.loaded):
        records, source, env = _records(plan.loaded, index, spec, channels,
                                        use_lock=True)
        dest = context / steps[index].dir / CONDA_PACKAGES
        try:
            fetch_packages(records, dest, env.pip)
        except CondaError as exc:
            raise BuildFailed(f"install[{index}].conda: {exc}") from None
        done.append(CondaFetch(index, len(records), source))
    return done


def lock_payload(loaded: LoadedPayload, channels: Sequence[str] = (),
                 check: bool = False) -> list[LockResult]:
    """Solve each conda step and write (or check) its lock file.

    Parameters
    ----------
    loaded
        The validated payload.
    channels
        Channels that replace those of every step and environment file.
    check
        Do not write; fail when a lock is missing or differs from a fresh
        solve.

    Returns
    -------
    list of LockResult
        One entry per conda step.

    Raises
    ------
    LockOutdated
        With ``check``, when a lock file is missing or stale (exit code 1).
    """
    _need_rattler()
    results = []
    for index, spec in _conda_steps(loaded):
        records, _, env = _records(loaded, index, spec, channels, use_lock=False)
        name = spec.lock or DEFAULT_LOCK_FILE
        path = loaded.file(name)
        hint = None if spec.lock else (f"add 'lock: {name}' to install[{index}]"
                                       ".conda in payload.yaml to build from it")
        if check:
            if not path.is_file():
                raise LockOutdated(f"{path}: no lock file for install[{index}].conda;"
                                   " run `nublado-build lock` to write it")
            try:
                locked = read_lock(path)
            except CondaError as exc:
                raise LockOutdated(str(exc)) from None
            want = sorted((r.file_name, r.sha256) for r in records)
            have = sorted((r.file_name, r.sha256) for r in locked)
            if want != have:
                added = sorted({w[0] for w in want} - {h[0] for h in have})
                removed = sorted({h[0] for h in have} - {w[0] for w in want})
                raise LockOutdated(
                    f"{path}: the lock of install[{index}].conda is out of date "
                    f"(a fresh solve adds {', '.join(added) or 'nothing'}; removes "
                    f"{', '.join(removed) or 'nothing'}); run `nublado-build lock`")
            results.append(LockResult(index, path, len(records), False, hint))
            continue
        write_lock(records, env, path)
        results.append(LockResult(index, path, len(records), True, hint))
    return results
