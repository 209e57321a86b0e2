"""Pytest plugin behind ``nublado-build test``: options and fixtures.

Fixtures start real containers from the image under test and clean them up;
``host`` is a testinfra host connected to a running container.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra

from nubladobuild.engine import docker_cli

LAB_ROOT = "/usr/local/share/jupyterlab"
LAB_PYTHON = f"{LAB_ROOT}/venv/bin/python"
ARBITRARY_UID = "4242"
_PROBE = Path(__file__).with_name("probe_kernel.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the image and payload options."""
    group = parser.getgroup("nublado")
    group.addoption("--nublado-image", help="Image under test.")
    group.addoption("--nublado-payload", help="Payload directory of the image.")
    group.addoption("--nublado-artifacts", help="Directory for test artifacts "
                    "(browser screenshots); default: under pytest's tmp dir.")


@dataclass(frozen=True)
class ImageInfo:
    """What the contract knows about the image under test."""

    image: str
    payload: str
    kernels: tuple[str, ...]
    python: str
    user: str
    labels: dict[str, str]
    payload_dir: Path | None

    @property
    def kernel(self) -> str:
        """Return the default (first) kernel's name."""
        return self.kernels[0]


def docker(*args: str, check: bool = True, input_text: str | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI and return the completed process."""
    proc = subprocess.run([docker_cli(), *args], capture_output=True, text=True,
                          input=input_text, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


@pytest.fixture(scope="session")
def image_info(request: pytest.FixtureRequest) -> ImageInfo:
    """Return the image under test and what its labels say about it."""
    image = request.config.getoption("--nublado-image")
    if not image:
        pytest.fail("no image: run through `nublado-build test IMAGE`")
    attrs = json.loads(docker("image", "inspect", image).stdout)[0]
    labels = attrs["Config"].get("Labels") or {}
    payload_dir = request.config.getoption("--nublado-payload")
    return ImageInfo(
        image=image,
        payload=labels.get("io.nublado.payload.name", ""),
        kernels=tuple(k for k in labels.get("io.nublado.payload.kernels", "").split(",")
                      if k),
        python=labels.get("io.nublado.payload.python", ""),
        user=attrs["Config"].get("User") or "",
        labels=labels,
        payload_dir=Path(payload_dir) if payload_dir else None,
    )


class Container:
    """A running container of the image under test, removed on close."""

    def __init__(self, image: str, *, user: str | None = None, read_only: bool = False,
                 env: dict[str, str] | None = None, publish: bool = False,
                 command: list[str] | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.name = f"nublado-contract-{uuid.uuid4().hex[:12]}"
        args = ["run", "-d", "--name", self.name, "--label", "io.nublado.test=contract"]
        if user:
            args += ["--user", user]
        if read_only:
            # The controller's way: read-only root, tmpfs /tmp, HOME a volume.
            args += ["--read-only", "--tmpfs", "/tmp:mode=1777",  # noqa: S108
                     "--tmpfs", "/home/user:mode=1777", "-e", "HOME=/home/user"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        if publish:
            args += ["-p", "127.0.0.1::8888"]
        args += extra_args or []
        args.append(image)
        args += command if command is not None else ["sleep", "infinity"]
        docker(*args)
        self.host = testinfra.get_host(f"docker://{self.name}")

    def exec(self, *argv: str, user: str | None = None, env: dict[str, str] | None
             = None, input_text: str | None = None, check: bool = False
             ) -> subprocess.CompletedProcess[str]:
        """Run a command in the container."""
        args = ["exec", "-i"] if input_text is not None else ["exec"]
        if user:
            args += ["--user", user]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        return docker(*args, self.name, *argv, check=check, input_text=input_text)

    def port(self) -> int:
        """Return the host port published for 8888."""
        out = docker("port", self.name, "8888/tcp").stdout.strip().splitlines()[0]
        return int(out.rsplit(":", 1)[1])

    def logs(self) -> str:
        """Return the container's output."""
        proc = docker("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def close(self) -> None:
        """Remove the container."""
        docker("rm", "-f", "-v", self.name, check=False)


@pytest.fixture(scope="session")
def container(image_info: ImageInfo) -> Iterator[Container]:
    """Yield a container running as the image's default user."""
    box = Container(image_info.image)
    yield box
    box.close()


@pytest.fixture(scope="session")
def ro_container(image_info: ImageInfo) -> Iterator[Container]:
    """Yield a container as the controller runs it: arbitrary UID, read-only."""
    box = Container(image_info.image, user=f"{ARBITRARY_UID}:{ARBITRARY_UID}",
                    read_only=True)
    yield box
    box.close()


@pytest.fixture(scope="session")
def host(container: Container) -> Any:
    """Return a testinfra host for the default container."""
    return container.host


def run_kernel(box: Container, kernel: str, code: str,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start ``kernel`` from the JupyterLab Python in ``box``, run ``code``."""
    proc = box.exec(LAB_PYTHON, "-", kernel, code, input_text=_PROBE.read_text(),
                    env=env)
    assert proc.returncode == 0, f"kernel {kernel} failed: {proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="session")
def kernel_runner() -> Any:
    """Return :func:`run_kernel` for tests that start kernels."""
    return run_kernel


def wait_for_api(box: Container, timeout: float = 120) -> tuple[str, dict[str, Any]]:
    """Wait until the lab in ``box`` answers on /api; return base URL and body."""
    base = f"http://127.0.0.1:{box.port()}"
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api", timeout=5) as resp:  # noqa: S310
                if resp.status == 200:
                    return base, json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise AssertionError(f"lab did not answer on /api within {timeout} s ({last}); "
                         f"container log:\n{box.logs()[-4000:]}")


def lab_get(base: str, path: str, token: str) -> Any:
    """GET a lab API path with the token; return the decoded JSON."""
    request = urllib.request.Request(f"{base}{path}",  # noqa: S310
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


@pytest.fixture(scope="session")
def lab_token() -> str:
    """Return the token the contract's lab servers use."""
    return os.environ.get("NUBLADO_TEST_TOKEN", uuid.uuid4().hex)


@pytest.fixture(scope="session")
def artifacts_dir(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the artifacts directory.

    ``--nublado-artifacts``, else ``$NUBLADO_ARTIFACTS``, else a directory
    under pytest's tmp dir.
    """
    chosen = request.config.getoption("--nublado-artifacts") or \
        os.environ.get("NUBLADO_ARTIFACTS")
    path = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


#: Artifacts written during the run, listed at the end (name, path).
ARTIFACTS: list[tuple[str, Path]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List the artifacts the checks wrote (screenshots)."""
    if ARTIFACTS:
        terminalreporter.section("nublado artifacts")
        for name, path in ARTIFACTS:
            terminalreporter.write_line(f"{name}: {path}")
