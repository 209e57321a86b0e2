"""Hash locks of pip steps (``pip: {requirements: ..., lock: ...}``).

``nublado-build lock`` resolves a pip step's requirements with
``pip-compile --generate-hashes`` in a throwaway container of the base
image (the helper ``base/lab/lock-requirements``), for the interpreter the
step makes its venv from, so markers and wheels match the image, not this
host. The lock records the sha256 of the requirements it was made from
(ipykernel included when nublado-build adds it); the loader refuses a lock
whose input changed, and the build installs the lock with
``--require-hashes``. ``lock --check`` compares the recorded input with the
current one without resolving.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["INPUT_HEADER", "PipLockResult", "input_digest", "lock_pip_steps",
           "lock_text", "recorded_digest"]

#: The header line that records the lock's input.
INPUT_HEADER = "# nublado-lock-input: sha256="
_RECORDED = re.compile(r"^# nublado-lock-input: sha256=([0-9a-f]{64})$", re.M)


def input_digest(requirements: bytes) -> str:
    """Return the sha256 a lock records for the requirements it locks.

    Parameters
    ----------
    requirements
        The requirements as the step installs them (ipykernel added).

    Returns
    -------
    str
        The hex digest.
    """
    return hashlib.sha256(requirements).hexdigest()


def recorded_digest(lock: str) -> str | None:
    """Return the input digest a lock file records, or None when it has none."""
    match = _RECORDED.search(lock)
    return match.group(1) if match else None


def lock_text(*, where: str, requirements: str, python: str, base_image: str,
              digest: str, compiled: str) -> str:
    """Return the text of a pip lock file.

    Parameters
    ----------
    where
        The step, ``install[N].pip``.
    requirements
        The requirements file's name in the payload directory.
    python
        The interpreter the resolution was made for.
    base_image
        The image it was made on.
    digest
        :func:`input_digest` of the locked input.
    compiled
        pip-compile's output (pins with hashes).

    Returns
    -------
    str
        The lock, header first.
    """
    return (f"# Hash lock of {where} ({requirements}) for {python} on "
            f"{base_image},\n# made by `nublado-build lock`; do not edit: "
            f"change {requirements} and lock again.\n"
            f"{INPUT_HEADER}{digest}\n{compiled.rstrip()}\n")


@dataclass(frozen=True)
class PipLockResult:
    """What ``nublado-build lock`` did for one pip step."""

    index: int
    lock: Path
    packages: int
    written: bool


def _pins(text: str) -> int:
    return sum(1 for ln in text.splitlines() if re.match(r"^[A-Za-z0-9][^ ]*==", ln))


def lock_pip_steps(loaded: Any, *, base_image: str, secrets: Any, check: bool,
                   tools: Path) -> list[PipLockResult]:
    """Lock (or check) every pip step of a payload that names a ``lock`` file.

    Parameters
    ----------
    loaded
        The loaded payload (:class:`nubladobuild.loader.LoadedPayload`).
    base_image
        The base image whose interpreter the resolution runs on.
    secrets
        The build secrets (CA bundle, index) pip-compile uses.
    check
        Resolve nothing; raise :class:`LockOutdated` naming each lock that is
        missing or was made from other requirements.
    tools
        The directory of the image-side helper (``base/lab``).

    Returns
    -------
    list of PipLockResult
        One per pip step with a ``lock``.

    Raises
    ------
    LockOutdated
        With ``check``, when a lock is missing or stale.
    InputError
        When the step's interpreter is not in the base image, or the
        requirements cannot be resolved (pip-compile's own words).
    """
    from nubladobuild.errors import InputError, LockOutdated
    from nubladobuild.kinds.pip import lock_input
    from nubladobuild.lab import pip_errors, run_lock_helper

    results: list[PipLockResult] = []
    stale: list[str] = []
    for index, step in enumerate(loaded.model.steps()):
        if step.kind != "pip" or step.spec.lock is None:
            continue
        spec = step.spec
        path = loaded.directory / spec.lock
        data = lock_input(loaded.inputs[index].files[spec.requirements],
                          loaded.inputs[index].extra.reqs)
        digest = input_digest(data)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if check:
            if current is None or recorded_digest(current) != digest:
                why = "is missing" if current is None else \
                    f"was made from other requirements than {spec.requirements}"
                stale.append(f"{path}: {why}")
            else:
                results.append(PipLockResult(index, path, _pins(current), False))
            continue
        where = f"install[{index}].pip"
        with tempfile.TemporaryDirectory(prefix="nublado-pip-lock-") as tmp:
            io_dir = Path(tmp) / "io"
            io_dir.mkdir()
            (io_dir / "requirements.in").write_bytes(data)
            code, output = run_lock_helper(base_image, io_dir, tools,
                                           "lock-requirements", [spec.python],
                                           secrets)
            compiled = io_dir / "compiled.txt"
            if code == 3:
                raise InputError(
                    f"{loaded.yaml_path}: {where}.python: {spec.python} is not in "
                    f"{base_image}, so nublado-build cannot resolve for it; lock "
                    f"{spec.requirements} where that interpreter runs (pip-compile "
                    "--generate-hashes) and name the result as requirements")
            if code != 0 or not compiled.is_file():
                said = "\n".join(f"  | {ln}" for ln in
                                 pip_errors(output))
                raise InputError(f"{loaded.yaml_path}: {where}.requirements: "
                                 f"{spec.requirements} cannot be resolved on "
                                 f"{base_image} (pip-compile, exit {code}):\n{said}"
                                 "\nCheck the names and versions on the index.")
            text = lock_text(where=where, requirements=spec.requirements,
                             python=spec.python, base_image=base_image,
                             digest=digest, compiled=compiled.read_text())
        written = current != text
        if written:
            path.write_text(text, encoding="utf-8")
        results.append(PipLockResult(index, path, _pins(text), written))
    if stale:
        raise LockOutdated("; ".join(stale) + f". Run `nublado-build lock "
                           f"{loaded.directory}` and commit the lock files.")
    return results
