"""Pytest plugin behind ``nublado-build test``: options, fixtures, containers.

Every container the contract starts is fresh for the test that uses it
(function scope), labelled ``io.nublado.test=contract`` and with this
session's id, and removed when the test ends; a session finalizer removes
whatever a crash left behind. Every command run in a container is bounded
twice: by coreutils ``timeout`` inside the container and by a subprocess
timeout outside it. A lab server's log is read when its test ends: an
``ERROR`` or ``[E `` line fails that test (see :data:`ALLOWED_LOG_ERRORS`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
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
import testinfra.host
from testinfra.backend.docker import DockerBackend

from nubladobuild.contract.browser import find_chromium
from nubladobuild.engine import docker_cli

LAB_ROOT = "/usr/local/share/jupyterlab"
LAB_PYTHON = f"{LAB_ROOT}/venv/bin/python"
ARBITRARY_UID = "4242"
#: Label on every container and volume the contract creates.
CONTRACT_LABEL = "io.nublado.test=contract"
#: Label naming the pytest session that created a container or volume.
SESSION_LABEL = "io.nublado.test.session"
#: One id per process: the session finalizer removes what carries it.
SESSION_ID = uuid.uuid4().hex[:16]
#: Seconds a command run in a container may take (inside the container).
EXEC_TIMEOUT = float(os.environ.get("NUBLADO_EXEC_TIMEOUT", "300"))
#: Extra seconds the docker CLI gets on top of the in-container timeout.
_OUTER_GRACE = 30.0
#: Exit status of coreutils ``timeout`` when the command ran out of time.
_TIMED_OUT = 124
_PROBE = Path(__file__).with_name("probe_kernel.py")
#: Lab server log lines that fail the test which started the server.
_LOG_ERROR = re.compile(r"^\[E |\bERROR\b")
#: Error lines tolerated in every test, each with the reason why (pattern,
#: reason). Empty: a lab the contract starts logs no error at all. A test
#: that provokes an error on purpose allows exactly its lines with the
#: ``allow_server_errors(*patterns, reason=...)`` marker.
ALLOWED_LOG_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = ()
#: What jupyter_server logs when asked to start a kernel that does not exist
#: (its stock answer is 500 "Unhandled error", with the request's headers).
NO_SUCH_KERNEL_LOG = (r"\] No such kernel named python3$",
                      r"Uncaught exception POST /api/kernels",
                      r"ServerApp\] \{$",
                      r"\] 500 POST /api/kernels ")
#: The lab modes every lab check runs in: how the controller starts labs.
LAB_MODES = ("default-user", "arbitrary-uid-read-only")
#: The old controller's lab start; the browser checks use it when the image
#: has it (the compat profile nublado-legacy links it).
LEGACY_START = "/opt/lsst/software/jupyterlab/runlab.sh"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the image, payload, suite and artifacts options."""
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

    @property
    def is_payload_image(self) -> bool:
        """Whether the image carries ``io.nublado.payload.*`` labels."""
        return any(key.startswith("io.nublado.payload.") for key in self.labels)


