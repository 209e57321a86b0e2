"""The one access point to Docker: the engine, the CLI and a BuildKit client.

Builds go through the Docker CLI with BuildKit (secrets and cache mounts);
the docker SDK (docker-py) only has the classic builder, so it serves for
images and inspection. Every other module reaches Docker through the
functions here.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import docker
import docker.errors

from nubladobuild.errors import EnvironmentProblem

_NO_ENGINE = (
    "No Docker engine answers at {where}. nublado-build builds and tests images "
    "with a real engine. Start one (`sudo systemctl start docker`, or run "
    "`sudo dockerd &` and wait for `docker info`), or point DOCKER_HOST at one. "
    "On Debian or Ubuntu install it with `sudo apt-get install docker.io`; "
    "`bash scripts/setup-docker` in the nubladobuild repository does all of it."
)
_NO_BUILDKIT = (
    "No BuildKit-capable Docker client was found (tried: {tried}). Builds need "
    "BuildKit for secrets and cache mounts. Install the buildx plugin "
    "(`docker-buildx` or `docker-buildx-plugin` package) or a Docker CLI with "
    "built-in BuildKit (20.10, Debian's docker.io), or name one with "
    "NUBLADO_BUILD_DOCKER=/path/to/docker."
)


@dataclass(frozen=True)
class BuildClient:
    """How to run a BuildKit build: the argv prefix and extra environment."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """Return a short human description of the client."""
        return " ".join(self.argv)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          check=False)


def _client_major(docker_bin: str) -> int | None:
    out = _run([docker_bin, "version", "--format", "{{.Client.Version}}"])
    match = re.match(r"(\d+)\.", out.stdout.strip())
    return int(match.group(1)) if match else None


def _candidates() -> list[str]:
    override = os.environ.get("NUBLADO_BUILD_DOCKER")
    if override:
        return [override]
    seen: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        path = Path(directory) / "docker"
        if path.is_file() and os.access(path, os.X_OK):
            real = str(path.resolve())
            if real not in seen:
                seen.append(real)
    return seen


@cache
def find_build_client() -> BuildClient:
    """Return a BuildKit-capable client: buildx, or a CLI with built-in BuildKit.

    Raises
    ------
    EnvironmentProblem
        When no candidate can build with BuildKit.
    """
    candidates = _candidates()
    for docker_bin in candidates:
        if _run([docker_bin, "buildx", "version"]).returncode == 0:
            return BuildClient((docker_bin, "buildx", "build", "--load"))
    for docker_bin in candidates:
        major = _client_major(docker_bin)
        # Clients before 23 build with BuildKit when DOCKER_BUILDKIT=1;
        # later ones need the buildx plugin for it.
        if major is not None and major < 23:
            return BuildClient((docker_bin, "build"), {"DOCKER_BUILDKIT": "1"})
    raise EnvironmentProblem(_NO_BUILDKIT.format(tried=", ".join(candidates)
                                                 or "no docker on PATH"))


def docker_cli() -> str:
    """Return a docker CLI for plain commands (save, run, exec, import)."""
    found = shutil.which("docker") or "/usr/bin/docker"
    return found


def run_docker(*args: str, input_bytes: bytes | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    """Run the docker CLI with ``args``; return the finished process."""
    return subprocess.run([docker_cli(), *args], input=input_bytes,
                          capture_output=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class ImageInfo:
    """What a build needs to know about an image on the engine."""

    id: str
    user: str
    labels: dict[str, str]
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    workdir: str = ""
    tags: tuple[str, ...] = ()
    #: The image's ``Config.Env`` as a mapping (``python:3.x`` images set
    #: ``PYTHON_VERSION`` there).
    env: dict[str, str] = field(default_factory=dict)


def inspect_image(reference: str) -> ImageInfo | None:
    """Return an image's ID, user and labels, or None when it is not present."""
    try:
        image = engine().images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError:  # an invalid reference, say
        return None
    config = image.attrs.get("Config") or {}
    return ImageInfo(id=str(image.id), user=str(config.get("User") or ""),
                     labels=dict(config.get("Labels") or {}),
                     entrypoint=config.get("Entrypoint"), cmd=config.get("Cmd"),
                     workdir=str(config.get("WorkingDir") or ""),
                     tags=tuple(str(t) for t in image.attrs.get("RepoTags") or ()),
                     env={key: value for key, _, value in
                          (str(e).partition("=") for e in config.get("Env") or ())})


#: At most this many bytes are read from an image by :func:`read_image_files`.
MAX_READ_BYTES = 32 * 1024 * 1024


def read_image_files(image: str, directory: str, names: Iterable[str]
                     ) -> dict[str, bytes]:
    """Return the regular files ``names`` of ``directory`` in an image.

    The image is not run: a container is created (never started), the
    directory is copied out of it as a tar stream and the container is
    removed. Files that are missing, not regular or larger than
    :data:`MAX_READ_BYTES` are left out of the result.

    Parameters
    ----------
    image
        An image ID or reference on the engine.
    directory
        An absolute directory in the image.
    names
        File names in that directory.

    Returns
    -------
    dict
        File name -> content, for the files found.
    """
    wanted = set(names)
    container = engine().containers.create(image, command=["true"],
                                           network_disabled=True)
    try:
        try:
            stream, _ = container.get_archive(directory)
        except docker.errors.NotFound:
            return {}
        data = bytearray()
        for chunk in stream:
            data += chunk
            if len(data) > MAX_READ_BYTES:
                return {}
    finally:
        container.remove(force=True)
    return files_in_archive(bytes(data), directory, wanted)


