"""Pick the images a build starts from; build the base and payloads.

A payload build runs each stage once, one way: load (by the caller) ->
plan -> resolve -> render -> build. ``nublado-build render`` runs the same
stages up to render, so its context is byte-identical to the one built.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nubladobuild.bootstrap import bootstrap, local_tag, official_tag
from nubladobuild.builder import (
    BuildResult,
    LineSink,
    PayloadSource,
    check_tags,
    run_build,
)
from nubladobuild.engine import inspect_image, pull_image
from nubladobuild.errors import InputError
from nubladobuild.loader import LoadedPayload
from nubladobuild.pairing import Pairing, verify_build
from nubladobuild.plan import Plan, build_plan
from nubladobuild.profiles import DEFAULT_PROFILE, check_profile, require_current
from nubladobuild.progress import Progress
from nubladobuild.refs import BadReference, parse_reference
from nubladobuild.render import render
from nubladobuild.resolve import Resolved, resolve
from nubladobuild.resources import data_root
from nubladobuild.secrets import BuildSecrets

#: The last second ``SOURCE_DATE_EPOCH`` may name (9999-12-31T23:59:59Z).
_LAST_EPOCH = 253402300799
#: --python-image choices besides an explicit image reference.
PYTHON_IMAGE_CHOICES = ("auto", "official", "local")


def _exists(image: str) -> bool:
    return inspect_image(image) is not None


def _pull(image: str) -> bool:
    return pull_image(image)


def resolve_python_image(choice: str, suite: str = "trixie",
                         mirror: str | None = None,
                         progress: Progress | None = None) -> str:
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
    progress
        Shows the stand-in's build phases (debootstrap, import).
    """
    official, local = official_tag(suite), local_tag(suite)
    if choice == "official":
        if _exists(official) or _pull(official):
            return official
        raise InputError(f"--python-image official: {official} is not present and "
                         "cannot be pulled (no registry access?). Use "
                         "--python-image local to build it from Debian packages.")
    if choice == "local":
        return local if _exists(local) else \
            bootstrap(suite, mirror, progress=progress).tag
    if choice == "auto":
        if _exists(official) or _pull(official):
            return official
        return local if _exists(local) else \
            bootstrap(suite, mirror, progress=progress).tag
    try:
        parse_reference(choice)
    except BadReference as exc:
        raise InputError(f"--python-image: {exc}") from None
    if not (_exists(choice) or _pull(choice)):
        raise InputError(f"--python-image {choice}: image not present and cannot be "
                         "pulled. Check the name or your registry access.")
    return choice


@dataclass(frozen=True)
class BaseOptions:
    """Build options of the JupyterLab base (Dockerfile.base ARGs).

    ``profile`` is the base profile the lab venv comes from
    (``base/profiles/``, see :mod:`nubladobuild.profiles`); ``jupyterhub``
    is the hub major version its lock is for; ``minimal`` installs tini
    only, no terminal tools; the user, uid, gid and home are the lab user's.
    """

    profile: str = DEFAULT_PROFILE
    jupyterhub: int = 6
    minimal: bool = False
    user: str = "lab"
    uid: int = 1000
    gid: int = 100
    home: str = "/home/lab"

    def build_args(self) -> dict[str, str]:
        """Return the Dockerfile.base build arguments."""
        return {"LAB_PROFILE": self.profile,
                "JUPYTERHUB_MAJOR": str(self.jupyterhub),
                "TOOLS": "minimal" if self.minimal else "default",
                "LAB_USER": self.user, "LAB_UID": str(self.uid),
                "LAB_GID": str(self.gid), "LAB_HOME": self.home}


def build_base(*, python_image: str, tags: list[str], secrets: BuildSecrets,
               sink: LineSink | None, extra_apt: str = "",
               no_cache: bool = False,
               options: BaseOptions | None = None) -> BuildResult:
    """Build nublado-jupyterlab-base from Dockerfile.base and base/.

    Raises
    ------
    InputError
        The options name a profile that does not exist.
    LockOutdated
        The profile's lock for the hub major is missing or not current.
    """
    root = data_root()
    options = options or BaseOptions()
    check_profile(options.profile)
    require_current(options.profile, options.jupyterhub)
    return run_build(
        what="base image", context=root, dockerfile=root / "Dockerfile.base",
        build_args={"BASE_IMAGE": python_image, "EXTRA_APT_PACKAGES": extra_apt,
                    **options.build_args()},
        tags=tags, secrets=secrets, sink=sink, no_cache=no_cache)


@dataclass(frozen=True)
class PayloadBuild:
    """A built payload image, its plan, what resolve found, the pairing check."""

    plan: Plan
    resolved: Resolved
    result: BuildResult
    pairing: Pairing


def prepare_context(plan: Plan, out: Path, *, conda_channels: Sequence[str] = (),
                    fetch: bool = True) -> tuple[Resolved, Path]:
    """Resolve a plan and render it into ``out``.

    The one path from a plan to a build context, used by both ``render``
    and ``build``.
    """
    resolved = resolve(plan, conda_channels=conda_channels, fetch=fetch)
    return resolved, render(plan, resolved, out)