def docker(*args: str, check: bool = True, input_text: str | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI and return the completed process.

    Parameters
    ----------
    *args
        Arguments after ``docker``.
    check
        Raise AssertionError when the command fails.
    input_text
        Text for the command's standard input.
    timeout
        Seconds before the CLI is killed (AssertionError).

    Returns
    -------
    subprocess.CompletedProcess
        The finished process, output as text.

    """
    try:
        proc = subprocess.run([docker_cli(), *args], capture_output=True, text=True,
                              input=input_text, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"docker {' '.join(args)[:200]} did not finish in "
                             f"{timeout:.0f} s") from None
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def image_labels(image: str) -> tuple[dict[str, str], str]:
    """Return the labels and the configured user of ``image``.

    Parameters
    ----------
    image
        An image on the engine.

    Returns
    -------
    tuple
        The labels (empty when none) and ``Config.User``.

    """
    attrs = json.loads(docker("image", "inspect", image).stdout)[0]
    config = attrs.get("Config") or {}
    return dict(config.get("Labels") or {}), str(config.get("User") or "")


def load_image_info(image: str, payload_dir: str | None) -> ImageInfo:
    """Read what the contract needs to know about ``image`` from its labels.

    Parameters
    ----------
    image
        The image under test.
    payload_dir
        Its payload directory, when given.

    Returns
    -------
    ImageInfo
        Name, kernels, Python, user and labels.

    """
    labels, user = image_labels(image)
    return ImageInfo(
        image=image,
        payload=labels.get("io.nublado.payload.name", ""),
        kernels=tuple(k for k in labels.get("io.nublado.payload.kernels", "").split(",")
                      if k),
        python=labels.get("io.nublado.payload.python", ""),
        user=user,
        labels=labels,
        payload_dir=Path(payload_dir) if payload_dir else None,
    )


@pytest.fixture(scope="session")
def image_info(request: pytest.FixtureRequest) -> ImageInfo:
    """Return the image under test and what its labels say about it."""
    image = request.config.getoption("--nublado-image")
    if not image:
        pytest.fail("no image: run through `nublado-build test IMAGE`")
    return load_image_info(image, request.config.getoption("--nublado-payload"))


def timed(argv: list[str] | tuple[str, ...], seconds: float) -> list[str]:
    """Return ``argv`` run under coreutils ``timeout`` (TERM, then KILL 5 s later).

    Parameters
    ----------
    argv
        The command.
    seconds
        The time it may take.

    Returns
    -------
    list of str
        ``timeout -k 5 SECONDS ARGV...``.

    """
    return ["timeout", "-k", "5", f"{seconds:g}", *argv]


class _TimedDockerBackend(DockerBackend):  # type: ignore[misc]  # untyped base
    """testinfra's docker backend with both timeouts on every command."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(name)
        self.seconds = seconds

    def run(self, command: str, *args: str, **kwargs: Any) -> Any:
        cmd = self.get_command(command, *args)
        argv = [docker_cli(), "exec", self.name,
                *timed(["/bin/sh", "-c", cmd], self.seconds)]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=self.seconds
                                  + _OUTER_GRACE, check=False)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{cmd!r} did not finish in {self.seconds:.0f} s "
                                 f"in {self.name}") from None
        if proc.returncode == _TIMED_OUT:
            raise AssertionError(f"{cmd!r} timed out after {self.seconds:.0f} s "
                                 f"in {self.name}")
        result = self.result(proc.returncode, self.encode(shlex.join(argv)),
                             proc.stdout, proc.stderr)
        result.command = self.encode(cmd)
        return result


