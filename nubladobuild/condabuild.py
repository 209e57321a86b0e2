"""The conda kind on the host: solve or read the lock, fetch, lock files.

Part of the resolve stage: :func:`fetch_conda_packages` solves each conda
step (or takes its lock) and fetches the packages into a host cache
directory; the render stage copies them into the build context. The build
stage then installs exactly those files, with no solving and no conda
channel access inside the build.

Channels, first match wins: ``--conda-channel`` (or ``NUBLADO_CONDA_CHANNEL``),
the step's ``channels``, the environment file's ``channels``, then
``conda-forge``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nubladobuild.conda import (
    CondaEnvironment,
    fetch_packages,
    read_lock,
    solve,
    write_lock,
)
from nubladobuild.errors import (
    BuildFailed,
    CondaError,
    InputError,
    LockOutdated,
)
from nubladobuild.kinds.conda import CondaStep
from nubladobuild.loader import LoadedPayload

#: Channels used when neither the command line, the step nor the file names any.
DEFAULT_CHANNELS = ("conda-forge",)
#: Lock file written by ``nublado-build lock`` for a step without ``lock:``.
DEFAULT_LOCK_FILE = "conda-lock.yml"


@dataclass(frozen=True)
class CondaFetch:
    """The fetched packages of one conda step, in a host cache directory."""

    index: int
    packages: int
    source: str
    directory: Path


@dataclass(frozen=True)
class LockResult:
    """The outcome of locking (or checking) one conda step."""

    index: int
    lock: Path
    packages: int
    written: bool
    hint: str | None = None


def _conda_steps(loaded: LoadedPayload) -> list[tuple[int, CondaStep]]:
    return [(i, s.spec) for i, s in enumerate(loaded.model.steps())
            if s.kind == "conda"]


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
    env, locked = loaded.inputs[index].extra
    if use_lock and spec.lock:
        return list(locked), f"lock {spec.lock}", env
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


def _cache_dir(records: Sequence[Any], pip: Sequence[str]) -> Path:
    """Return the host cache directory for one exact set of packages."""
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: r.file_name):
        sha = record.sha256.hex() if record.sha256 else ""
        digest.update(f"{record.file_name} {sha}\n".encode())
    for line in pip:
        digest.update(f"pip {line}\n".encode())
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "nublado-build" / "conda" / digest.hexdigest()[:32]


def fetch_conda_packages(loaded: LoadedPayload,
                         channels: Sequence[str] = ()) -> list[CondaFetch]:
    """Solve (or read the lock of) each conda step and fetch its packages.

    Every archive is downloaded or copied into a host cache directory and
    checked against its sha256, with the ``records.json`` that the build
    stage reads; the render stage copies the directory into the context.

    Parameters
    ----------
    loaded
        The loaded payload.
    channels
        Channels that replace those of every step and environment file.

    Returns
    -------
    list of CondaFetch
        One entry per conda step (empty without conda steps).

    Raises
    ------
    InputError
        When an environment cannot be solved.
    BuildFailed
        When a package cannot be fetched or its hash differs.
    """
    steps = _conda_steps(loaded)
    if not steps:
        return []
    done = []
    for index, spec in steps:
        records, source, env = _records(loaded, index, spec, channels,
                                        use_lock=True)
        dest = _cache_dir(records, env.pip)
        try:
            fetch_packages(records, dest, env.pip)
        except CondaError as exc:
            raise BuildFailed(f"install[{index}].conda: {exc.message}") from None
        done.append(CondaFetch(index, len(records), source, dest))
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
    results = []
    for index, spec in _conda_steps(loaded):
        records, _, env = _records(loaded, index, spec, channels, use_lock=False)
        name = spec.lock or DEFAULT_LOCK_FILE
        path = loaded.directory / name
        hint = None if spec.lock else (f"add 'lock: {name}' to install[{index}]"
                                       ".conda in payload.yaml to build from it")
        if check:
            if not path.is_file():
                raise LockOutdated(f"{path}: no lock file for install[{index}].conda;"
                                   " run `nublado-build lock` to write it")
            try:
                locked = read_lock(path)
            except CondaError as exc:
                raise LockOutdated(exc.message) from None
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
