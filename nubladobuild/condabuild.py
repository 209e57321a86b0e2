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
    environment_hashes,
    fetch_packages,
    solve,
    write_lock,
)
from nubladobuild.condalock import read_lock_file, stale_reasons
from nubladobuild.errors import (
    BuildFailed,
    CondaError,
    InputError,
    LockOutdated,
)
from nubladobuild.kinds.conda import CondaStep
from nubladobuild.loader import LoadedPayload
from nubladobuild.secrets import mask_url

#: Channels used when neither the command line, the step nor the file names any.
DEFAULT_CHANNELS = ("conda-forge",)
#: Lock file written by ``nublado-build lock`` for a step without ``lock:``.
DEFAULT_LOCK_FILE = "conda-lock.yml"
#: The conda platform of the images built (the lock's records installed).
IMAGE_PLATFORM = "linux-64"


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
    platforms: tuple[str, ...] = (IMAGE_PLATFORM,)


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


def _channels_env(loaded: LoadedPayload, index: int, spec: CondaStep,
                  channels: Sequence[str]) -> CondaEnvironment:
    """Return a step's environment with the channels it is solved against."""
    env: CondaEnvironment = loaded.inputs[index].extra[0]
    return dataclasses.replace(env, channels=effective_channels(spec, env, channels))


def _solve(loaded: LoadedPayload, index: int, env: CondaEnvironment,
           platform: str = IMAGE_PLATFORM) -> list[Any]:
    try:
        return solve(env, platform=platform)
    except CondaError as exc:
        raise InputError(f"{_where(loaded, index, 'environment')}: {exc}\n"
                         f"(channels: {', '.join(env.channels)}). Check that the "
                         "channels are reachable and hold every package asked "
                         "for; name others with `channels:` in the step or "
                         "--conda-channel URL (a local file:// channel works "
                         "offline), or install from a `lock:` file.") from None


def _records(loaded: LoadedPayload, index: int, spec: CondaStep,
             channels: Sequence[str], use_lock: bool) -> tuple[list[Any], str,
                                                               CondaEnvironment]:
    env, locked = loaded.inputs[index].extra
    if use_lock and spec.lock:
        return list(locked), f"lock {spec.lock}", env
    env = _channels_env(loaded, index, spec, channels)
    records = _solve(loaded, index, env)
    return records, f"solved against {', '.join(env.channels)}", env


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
                 check: bool = False,
                 platforms: Sequence[str] = (IMAGE_PLATFORM,)) -> list[LockResult]:
    """Solve each conda step and write (or check) its lock file.

    The lock is in conda-lock's format (``conda-lock.yml`` v1), with the
    records of every platform asked for; the build installs those of
    :data:`IMAGE_PLATFORM`.

    Parameters
    ----------
    loaded
        The validated payload.
    channels
        Channels that replace those of every step and environment file.
    check
        Do not solve or write; fail when a lock is missing, unreadable,
        lacks a platform or was made for another environment or channels
        (its ``content_hash``).
    platforms
        Conda platforms to solve for (default the image's, linux-64).

    Returns
    -------
    list of LockResult
        One entry per conda step.

    Raises
    ------
    LockOutdated
        With ``check``, naming every missing or stale lock (exit code 1).
    """
    wanted = tuple(sorted(set(platforms))) or (IMAGE_PLATFORM,)
    results = []
    stale: list[str] = []
    for index, spec in _conda_steps(loaded):
        env = _channels_env(loaded, index, spec, channels)
        name = spec.lock or DEFAULT_LOCK_FILE
        path = loaded.directory / name
        hint = None if spec.lock else (f"add 'lock: {name}' to install[{index}]"
                                       ".conda in payload.yaml to build from it")
        if check:
            if not path.is_file():
                stale.append(f"{path}: no lock file for install[{index}].conda")
                continue
            try:
                lock = read_lock_file(path)
            except CondaError as exc:
                stale.append(exc.message)
                continue
            reasons = stale_reasons(lock, environment_hashes(env, wanted))
            if reasons:
                stale.append(f"{path}: the lock of install[{index}].conda is out "
                             f"of date ({'; '.join(reasons)})")
                continue
            count = len(lock.packages_for(IMAGE_PLATFORM)) or len(lock.package)
            results.append(LockResult(index, path, count, False, hint, wanted))
            continue
        secret = [c for c in env.channels if mask_url(c) != c]
        if secret:
            # A lock names every package by its URL and is committed: the
            # channel's credentials would end up in the repository.
            raise InputError(
                f"{_where(loaded, index, 'environment')}: channel "
                f"{mask_url(secret[0])} carries credentials, which a lock file "
                "would store with every package URL. Lock against the channel "
                "without credentials in its URL, or build without a lock (the "
                "credentials then reach the solve and the download only).")
        solutions = {p: _solve(loaded, index, env, p) for p in wanted}
        source = os.path.relpath(loaded.directory / spec.environment, path.parent)
        write_lock(solutions, env, path, sources=[Path(source).as_posix()])
        count = len(solutions.get(IMAGE_PLATFORM) or solutions[wanted[0]])
        results.append(LockResult(index, path, count, True, hint, wanted))
    if stale:
        flags = "".join(f" --platform {p}" for p in wanted)
        raise LockOutdated("\n".join(stale) + f"\nrun `nublado-build lock{flags}` "
                           "to write them again")
    return results