def files_in_archive(data: bytes, directory: str, names: Iterable[str]
                     ) -> dict[str, bytes]:
    """Return the regular files ``names`` directly in ``directory`` of a tar.

    ``data`` is the tar stream the engine sends for ``directory`` (its
    members are named ``<last part of directory>/<file>``).
    """
    wanted = set(names)
    found: dict[str, bytes] = {}
    top = directory.rstrip("/").rsplit("/", 1)[-1]
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive:
            head, _, name = member.name.partition("/")
            if head == top and name in wanted and member.isfile():
                extracted = archive.extractfile(member)
                if extracted is not None:
                    found[name] = extracted.read()
    return found


def read_image_paths(image: str, paths: Iterable[str]) -> dict[str, bytes]:
    """Return the regular files at ``paths`` in an image, by absolute path.

    Each path is a file (read when it is a regular file) or a directory
    (its regular files, not its subdirectories, are read). Like
    :func:`read_image_files`, the image is not run: one container is
    created, never started, and removed. A path that is missing, or whose
    tar stream exceeds :data:`MAX_READ_BYTES`, contributes nothing.

    Parameters
    ----------
    image
        An image ID or reference on the engine.
    paths
        Absolute paths in the image.

    Returns
    -------
    dict
        Absolute path of each file found -> its content.
    """
    found: dict[str, bytes] = {}
    container = engine().containers.create(image, command=["true"],
                                           network_disabled=True)
    try:
        for path in paths:
            try:
                stream, _ = container.get_archive(path)
            except docker.errors.NotFound:
                continue
            data = bytearray()
            for chunk in stream:
                data += chunk
                if len(data) > MAX_READ_BYTES:
                    break
            if len(data) <= MAX_READ_BYTES:
                found.update(paths_in_archive(bytes(data), path))
    finally:
        container.remove(force=True)
    return found


def paths_in_archive(data: bytes, path: str) -> dict[str, bytes]:
    """Return the regular files of the tar stream the engine sends for ``path``.

    Its members are named ``<last part of path>`` (a file) and
    ``<last part of path>/<name>`` (a directory's files); deeper members
    are left out. Keys are absolute paths in the image.
    """
    parent, _, top = path.rstrip("/").rpartition("/")
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive:
            parts = member.name.split("/")
            if parts[0] != top or len(parts) > 2 or not member.isfile():
                continue
            extracted = archive.extractfile(member)
            if extracted is not None:
                found[f"{parent}/{member.name}"] = extracted.read()
    return found


def pull_image(reference: str) -> bool:
    """Pull an image; return whether it is now present."""
    try:
        engine().images.pull(reference)
    except docker.errors.APIError:
        return False
    return True


def tag_image(image_id: str, repository: str, tag: str) -> None:
    """Tag an image (by ID) as ``repository:tag``."""
    engine().images.get(image_id).tag(repository, tag)


def untag_image(reference: str) -> None:
    """Remove the tag ``reference`` (``repository:tag``) from the engine.

    Only the tag goes when the image has other tags; callers make sure it
    has (removing an image's last tag would delete the image).
    """
    try:
        engine().images.remove(reference, noprune=True)
    except docker.errors.ImageNotFound:
        pass


@dataclass(frozen=True)
class PushOutput:
    """What ``docker push`` did: whether it worked, the digest, its messages."""

    ok: bool
    digest: str | None
    output: str


_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def push_reference(reference: str, timeout: float = 3600) -> PushOutput:
    """Push the local tag ``reference`` with the docker CLI.

    The CLI (not the SDK) so that ``docker login`` and credential helpers
    apply as they do for the user. Returns what the engine said; a push
    that does not finish within ``timeout`` seconds is a failed one.
    """
    try:
        proc = run_docker("push", reference, timeout=timeout)
    except subprocess.TimeoutExpired:
        return PushOutput(False, None, f"no result within {timeout:.0f} s")
    except OSError as exc:
        return PushOutput(False, None, f"cannot run the docker CLI: {exc.strerror}")
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    match = _PUSHED_DIGEST.search(out)
    if proc.returncode == 0:
        return PushOutput(True, match.group(1) if match else None, out)
    return PushOutput(False, None, err.strip() or out.strip()[-2000:]
                      or f"docker push exited {proc.returncode}")


@cache
def engine() -> docker.DockerClient:
    """Return a docker SDK client connected to a live engine.

    Raises
    ------
    EnvironmentProblem
        When no engine answers.
    """
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception:  # the SDK raises many kinds; all mean "no engine"
        raise EnvironmentProblem(_NO_ENGINE.format(where=where)) from None
    return client
