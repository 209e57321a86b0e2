"""Stage 3, resolve: everything a build needs from the outside world, once.

The base image's user (the payload image keeps it, written as a literal
``USER``) and ID, from the engine; each conda step's packages, solved or
read from its lock and fetched into a host cache. Render and build of the
same plan and base then write byte-identical contexts.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nubladobuild import engine
from nubladobuild.condabuild import CondaFetch, fetch_conda_packages
from nubladobuild.errors import InputError
from nubladobuild.fields import control_characters
from nubladobuild.interpreter import check_against_base
from nubladobuild.lab import LOCK_FILE as LAB_LOCK
from nubladobuild.loader import PAYLOAD_FILE, LoadedPayload
from nubladobuild.plan import STAGES, Plan
from nubladobuild.profiles import PROFILE_LABEL

#: The user of a base image that names none (Docker's default is root,
#: which a lab image never runs as).
DEFAULT_LAB_USER = "1000:100"
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?\Z")
#: Provenance labels resolve adds to a payload image (besides the plan's).
BASE_DIGEST_LABEL = "io.nublado.base.digest"
INPUTS_LABEL = "io.nublado.inputs.sha256"
REVISION_LABEL = "org.opencontainers.image.revision"
SOURCE_LABEL = "org.opencontainers.image.source"
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
#: ``scheme://user:password@host`` : the user information is never a label.
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")
#: A label value longer than this is left out (a source URL, say).
MAX_LABEL_CHARS = 1024


@dataclass(frozen=True)
class Resolved:
    """What the outside world told the build about a plan.

    Attributes
    ----------
    base_id : str
        The base image's ID (``sha256:...``).
    lab_user : str
        The ``uid:gid`` the payload image runs as: the base image's user.
    conda : tuple of CondaFetch
        The fetched packages of each conda step.
    fetched : bool
        Whether conda packages were fetched (``render --no-fetch`` skips it).
    """

    base_id: str
    lab_user: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = "/"
    conda: tuple[CondaFetch, ...] = field(default_factory=tuple)
    fetched: bool = True
    labels: tuple[tuple[str, str], ...] = ()


def inputs_sha256(loaded: LoadedPayload, profile: str) -> str:
    """Return a sha256 over every file the loader read and the base profile.

    Pure and deterministic: each file (``payload.yaml``, each step's files,
    ``lab-requirements.txt``, the start hook's script) counts by its path
    relative to the payload directory and its bytes, sorted by path;
    modification times do not count. The base profile name comes last.
    """
    files: dict[str, bytes] = {PAYLOAD_FILE: loaded.source}
    for step in loaded.inputs:
        files.update(step.files)
    if loaded.lab_lock is not None:
        files[LAB_LOCK] = loaded.lab_lock
    if loaded.start_script is not None and loaded.model.start is not None:
        files[loaded.model.start.script] = loaded.start_script
    digest = hashlib.sha256()
    for path in sorted(files):
        name = path.encode("utf-8")
        content = files[path]
        digest.update(b"file %d %d\n" % (len(name), len(content)))
        digest.update(name)
        digest.update(content)
    digest.update(b"profile %d\n" % len(profile.encode("utf-8")))
    digest.update(profile.encode("utf-8"))
    return digest.hexdigest()


def _git(directory: Path, *args: str) -> str | None:
    """Return the stripped output of ``git -C DIRECTORY ARGS``, None on failure."""
    try:
        proc = subprocess.run(["git", "-C", str(directory), *args],
                              capture_output=True, text=True, timeout=30,
                              check=False, errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and out else None


def clean_source_url(url: str) -> str | None:
    """Return a remote URL fit for a label: no credentials, one safe line.

    ``https://user:token@host/repo`` loses its user information;
    ``git@host:repo`` (scp form) keeps its user, which is no secret.
    None when the URL has control characters or is too long.
    """
    url = _USERINFO.sub(r"\1", url.strip())
    if not url or control_characters(url) or len(url) > MAX_LABEL_CHARS \
            or any(c.isspace() for c in url):
        return None
    return url


def git_provenance(directory: Path) -> tuple[tuple[str, str], ...]:
    """Return the revision and source labels of a payload in a git checkout.

    ``git -C DIRECTORY rev-parse HEAD`` and ``git config remote.origin.url``;
    a label is left out when git, the checkout, a commit or the remote is
    missing.
    """
    labels: list[tuple[str, str]] = []
    revision = _git(directory, "rev-parse", "HEAD")
    if revision is not None and _COMMIT.match(revision):
        labels.append((REVISION_LABEL, revision))
    remote = _git(directory, "config", "remote.origin.url")
    source = clean_source_url(remote) if remote is not None else None
    if source is not None:
        labels.append((SOURCE_LABEL, source))
    return tuple(labels)


def provenance_labels(loaded: LoadedPayload, base_id: str, profile: str,
                      git: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Return the labels resolve adds: base digest, inputs hash, git provenance."""
    return ((BASE_DIGEST_LABEL, base_id),
            (INPUTS_LABEL, inputs_sha256(loaded, profile)), *git)


def resolve(plan: Plan, *, conda_channels: Sequence[str] = (),
            fetch: bool = True) -> Resolved:
    """Resolve a plan against the engine and the conda channels.

    Parameters
    ----------
    plan
        The plan.
    conda_channels
        Channels that replace those of every conda step.
    fetch
        Solve and fetch conda packages (a context without them cannot be
        built).

    Returns
    -------
    Resolved
        The base image's user and ID and the fetched packages.

    Raises
    ------
    InputError
        When the base image does not exist, or a conda step cannot be solved.
    PayloadInvalid
        When a pip step asks for a ``python3.N`` the base cannot run.
    EnvironmentProblem
        When no Docker engine answers.
    """
    STAGES.info("resolve %s", plan.name)
    info = engine.inspect_image(plan.base_image)
    if info is None:
        raise InputError(f"--base {plan.base_image}: no such image. Build it first "
                         "with `nublado-build base`, or name an existing base "
                         "image.")
    user = info.user
    if not user or user.split(":")[0] in ("0", "root"):
        user = DEFAULT_LAB_USER
    if not _USER.match(user):
        raise InputError(f"--base {plan.base_image}: its user {user!r} is not a "
                         "user[:group] of letters, digits and ._-; rebuild the "
                         "base with `nublado-build base`")
    workdir = info.workdir or "/"
    start = [*(info.entrypoint or []), *(info.cmd or []), workdir]
    if not workdir.startswith("/") or any(control_characters(v) for v in start):
        raise InputError(f"--base {plan.base_image}: its entrypoint, command or "
                         "working directory has control characters or a relative "
                         "path; rebuild the base with `nublado-build base`")
    # A pip step's python3.N the base cannot run: refused before any fetch or build
    check_against_base(plan.loaded, plan.base_image, info)
    conda = tuple(fetch_conda_packages(plan.loaded, conda_channels)) if fetch else ()
    profile = info.labels.get(PROFILE_LABEL, "")
    if control_characters(profile) or control_characters(info.id):
        raise InputError(f"--base {plan.base_image}: its ID or {PROFILE_LABEL} "
                         "label has control characters; rebuild the base with "
                         "`nublado-build base`")
    labels = provenance_labels(plan.loaded, info.id, profile,
                               git_provenance(plan.loaded.directory))
    return Resolved(base_id=info.id, lab_user=user,
                    entrypoint=tuple(info.entrypoint or ()),
                    cmd=tuple(info.cmd or ()), workdir=workdir, conda=conda,
                    fetched=fetch, labels=labels)
