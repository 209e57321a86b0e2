"""Stage 3, resolve: everything a build needs from the outside world, once.

The base image's user (the payload image keeps it, written as a literal
``USER``) and ID, from the engine; each conda step's packages, solved or
read from its lock and fetched into a host cache. Render and build of the
same plan and base then write byte-identical contexts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from nubladobuild import engine
from nubladobuild.condabuild import CondaFetch, fetch_conda_packages
from nubladobuild.errors import InputError
from nubladobuild.fields import control_characters
from nubladobuild.plan import STAGES, Plan

#: The user of a base image that names none (Docker's default is root,
#: which a lab image never runs as).
DEFAULT_LAB_USER = "1000:100"
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?\Z")


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
    conda = tuple(fetch_conda_packages(plan.loaded, conda_channels)) if fetch else ()
    return Resolved(base_id=info.id, lab_user=user,
                    entrypoint=tuple(info.entrypoint or ()),
                    cmd=tuple(info.cmd or ()), workdir=workdir, conda=conda,
                    fetched=fetch)
