"""Make a local stand-in for the official ``python:3.x-slim`` image.

Where the official image cannot be pulled (no registry access), debootstrap
builds an equivalent Debian root filesystem from the distribution's own
archive (its default mirror, or ``--mirror``) and ``docker import`` turns it
into an image with the same interpreter layout (``/usr/local/bin/python3``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nubladobuild.engine import docker_cli, engine
from nubladobuild.errors import BuildFailed, EnvironmentProblem
from nubladobuild.progress import Phase, Progress

#: Debian suite -> the Python version it ships.
SUITES = {"trixie": "3.13", "bookworm": "3.11"}
#: PATH of the official image (``/usr/local/bin`` first).
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PACKAGES = ("python3", "python3-venv", "ca-certificates", "passwd")


@dataclass(frozen=True)
class BootstrapResult:
    """The imported image and what it holds."""

    tag: str
    python: str
    suite: str


def local_tag(suite: str) -> str:
    """Return the local image tag for a suite's Python base image."""
    return f"nublado-build/python:{SUITES[suite]}-slim-{suite}"


def official_tag(suite: str) -> str:
    """Return the official image this stands in for."""
    return f"python:{SUITES[suite]}-slim-{suite}"


def _phase(progress: Progress | None, name: str) -> contextlib.AbstractContextManager[
        Phase | None]:
    return progress.phase(name) if progress is not None else contextlib.nullcontext()


def bootstrap(suite: str = "trixie", mirror: str | None = None,
              tag: str | None = None,
              progress: Progress | None = None) -> BootstrapResult:
    """Build a Python base image from Debian packages and import it.

    Parameters
    ----------
    suite
        Debian suite (``trixie`` gives Python 3.13).
    mirror
        Debian mirror URL; debootstrap's default when None.
    tag
        Image tag; ``nublado-build/python:<ver>-slim-<suite>`` by default.
    progress
        Shows the phases (debootstrap, import, check) with their times.

    Raises
    ------
    EnvironmentProblem
        When debootstrap is missing or not run as root.
    BuildFailed
        When debootstrap or the import fails.
    """
    engine()
    tag = tag or local_tag(suite)
    debootstrap = shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists() else None)
    if debootstrap is None:
        raise EnvironmentProblem(
            "debootstrap is not installed. `nublado-build bootstrap` builds the "
            "Python base image from Debian packages with it: install it with "
            "`sudo apt-get install debootstrap`, or pull the official image "
            f"({official_tag(suite)}) and pass --base-image.")
    with tempfile.TemporaryDirectory(prefix="nublado-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}",
                suite, str(rootfs)]
        if mirror:
            argv.append(mirror)
        with _phase(progress, f"debootstrap Debian {suite}") as phase:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if phase is not None:
                phase.failed = proc.returncode != 0
        if proc.returncode != 0:
            last = "\n".join(f"  | {ln}" for ln in
                             (proc.stdout + proc.stderr).splitlines()[-15:])
            raise BuildFailed(f"debootstrap of Debian {suite} failed (exit code "
                              f"{proc.returncode}).\n{last}\nCheck that the mirror "
                              "is reachable (apt's sources work) and that you run "
                              "as root; pass --mirror to use another one.")
        # Same interpreter paths as the official image.
        for name in ("python3", "python"):
            link = rootfs / "usr/local/bin" / name
            link.unlink(missing_ok=True)
            link.symlink_to("/usr/bin/python3")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        with _phase(progress, f"import {tag}") as phase:
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c",
                                    "."], stdout=subprocess.PIPE)
            imported = subprocess.run(
                [docker_cli(), "import",
                 "--change", f"ENV PATH={_PATH}",
                 "--change", "ENV LANG=C.UTF-8",
                 "--change", 'CMD ["python3"]',
                 "-", tag], stdin=tar.stdout, capture_output=True, text=True,
                check=False)
            tar.wait()
            if phase is not None:
                phase.failed = imported.returncode != 0 or tar.returncode != 0
        if imported.returncode != 0 or tar.returncode != 0:
            raise BuildFailed(f"docker import of the root filesystem failed: "
                              f"{imported.stderr.strip()}")
    with _phase(progress, "check python3") as phase:
        version = subprocess.run([docker_cli(), "run", "--rm", tag, "python3", "-c",
                                  "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=False)
        if phase is not None:
            phase.result = f"python3 {version.stdout.strip()}"
    return BootstrapResult(tag=tag, python=version.stdout.strip(), suite=suite)
