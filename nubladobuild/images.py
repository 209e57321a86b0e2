"""Pick the images a build starts from, and build the base and payloads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import docker.errors

from nubladobuild.bootstrap import bootstrap, local_tag, official_tag
from nubladobuild.builder import BuildResult, LineSink, run_build
from nubladobuild.engine import engine
from nubladobuild.errors import InputError
from nubladobuild.loader import LoadedPayload, load_payload
from nubladobuild.plan import DEFAULT_BASE_IMAGE, DEFAULT_LAB_USER, Plan, build_plan
from nubladobuild.render import render
from nubladobuild.resources import data_root
from nubladobuild.secrets import BuildSecrets

#: --python-image choices besides an explicit image reference.
PYTHON_IMAGE_CHOICES = ("auto", "official", "local")


def _exists(image: str) -> bool:
    try:
        engine().images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(image: str) -> bool:
    try:
        engine().images.pull(image)
    except docker.errors.APIError:
        return False
    return True


def resolve_python_image(choice: str, suite: str = "trixie",
                         mirror: str | None = None) -> str:
    """Return the python base image to build on, making it if needed.

    Parameters
    ----------
    choice
        ``official`` (pull ``python:3.x-slim-<suite>``), ``local`` (the
        debootstrap stand-in, built when missing), ``auto`` (official when
        present or pullable, else local), or an explicit image reference.
    suite
        Debian suite of the python image (``trixie`` is Python 3.13).
    mirror
        Debian mirror for building the local stand-in.
    """
    official, local = official_tag(suite), local_tag(suite)
    if choice == "official":
        if _exists(official) or _pull(official):
            return official
        raise InputError(f"--python-image official: {official} is not present and "
                         "cannot be pulled (no registry access?). Use "
                         "--python-image local to build it from Debian packages.")
    if choice == "local":
        return local if _exists(local) else bootstrap(suite, mirror).tag
    if choice == "auto":
        if _exists(official) or _pull(official):
            return official
        return local if _exists(local) else bootstrap(suite, mirror).tag
    if not (_exists(choice) or _pull(choice)):
        raise InputError(f"--python-image {choice}: image not present and cannot be "
                         "pulled. Check the name or your registry access.")
    return choice


@dataclass(frozen=True)
class BaseOptions:
    """Build options of the JupyterLab base (Dockerfile.base ARGs).

    ``jupyterhub`` is the hub major version the lab venv is locked for;
    ``minimal`` installs tini only, no terminal tools; the user, uid, gid
    and home are the lab user's.
    """

    jupyterhub: int = 6
    minimal: bool = False
    user: str = "lab"
    uid: int = 1000
    gid: int = 100
    home: str = "/home/lab"

    def build_args(self) -> dict[str, str]:
        """Return the Dockerfile.base build arguments."""
        return {"JUPYTERHUB_MAJOR": str(self.jupyterhub),
                "TOOLS": "minimal" if self.minimal else "default",
                "LAB_USER": self.user, "LAB_UID": str(self.uid),
                "LAB_GID": str(self.gid), "LAB_HOME": self.home}


def build_base(*, python_image: str, tags: list[str], secrets: BuildSecrets,
               sink: LineSink | None, extra_apt: str = "",
               no_cache: bool = False,
               options: BaseOptions | None = None) -> BuildResult:
    """Build nublado-jupyterlab-base from Dockerfile.base and base/."""
    root = data_root()
    return run_build(
        what="base image", context=root, dockerfile=root / "Dockerfile.base",
        build_args={"BASE_IMAGE": python_image, "EXTRA_APT_PACKAGES": extra_apt,
                    **(options or BaseOptions()).build_args()},
        tags=tags, secrets=secrets, sink=sink, no_cache=no_cache)


def base_user(base_image: str) -> str:
    """Return the user the base image runs as (the payload keeps it)."""
    try:
        user = engine().images.get(base_image).attrs["Config"].get("User") or ""
    except docker.errors.ImageNotFound:
        raise InputError(f"--base {base_image}: no such image. Build it first with "
                         "`nublado-build base`, or name an existing base "
                         "image.") from None
    return str(user) or DEFAULT_LAB_USER


def plan_payload(payload_dir: Path, base_image: str = DEFAULT_BASE_IMAGE,
                 lab_user: str = DEFAULT_LAB_USER) -> Plan:
    """Load, validate and plan a payload (no engine needed)."""
    return build_plan(load_payload(payload_dir), base_image, lab_user)


@dataclass(frozen=True)
class PayloadBuild:
    """A built payload image and its plan."""

    plan: Plan
    result: BuildResult


def build_payload(*, loaded: LoadedPayload, base_image: str, tags: list[str],
                  secrets: BuildSecrets, sink: LineSink | None, workdir: Path,
                  no_cache: bool = False,
                  conda_channels: Sequence[str] = ()) -> PayloadBuild:
    """Plan, render and build a validated payload image on a base image.

    Conda packages are solved (or read from the lock) and fetched into the
    rendered context before the build; ``conda_channels`` replaces the
    channels of every conda step.
    """
    from nubladobuild.condabuild import fetch_conda_packages

    plan = build_plan(loaded, base_image, base_user(base_image))
    context = render(plan, workdir / plan.loaded.model.name)
    for fetched in fetch_conda_packages(plan, context, conda_channels):
        if sink is not None:
            sink(f"install[{fetched.index}].conda: {fetched.packages} packages "
                 f"fetched ({fetched.source})")
    result = run_build(
        what=f"payload {plan.loaded.model.name}", context=context,
        dockerfile=context / "Dockerfile", build_args={"BASE_IMAGE": base_image},
        tags=tags or [f"{plan.loaded.model.name}:latest"], secrets=secrets,
        sink=sink, no_cache=no_cache)
    return PayloadBuild(plan=plan, result=result)