class Container:
    """A running container of the image under test, removed on close.

    Parameters
    ----------
    image
        The image to run.
    user
        ``--user`` (``UID:GID``); default the image's user.
    read_only
        Run the way the Nublado controller does: read-only root, tmpfs
        ``/tmp`` and ``/home/user`` (``HOME``).
    env
        Environment variables for the container.
    publish
        Publish port 8888 on a free port of 127.0.0.1.
    command
        The container's command; default ``sleep infinity`` (``[]``: the
        image's own command).
    extra_args
        More ``docker run`` arguments.
    exec_timeout
        Seconds each :meth:`exec` and testinfra command may take.

    """

    def __init__(self, image: str, *, user: str | None = None, read_only: bool = False,
                 env: dict[str, str] | None = None, publish: bool = False,
                 command: list[str] | None = None,
                 extra_args: list[str] | None = None,
                 exec_timeout: float = EXEC_TIMEOUT) -> None:
        self.name = f"nublado-contract-{uuid.uuid4().hex[:12]}"
        self.exec_timeout = exec_timeout
        args = ["run", "-d", "--name", self.name, "--label", CONTRACT_LABEL,
                "--label", f"{SESSION_LABEL}={SESSION_ID}"]
        if user:
            args += ["--user", user]
        if read_only:
            # The controller's way: read-only root, tmpfs /tmp, HOME a volume.
            args += ["--read-only", "--tmpfs", "/tmp:mode=1777",  # noqa: S108 - container path
                     "--tmpfs", "/home/user:mode=1777", "-e", "HOME=/home/user"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        if publish:
            args += ["-p", "127.0.0.1::8888"]
        args += extra_args or []
        args.append(image)
        args += command if command is not None else ["sleep", "infinity"]
        docker(*args, timeout=120)
        backend = _TimedDockerBackend(self.name, exec_timeout)
        self.host = testinfra.host.Host(backend)
        backend.set_host(self.host)

    def exec(self, *argv: str, user: str | None = None, env: dict[str, str] | None
             = None, input_text: str | None = None, check: bool = False,
             timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in the container, bounded inside and outside it.

        Parameters
        ----------
        *argv
            The command.
        user
            ``docker exec --user``.
        env
            Extra environment variables.
        input_text
            Text for its standard input.
        check
            Raise AssertionError when it fails.
        timeout
            Seconds it may take (default: the container's ``exec_timeout``).

        Returns
        -------
        subprocess.CompletedProcess
            The finished ``docker exec``.

        """
        seconds = timeout if timeout is not None else self.exec_timeout
        args = ["exec", "-i"] if input_text is not None else ["exec"]
        if user:
            args += ["--user", user]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        proc = docker(*args, self.name, *timed(argv, seconds), check=False,
                      input_text=input_text, timeout=seconds + _OUTER_GRACE)
        if proc.returncode == _TIMED_OUT:
            raise AssertionError(f"{shlex.join(argv)[:200]} timed out after "
                                 f"{seconds:.0f} s in {self.name}")
        if check and proc.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)[:200]} exited {proc.returncode}"
                                 f" in {self.name}: {proc.stderr.strip()[-2000:]}")
        return proc

    def port(self) -> int:
        """Return the host port published for 8888."""
        out = docker("port", self.name, "8888/tcp", timeout=30).stdout.strip()
        return int(out.splitlines()[0].rsplit(":", 1)[1])

    def logs(self) -> str:
        """Return the container's output (stdout, then stderr)."""
        proc = docker("logs", self.name, check=False, timeout=60)
        return proc.stdout + proc.stderr

    def close(self) -> None:
        """Remove the container."""
        docker("rm", "-f", "-v", self.name, check=False, timeout=120)


def remove_session_leftovers(session_id: str = SESSION_ID) -> list[str]:
    """Remove every container and volume labelled with ``session_id``.

    Parameters
    ----------
    session_id
        The contract session whose leftovers go.

    Returns
    -------
    list of str
        The names of what was removed.

    """
    label = f"label={SESSION_LABEL}={session_id}"
    removed: list[str] = []
    names = docker("ps", "-a", "--filter", label, "--format", "{{.Names}}",
                   check=False, timeout=60).stdout.split()
    if names:
        docker("rm", "-f", "-v", *names, check=False, timeout=300)
        removed += names
    volumes = docker("volume", "ls", "-q", "--filter", label, check=False,
                     timeout=60).stdout.split()
    if volumes:
        docker("volume", "rm", "-f", *volumes, check=False, timeout=120)
        removed += volumes
    return removed


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the containers and volumes this session left behind."""
    removed = remove_session_leftovers()
    if removed:
        session.config.stash[_LEFTOVERS] = removed


_LEFTOVERS = pytest.StashKey[list[str]]()


def volume(prefix: str = "nublado-contract-home") -> str:
    """Create a labelled docker volume (removed by the session finalizer).

    Parameters
    ----------
    prefix
        Start of the volume's name.

    Returns
    -------
    str
        The volume's name.

    """
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", "--label", CONTRACT_LABEL, "--label",
           f"{SESSION_LABEL}={SESSION_ID}", name, timeout=60)
    return name


@pytest.fixture
def container(image_info: ImageInfo) -> Iterator[Container]:
    """Yield a fresh container running as the image's default user."""
    box = Container(image_info.image)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def ro_container(image_info: ImageInfo) -> Iterator[Container]:
    """Yield a fresh container as the controller runs it: arbitrary UID, read-only."""
    box = Container(image_info.image, user=f"{ARBITRARY_UID}:{ARBITRARY_UID}",
                    read_only=True)
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def host(container: Container) -> Any:
    """Return a testinfra host for this test's default container."""
    return container.host


def run_kernel(box: Container, kernel: str, code: str,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start ``kernel`` from the JupyterLab Python in ``box``, run ``code``.

    Parameters
    ----------
    box
        A running container.
    kernel
        The kernelspec name.
    code
        Python code for the kernel.
    env
        Extra environment for the JupyterLab Python (and so the kernel).

    Returns
    -------
    dict
        ``status``, ``stdout``, ``errors`` and ``start_seconds``.

    """
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
    """Wait until the lab in ``box`` answers on /api.

    Parameters
    ----------
    box
        A container started with ``publish=True``.
    timeout
        Seconds to wait.

    Returns
    -------
    tuple
        The base URL and the body of ``/api``.

    """
    base = f"http://127.0.0.1:{box.port()}"
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api", timeout=5) as resp:  # noqa: S310 - our own URL
                if resp.status == 200:
                    return base, json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise AssertionError(f"lab did not answer on /api within {timeout} s ({last}); "
                         f"container log:\n{box.logs()[-4000:]}")


def lab_get(base: str, path: str, token: str) -> Any:
    """GET a lab API path with the token; return the decoded JSON."""
    request = urllib.request.Request(f"{base}{path}",  # noqa: S310 - our own URL
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - our own URL
        return json.loads(resp.read())


def pytest_configure(config: pytest.Config) -> None:
    """Register the contract's marker."""
    config.addinivalue_line(
        "markers", "allow_server_errors(*patterns, reason): server log error "
        "lines (regular expressions) this test provokes on purpose, and why")


def server_log_errors(log: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """Return the lines of a lab server log that report errors.

    A line counts when it starts with ``[E `` (Jupyter's error level) or
    holds the word ``ERROR``; lines matching :data:`ALLOWED_LOG_ERRORS` or
    one of ``allowed`` do not.

    Parameters
    ----------
    log
        The container's output.
    allowed
        More patterns (regular expressions) to tolerate.

    Returns
    -------
    list of str
        The offending lines, in order.

    """
    patterns = [pattern for pattern, _ in ALLOWED_LOG_ERRORS]
    patterns += [re.compile(pattern) for pattern in allowed]
    return [line for line in log.splitlines()
            if _LOG_ERROR.search(line)
            and not any(pattern.search(line) for pattern in patterns)]


@dataclass
class Lab:
    """A running lab server of the image under test."""

    box: Container
    base: str
    mode: str
    seconds: float


def start_lab(image_info: ImageInfo, token: str, mode: str, *,
              command: list[str] | None = None, env: dict[str, str] | None = None,
              extra_args: list[str] | None = None) -> Lab:
    """Start the image's lab server and wait until it answers on /api.

    Parameters
    ----------
    image_info
        The image under test.
    token
        The lab's token (``JUPYTER_TOKEN``).
    mode
        ``default-user`` (the image's user, writable root) or
        ``arbitrary-uid-read-only`` (the controller's way).
    command
        The container's command; default the image's own.
    env
        More environment variables.
    extra_args
        More ``docker run`` arguments.

    Returns
    -------
    Lab
        The lab; the caller closes it (see :func:`finish_lab`).

    """
    if mode not in LAB_MODES:
        raise ValueError(f"unknown lab mode {mode!r}")
    read_only = mode == "arbitrary-uid-read-only"
    box = Container(image_info.image, publish=True, read_only=read_only,
                    user=f"{ARBITRARY_UID}:{ARBITRARY_UID}" if read_only else None,
                    env={"JUPYTER_TOKEN": token, **(env or {})},
                    command=command if command is not None else [],
                    extra_args=extra_args)
    start = time.monotonic()
    try:
        base, _ = wait_for_api(box)
    except BaseException:
        box.close()
        raise
    return Lab(box=box, base=base, mode=mode, seconds=time.monotonic() - start)


def finish_lab(lab: Lab, allowed: tuple[str, ...] = ()) -> None:
    """Remove the lab's container; fail when its server logged an error.

    Parameters
    ----------
    lab
        A lab from :func:`start_lab`.
    allowed
        Error lines (regular expressions) the test provoked on purpose.

    Raises
    ------
    AssertionError
        When the server log has error lines (see :func:`server_log_errors`).

    """
    log = lab.box.logs()
    lab.box.close()
    errors = server_log_errors(log, allowed)
    if errors:
        shown = "\n".join(errors[:20])
        raise AssertionError(f"the lab server ({lab.mode}) logged {len(errors)} error "
                             f"line(s):\n{shown}")


@pytest.fixture(params=LAB_MODES)
def lab(request: pytest.FixtureRequest, image_info: ImageInfo,
        lab_token: str) -> Iterator[Lab]:
    """Start the lab with the image's own command, in each mode, for one test.

    The server log is checked when the test ends: an error line fails it,
    unless the test's ``allow_server_errors`` marker names it.
    """
    allowed: tuple[str, ...] = ()
    for marker in request.node.iter_markers("allow_server_errors"):
        assert marker.kwargs.get("reason"), "allow_server_errors needs a reason"
        allowed += tuple(marker.args)
    server = start_lab(image_info, lab_token, request.param)
    os.environ.setdefault("NUBLADO_LAB_READY_SECONDS", f"{server.seconds:.2f}")
    try:
        yield server
    finally:
        finish_lab(server, allowed)


_SERVER_PROBE = r"""
import json, os, sys
port = int(sys.argv[1])
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        fields = row.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
            inodes.add(f"socket:[{fields[9]}]")
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
            continue
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:-1]
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")[:-1]
    except OSError:
        continue
    found.append({"pid": int(pid), "argv": [a.decode() for a in argv],
                  "environ": dict(e.decode().split("=", 1) for e in env
                                  if b"=" in e)})
print(json.dumps(found))
"""


def server_process(box: Container, port: int = 8888) -> dict[str, Any]:
    """Return the process that listens on ``port`` in ``box``.

    Found through ``/proc/net/tcp*`` and the processes' socket descriptors,
    so it does not matter which process is PID 1 (an init, a shim).

    Parameters
    ----------
    box
        A container running a lab server.
    port
        The port inside the container.

    Returns
    -------
    dict
        ``pid``, ``argv`` and ``environ`` of the listening process.

    """
    proc = box.exec(LAB_PYTHON, "-c", _SERVER_PROBE, str(port), check=True,
                    timeout=60)
    found: list[dict[str, Any]] = json.loads(proc.stdout)
    pids = {p["pid"] for p in found}
    assert len(pids) == 1, f"expected one process listening on {port}: {found}"
    return found[0]


def in_ci() -> bool:
    """Return whether the contract runs under CI (``CI=true`` or 1)."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Return the Chromium executable; skip (fail under CI) when missing."""
    path = find_chromium()
    if path is None:
        reason = ("no Chromium found (apt-get install chromium, or set "
                  "NUBLADO_CHROMIUM)")
        if in_ci():
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return path


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


# ---------------------------------------------------------------------------
# Parametrization from the image: one test per actual kernel / wrapper, so
# that "none" is a reported outcome and never a loop that ran zero times.

_KERNELS_PROBE = r"""
import json, os
from jupyter_client.kernelspec import KernelSpecManager
manager = KernelSpecManager()
manager.ensure_native_kernel = False
out = {}
for name, info in manager.get_all_specs().items():
    argv0 = info["spec"]["argv"][0]
    try:
        with open(argv0, "rb") as handle:
            head = handle.read(2)
    except OSError:
        head = b""
    out[name] = {"argv0": argv0, "script": head == b"#!",
                 "resource_dir": info["resource_dir"]}
print(json.dumps(out))
"""
_KERNELS = pytest.StashKey[dict[str, dict[str, Any]]]()


def image_kernelspecs(config: pytest.Config) -> dict[str, dict[str, Any]]:
    """Return the image's kernelspecs as the lab sees them (cached per session).

    Read once, at collection, from a one-off container of the image.

    Parameters
    ----------
    config
        The pytest config (``--nublado-image``).

    Returns
    -------
    dict
        Kernel name to ``argv0``, ``script`` (argv0 starts with ``#!``)
        and ``resource_dir``.

    """
    if _KERNELS not in config.stash:
        image = config.getoption("--nublado-image")
        proc = docker("run", "--rm", "--label", CONTRACT_LABEL, "--label",
                      f"{SESSION_LABEL}={SESSION_ID}", "--entrypoint", "timeout",
                      image, *timed([LAB_PYTHON, "-c", _KERNELS_PROBE], 120)[1:],
                      timeout=120 + _OUTER_GRACE)
        config.stash[_KERNELS] = json.loads(proc.stdout)
    return config.stash[_KERNELS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``kernel_name`` and ``kernel_wrapper`` from the image.

    ``kernel_name``: each kernel the image's labels name; none is one case
    with an empty name, which the tests fail. ``kernel_wrapper``: each
    kernelspec whose argv[0] is a script; none is one case skipped with the
    reason.
    """
    image = metafunc.config.getoption("--nublado-image")
    if not image:
        return
    if "kernel_name" in metafunc.fixturenames:
        kernels = load_image_info(image, None).kernels
        # No kernel: one case with an empty name, which the test fails.
        metafunc.parametrize("kernel_name",
                             list(kernels) or [pytest.param("", id="no-kernel")])
    if "kernel_wrapper" in metafunc.fixturenames:
        wrappers = [(name, spec["argv0"]) for name, spec
                    in sorted(image_kernelspecs(metafunc.config).items())
                    if spec["script"]]
        metafunc.parametrize(
            "kernel_wrapper",
            [pytest.param(w, id=w[0]) for w in wrappers] or [pytest.param(
                ("", ""), id="no-wrapper", marks=pytest.mark.skip(
                    reason="no kernel has a wrapper script: every kernelspec "
                    "runs its Python directly"))])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List the artifacts the checks wrote (screenshots) and leftovers removed."""
    if ARTIFACTS:
        terminalreporter.section("nublado artifacts")
        for name, path in ARTIFACTS:
            terminalreporter.write_line(f"{name}: {path}")
    removed = terminalreporter.config.stash.get(_LEFTOVERS, [])
    if removed:
        terminalreporter.write_line(f"removed leftover containers/volumes: "
                                    f"{' '.join(removed)}")