def created_timestamp(environ: dict[str, str] | None = None) -> str:
    """Return the ``org.opencontainers.image.created`` value: RFC 3339, UTC.

    ``SOURCE_DATE_EPOCH`` (seconds since the epoch, for reproducible
    builds) when it is set to a whole number up to the year 9999, else now.
    """
    value = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "")
    value = value.strip()
    seconds = int(value) if value.isascii() and value.isdigit() \
        and int(value) <= _LAST_EPOCH else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def build_label_args(name: str, tags: Sequence[str]) -> dict[str, str]:
    """Return the build arguments of the build-time labels (``render.BUILD_LABELS``).

    The version is the tag part of the first tag the image gets (the first
    ``--tag``, else ``latest`` of the default ``<name>:latest``).
    """
    pairs = check_tags(list(tags) or [f"{name}:latest"])
    return {"NUBLADO_CREATED": created_timestamp(),
            "NUBLADO_IMAGE_VERSION": pairs[0][1]}


def plan_payload(loaded: LoadedPayload, base_image: str) -> Plan:
    """Plan a loaded payload on a base image (stage 2; see :mod:`plan`)."""
    return build_plan(loaded, base_image)


def payload_source(plan: Plan) -> PayloadSource:
    """Return the payload file and its install steps' lines (failure messages)."""
    loaded = plan.loaded
    lines = {index: line for index in range(len(loaded.model.install))
             if (line := loaded.line_for(("install", index))) is not None}
    return PayloadSource(str(loaded.yaml_path), lines)


def build_payload(*, plan: Plan, tags: list[str], secrets: BuildSecrets,
                  sink: LineSink | None, workdir: Path, no_cache: bool = False,
                  conda_channels: Sequence[str] = (),
                  test: Callable[[str], None] | None = None) -> PayloadBuild:
    """Resolve, render and build a planned payload image.

    Parameters
    ----------
    plan
        The payload's plan (its base image included).
    tags
        Tags for the image (default ``<name>:latest``), applied on success.
    secrets
        Build secrets.
    sink
        Receives build output lines; None is quiet.
    workdir
        Where the context is rendered (``<workdir>/<name>``).
    no_cache
        Rebuild every step.
    conda_channels
        Channels that replace those of every conda step.
    test
        Called with the untagged image's ID after the pairing check and
        before any tag (``build --test``: the image contract); what it
        raises leaves the image untagged.
    """
    name = plan.name
    base_image = plan.base_image
    resolved, context = prepare_context(plan, workdir / name,
                                        conda_channels=conda_channels)
    for fetched in resolved.conda:
        if sink is not None:
            sink(f"install[{fetched.index}].conda: {fetched.packages} packages "
                 f"fetched ({fetched.source})")
    checked: list[Pairing] = []

    def check(image_id: str) -> None:
        # Before tagging: a payload whose kernel packages lack their lab
        # frontends is a failed build (unless lab.pairing says warn).
        checked.append(verify_build(image_id, name,
                                    plan.loaded.model.lab.pairing))
        if test is not None:
            test(image_id)

    result = run_build(
        what=f"payload {name}", context=context,
        dockerfile=context / "Dockerfile",
        build_args={"BASE_IMAGE": base_image,
                    **build_label_args(name, tags)},
        tags=tags or [f"{name}:latest"], secrets=secrets,
        sink=sink, no_cache=no_cache, check=check,
        payload=payload_source(plan))
    return PayloadBuild(plan=plan, resolved=resolved, result=result,
                        pairing=checked[0])


#: The label that names the nubladobuild version that built an image.
BUILD_VERSION_LABEL = "io.nublado.build.version"


def up_to_date(plan: Plan, tag: str) -> bool:
    """Whether the image at ``tag`` is what building ``plan`` would make now.

    It is when its labels record the same inputs (every file the loader
    read and the base profile: ``io.nublado.inputs.sha256``), the same base
    image (``io.nublado.base.digest``: the base's ID, so a rebuilt base
    rebuilds every payload) and the same nubladobuild version. The build
    time, tags and git revision do not count.

    Parameters
    ----------
    plan
        The payload's plan (its base image included).
    tag
        The image reference the build would tag.

    Returns
    -------
    bool
        True when a build can be skipped.
    """
    from nubladobuild import __version__
    from nubladobuild.profiles import PROFILE_LABEL
    from nubladobuild.resolve import BASE_DIGEST_LABEL, INPUTS_LABEL, inputs_sha256

    base, image = inspect_image(plan.base_image), inspect_image(tag)
    if base is None or image is None:
        return False
    want = {BASE_DIGEST_LABEL: base.id,
            INPUTS_LABEL: inputs_sha256(plan.loaded,
                                        base.labels.get(PROFILE_LABEL, "")),
            BUILD_VERSION_LABEL: __version__}
    return all(image.labels.get(name) == value for name, value in want.items())
