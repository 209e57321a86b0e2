"""The Nublado controller's start-up protocol, as the controller runs labs.

The current controller (v11 and later) has an init container write
``/etc/nublado/startup/env.json`` (environment overrides) and ``args.json``
(the server argv, ``jupyterhub-singleuser ...``), mounts them read-only,
and runs the image's ``/opt/lsst/software/jupyterlab/runlab.sh`` as the
container's args, as an arbitrary UID with a read-only root filesystem, a
memory ``/tmp`` and the user's home on a volume. The files here are shaped
like the ones the controller writes (lsst-sqre/nublado
``tests/data/startup/output``). The single-user server talks to a stand-in
hub (the few hub API calls it makes: version, token owner, activity) on the
Docker bridge address.

Also: malformed files stop the start with one line naming the file, and
``docker stop`` ends a lab (with a running kernel) in well under 5 s.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nubladobuild.contract.labclient import execute_in_lab, run_in_lab_terminal
from tests.conftest import TEST_TAG
from tests.integration.conftest import PAYLOADS, CliResult, docker, run_cli

pytestmark = pytest.mark.integration

SCIPLAT = PAYLOADS / "sciplat-lab"
SCIPLAT_TAG = f"sciplat-lab:exp_{TEST_TAG}"
SCIPLAT_PYTHON = "/opt/lsst/software/stack/conda/envs/lsst-scipipe/bin/python"
LEGACY_START = "/opt/lsst/software/jupyterlab/runlab.sh"
VENV_PYTHON = "/usr/local/share/jupyterlab/venv/bin/python3"
USER = "hambone"
UID = "4242"
HOME = f"/home/{USER}"
TMPDIR = f"/scratch/{USER}/tmp"
PREFIX = f"/user/{USER}"
MARKER = "from env.json: 'quoted' $NOT_EXPANDED"

#: What the controller's startup init container writes for the user.
ENV_JSON = {
    "CPU_COUNT": "1", "CPU_LIMIT": "1", "GOTO_NUM_THREADS": "1",
    "HOME": HOME, "JUPYTER_PREFER_ENV_PATH": "no", "MKL_DOMAIN_NUM_THREADS": "1",
    "MPI_NUM_THREADS": "1", "NUMEXPR_MAX_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1",
    "RUNNING_INSIDE_JUPYTERLAB": "TRUE", "SCRATCH_DIR": f"/scratch/{USER}",
    "TMPDIR": TMPDIR, "USER": USER,
    "DAF_BUTLER_CACHE_DIRECTORY": f"/scratch/{USER}/butler_cache",
    "NB_PROTOCOL_MARKER": MARKER,
}
#: The argv it writes (with the debug log level a DEBUG lab gets).
ARGS_JSON = [
    "jupyterhub-singleuser", "--ip=0.0.0.0", "--port=8888", "--no-browser",
    "--ContentsManager.allow_hidden=True", "--FileContentsManager.hide_globs=[]",
    "--KernelSpecManager.ensure_native_kernel=False", "--QtExporter.enabled=False",
    "--PDFExporter.enabled=False", "--WebPDFExporter.enabled=False",
    "--MappingKernelManager.default_kernel_name=lsst",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    f"--notebook-dir={HOME}", "--log-level=DEBUG"]


# --- a stand-in hub ----------------------------------------------------------------


class FakeHub:
    """The hub API calls a single-user server makes, for one user and token."""

    def __init__(self, host: str, user_token: str, version: str = "6.1.1") -> None:
        self.user_token = user_token
        self.version = version
        self.activity = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-JupyterHub-Version", hub.version)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                token = self.headers.get("Authorization", "").split(" ", 1)[-1]
                if self.path.rstrip("/") == "/hub/api":
                    self._reply(200, {"version": hub.version})
                elif self.path.startswith("/hub/api/user"):
                    if token != hub.user_token:
                        self._reply(403, {"status": 403, "message": "no such token"})
                        return
                    self._reply(200, {
                        "kind": "user", "name": USER, "admin": False, "groups": [],
                        "session_id": None, "server": f"{PREFIX}/",
                        "scopes": [f"access:servers!user={USER}",
                                   f"access:servers!server={USER}/"]})
                else:
                    self._reply(404, {"status": 404})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.activity += 1
                self._reply(200, {})

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/hub/api"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bridge_gateway() -> str:
    """Return the host's address on the default Docker bridge.

    The gateway when the engine reports one, else the subnet's first address
    (where Docker puts it).
    """
    network = json.loads(docker("network", "inspect", "bridge").stdout)[0]
    config = network["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    return str(ipaddress.ip_network(config["Subnet"])[1])


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    fake = FakeHub(bridge_gateway(), uuid.uuid4().hex)
    yield fake
    fake.close()


# --- containers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sciplat(build_payload: Callable[..., CliResult]) -> str:
    result = build_payload(SCIPLAT, SCIPLAT_TAG)
    assert result.json["kernel"] == "lsst"
    return SCIPLAT_TAG


def write_startup(directory: Path, env: Any, args: Any, *, raw: bool = False) -> Path:
    """Write env.json and args.json as the init container does (readable)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for name, value in (("env.json", env), ("args.json", args)):
        path = directory / name
        path.write_text(value if raw and isinstance(value, str) else json.dumps(value))
        path.chmod(0o644)
    return directory


@dataclass
class Lab:
    """A running lab container and how to reach it."""

    name: str
    base: str
    token: str
    ready: float

    def exec(self, script: str) -> str:
        return docker("exec", self.name, "bash", "-c", script).stdout

    def server_pid(self) -> str:
        return self.exec("cut -d' ' -f1 /proc/1/task/1/children").strip()

    def logs(self) -> str:
        proc = docker("logs", self.name, check=False)
        return proc.stdout + proc.stderr


def run_args(image: str, startup: Path | None, volume: str, hub: FakeHub,
             name: str, command: tuple[str, ...] = (LEGACY_START,),
             extra_env: dict[str, str] | None = None) -> list[str]:
    """Return `docker run` arguments for a lab started like the controller does.

    Without ``startup`` there are no protocol files (a hub's spawner).
    """
    env = {
        "JUPYTERHUB_API_TOKEN": uuid.uuid4().hex,
        "JUPYTERHUB_API_URL": hub.url,
        "JUPYTERHUB_ACTIVITY_URL": f"{hub.url}/users/{USER}/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{USER}",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(
            [f"access:servers!server={USER}/", f"access:servers!user={USER}"]),
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}/oauth_callback",
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_SERVICE_PREFIX": f"{PREFIX}/",
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:8888{PREFIX}/",
        "JUPYTERHUB_USER": USER,
        "JUPYTERLAB_CONFIG_DIR": "/opt/lsst/software/jupyterlab",
        "JUPYTER_IMAGE": image, "CPU_LIMIT": "1", "MEM_LIMIT": "4294967296",
        "NUBLADO_HOME": HOME,
        **(extra_env or {}),
    }
    args = ["run", "-d", "--name", name, "--label", "io.nublado.test=protocol",
            "--user", f"{UID}:{UID}", "--read-only", "--cap-drop", "ALL",
            "--tmpfs", "/tmp:mode=1777", "--tmpfs", "/scratch:mode=1777",
            "-v", f"{volume}:{HOME}", "-p", "127.0.0.1::8888"]
    if startup is not None:
        args += ["-v", f"{startup}:/etc/nublado/startup:ro"]
    else:
        args += ["-e", f"HOME={HOME}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return [*args, image, *command]


@pytest.fixture(scope="module")
def home_volume(sciplat: str) -> Iterator[str]:
    name = f"nublado-protocol-home-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", name)
    docker("run", "--rm", "--user", "0:0", "-v", f"{name}:{HOME}",
           "--entrypoint", "chown", sciplat, f"{UID}:{UID}", HOME)
    yield name
    docker("volume", "rm", "-f", name, check=False)


def start_lab(image: str, startup: Path | None, volume: str, hub: FakeHub,
              command: tuple[str, ...] = (LEGACY_START,),
              extra_env: dict[str, str] | None = None) -> Lab:
    """Start a lab the controller's way and wait for its API (120 s)."""
    name = f"nublado-protocol-{uuid.uuid4().hex[:10]}"
    start = time.monotonic()
    docker(*run_args(image, startup, volume, hub, name, command, extra_env))
    port = int(docker("port", name, "8888/tcp").stdout.split(":")[-1])
    base = f"http://127.0.0.1:{port}{PREFIX}"
    while time.monotonic() - start < 120:
        try:
            request = urllib.request.Request(
                f"{base}/api/status",
                headers={"Authorization": f"token {hub.user_token}"})
            with urllib.request.urlopen(request, timeout=5) as resp:
                json.loads(resp.read())
            return Lab(name, base, hub.user_token, time.monotonic() - start)
        except OSError:
            if docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() \
                    != "true":
                break
            time.sleep(0.25)
    logs = docker("logs", name, check=False)
    docker("rm", "-f", name, check=False)
    raise AssertionError(f"the lab did not answer on {PREFIX}/api/status in 120 s:\n"
                         f"{(logs.stdout + logs.stderr)[-4000:]}")


@pytest.fixture(scope="module")
def lab(sciplat: str, home_volume: str, hub: FakeHub,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    startup = write_startup(tmp_path_factory.mktemp("startup") / "startup",
                            ENV_JSON, ARGS_JSON)
    running = start_lab(sciplat, startup, home_volume, hub)
    print(f"nublado protocol: lab ready in {running.ready:.1f} s")
    yield running
    docker("rm", "-f", running.name, check=False)


@pytest.fixture(autouse=True)
def browser_websockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send ``Sec-Fetch-Mode: websocket`` as browsers do.

    The single-user server takes a token from the URL (what the lab client
    sends) only for requests a browser marks as websockets, unless the hub
    allows tokens in URLs.
    """
    import websocket

    plain = websocket.create_connection

    def create_connection(url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("header", ["Sec-Fetch-Mode: websocket"])
        return plain(url, **kwargs)

    monkeypatch.setattr(websocket, "create_connection", create_connection)


def get(lab: Lab, path: str) -> Any:
    request = urllib.request.Request(f"{lab.base}{path}",
                                     headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


# --- the protocol honoured ---------------------------------------------------------


def test_started_through_runlab_sh_under_tini(lab: Lab) -> None:
    lines = lab.exec("tr '\\0' ' ' < /proc/1/cmdline; echo; id -u; "
                     "awk '$2 == \"/\" {print $4}' /proc/mounts | cut -d, -f1"
                     ).splitlines()
    assert lines == [f"/usr/bin/tini -s -- {LEGACY_START} ", UID, "ro"]


def test_server_runs_the_argv_from_args_json(lab: Lab) -> None:
    pid = lab.server_pid()
    argv = lab.exec(f"cat /proc/{pid}/cmdline").split("\0")[:-1]
    assert argv == [VENV_PYTHON, "-I", "-m", "jupyterhub.singleuser", *ARGS_JSON[1:]]
    assert lab.exec(f"readlink /proc/{pid}/cwd").strip() == HOME


def test_server_environment_merges_env_json(lab: Lab) -> None:
    environ = lab.exec(f"cat /proc/{lab.server_pid()}/environ").split("\0")
    env = dict(item.split("=", 1) for item in environ if "=" in item)
    for key, value in ENV_JSON.items():
        assert env[key] == value, key
    assert env["JUPYTERLAB_CONFIG_DIR"] == "/opt/lsst/software/jupyterlab"
    assert "/opt/lsst/software/jupyterlab" not in env.get("JUPYTER_CONFIG_PATH", "")
    assert "/usr/local/share/jupyterlab/venv/bin" not in env["PATH"].split(":")
    assert not any(k.startswith(("LD_", "PYTHON")) for k in env)


def test_default_kernel_and_payload_kernels_only(lab: Lab) -> None:
    specs = get(lab, "/api/kernelspecs")
    assert specs["default"] == "lsst"
    assert sorted(specs["kernelspecs"]) == ["lsst"]


def test_disabled_exporters(lab: Lab) -> None:
    exporters = get(lab, "/api/nbconvert")
    assert "html" in exporters and "script" in exporters
    for disabled in ("pdf", "webpdf", "qtpdf", "qtpng"):
        assert disabled not in exporters, disabled


def test_debug_log_level(lab: Lab) -> None:
    logs = lab.logs()
    assert f"runlab: starting nublado protocol (/etc/nublado/startup) in {HOME}" in logs
    assert "[D " in logs  # --log-level=DEBUG from args.json


def test_kernel_sees_env_json_and_tmpdir(lab: Lab) -> None:
    result = execute_in_lab(
        lab.base, lab.token, "lsst",
        "import os, sys, tempfile; print(repr(os.environ['NB_PROTOCOL_MARKER'])); "
        "print(os.environ['TMPDIR'], tempfile.gettempdir(), os.getcwd(), "
        "os.environ['RUNNING_INSIDE_JUPYTERLAB'], os.getuid(), sys.executable, "
        "os.environ['OMP_NUM_THREADS'], os.environ['HOME'])")
    assert result["status"] == "ok", result
    marker, rest = result["stdout"].splitlines()
    assert marker == repr(MARKER)
    assert rest.split() == [TMPDIR, TMPDIR, HOME, "TRUE", UID, SCIPLAT_PYTHON, "1",
                            HOME]


def test_kernel_path_user_bin_and_payload_first(lab: Lab) -> None:
    """`!python`, `!pip` and `pip install --user` tools resolve as users expect."""
    result = execute_in_lab(
        lab.base, lab.token, "lsst",
        "import os, shutil, subprocess; print(shutil.which('python')); "
        f"print('{HOME}/.local/bin' in os.environ['PATH'].split(':')); "
        "print(subprocess.run(['python', '-c', 'import sys; print(sys.prefix)'], "
        "capture_output=True, text=True).stdout.strip())")
    assert result["status"] == "ok", result
    assert result["stdout"].split() == [
        SCIPLAT_PYTHON, "True", SCIPLAT_PYTHON.removesuffix("/bin/python")]


def test_python3_kernel_runs_the_payload(lab: Lab) -> None:
    result = execute_in_lab(lab.base, lab.token, "python3",
                            "import sys; print(sys.executable)")
    assert result["status"] == "ok", result
    assert result["stdout"].strip() == SCIPLAT_PYTHON


def test_terminal_sees_env_json_and_tmpdir(lab: Lab) -> None:
    line = run_in_lab_terminal(
        lab.base, lab.token,
        "\"${NB_PROTOCOL_MARKER}|${TMPDIR}|${RUNNING_INSIDE_JUPYTERLAB}|$(id -u)|"
        "$(test -d \"$TMPDIR\" && echo dir)\"")
    assert line.split("|") == [MARKER, TMPDIR, "TRUE", UID, "dir"]


# --- malformed files ---------------------------------------------------------------


@pytest.mark.parametrize(("env", "args", "message"), [
    ("{not json", ARGS_JSON,
     "env.json: not valid JSON (Expecting property name enclosed in double quotes "
     "at line 1, column 2)"),
    (ENV_JSON, {"argv": ARGS_JSON},
     "args.json: must be a non-empty JSON list of strings (the server command), "
     "not an object"),
    ({**ENV_JSON, "CPU_LIMIT": 1}, ARGS_JSON,
     "env.json: the value of CPU_LIMIT must be a string, not a number"),
    (ENV_JSON, ["/bin/sh", "-c", "id"],
     "the server command '/bin/sh' is not one this image runs (expected "
     "jupyterhub-singleuser, jupyter-lab, jupyter-server)"),
    (ENV_JSON, None, "env.json: cannot be read (Permission denied)"),
])
def test_malformed_files_stop_the_start(sciplat: str, home_volume: str, hub: FakeHub,
                                        tmp_path: Path, env: Any, args: Any,
                                        message: str) -> None:
    startup = write_startup(tmp_path / "startup", env, args if args is not None
                            else ARGS_JSON, raw=True)
    if args is None:  # unreadable for the lab's UID
        (startup / "env.json").chmod(0o600)
    name = f"nublado-protocol-bad-{uuid.uuid4().hex[:8]}"
    try:
        docker(*run_args(sciplat, startup, home_volume, hub, name))
        code = docker("wait", name).stdout.strip()
        logs = docker("logs", name, check=False)
    finally:
        docker("rm", "-f", name, check=False)
    assert code == "2", logs.stderr
    lines = (logs.stdout + logs.stderr).splitlines()
    expected = f"runlab: error: {message}" if message.startswith("the server") \
        else f"runlab: error: /etc/nublado/startup/{message}"
    assert lines == [expected]


# --- docker stop ---------------------------------------------------------------------


def test_docker_stop_is_quick(sciplat: str, home_volume: str, hub: FakeHub,
                              tmp_path: Path) -> None:
    """tini passes SIGTERM on; the server stops its kernels and exits."""
    startup = write_startup(tmp_path / "startup", ENV_JSON, ARGS_JSON)
    running = start_lab(sciplat, startup, home_volume, hub)
    try:
        kernel = execute_in_lab(running.base, running.token, "lsst", "x = 1")
        assert kernel["status"] == "ok"
        # A kernel left running, as users leave them.
        body = json.dumps({"name": "lsst"}).encode()
        request = urllib.request.Request(
            f"{running.base}/api/kernels", data=body, method="POST",
            headers={"Authorization": f"token {running.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            assert resp.status == 201
        time.sleep(2)
        start = time.monotonic()
        docker("stop", running.name)
        seconds = time.monotonic() - start
        code = docker("inspect", "-f", "{{.State.ExitCode}}", running.name).stdout
    finally:
        docker("rm", "-f", running.name, check=False)
    print(f"docker stop: {seconds:.2f} s (exit code {code.strip()})")
    os.environ["NUBLADO_DOCKER_STOP_SECONDS"] = f"{seconds:.2f}"
    assert seconds < 5, f"docker stop took {seconds:.1f} s"
    assert code.strip() != "137", "the lab was killed, not stopped"


# --- the old controller: no startup files, its variables -----------------------


def test_old_controller_variables(sciplat: str, hub: FakeHub) -> None:
    """runlab.sh without startup files: DEBUG, CPU_LIMIT, RESET_USER_ENV."""
    volume = f"nublado-protocol-old-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", volume)
    try:
        docker("run", "--rm", "--user", "0:0", "-v", f"{volume}:{HOME}",
               "--entrypoint", "bash", sciplat, "-c",
               f"mkdir -p {HOME}/.local/bin {HOME}/.jupyter {HOME}/notebooks && "
               f"touch {HOME}/notebooks/.user_setups {HOME}/keep.txt && "
               f"chown -R {UID}:{UID} {HOME}")
        running = start_lab(sciplat, None, volume, hub, extra_env={
            "DEBUG": "TRUE", "CPU_LIMIT": "2.0", "RESET_USER_ENV": "TRUE"})
        try:
            argv = running.exec(f"cat /proc/{running.server_pid()}/cmdline").split("\0")
            assert argv[:-1] == [VENV_PYTHON, "-I", "-m", "jupyterhub.singleuser",
                                 "--log-level=DEBUG",
                                 "--MappingKernelManager.default_kernel_name=lsst"]
            moved = running.exec(
                f"cd {HOME} && ls -d .user_env.*; ls -A .user_env.*; "
                "ls -A .user_env.*/notebooks; ls -A notebooks | wc -l; "
                "ls keep.txt").split()
            result = execute_in_lab(
                running.base, running.token, "lsst",
                "import os; print(*(os.environ[k] for k in ('CPU_COUNT', "
                "'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'NUMEXPR_NUM_THREADS', "
                "'OMP_NUM_THREADS')))")
        finally:
            docker("rm", "-f", running.name, check=False)
    finally:
        docker("volume", "rm", "-f", volume, check=False)
    # ~/.user_env.<UTC YYYYmmddHHMMSS>/{jupyter,local,notebooks/user_setups}
    assert len(moved[0]) == len(".user_env.20261124183005"), moved
    assert moved[1:] == ["jupyter", "local", "notebooks", "user_setups", "0",
                         "keep.txt"]
    assert result["status"] == "ok", result
    # The lsst kernel's own env pins OMP_NUM_THREADS=1; the rest follow CPU_LIMIT.
    assert result["stdout"].split() == ["2", "2", "2", "2", "1"]


# --- Zero-to-JupyterHub's command, and a base for a 5.x hub -----------------------


def test_z2jh_default_command_runs_the_shim(sciplat: str, home_volume: str,
                                            hub: FakeHub) -> None:
    """`jupyterhub-singleuser` as the container's args (KubeSpawner's default)."""
    running = start_lab(sciplat, None, home_volume, hub,
                        command=("jupyterhub-singleuser", "--debug"))
    try:
        argv = running.exec(f"cat /proc/{running.server_pid()}/cmdline").split("\0")
        assert argv[:-1] == [VENV_PYTHON, "-I", "-m", "jupyterhub.singleuser",
                             "--debug",
                             "--MappingKernelManager.default_kernel_name=lsst"]
        assert running.exec("command -v jupyterhub-singleuser; command -v jupyter "
                            "|| echo none").split() == [
            "/usr/local/bin/jupyterhub-singleuser", "none"]
        assert get(running, "/api/kernelspecs")["default"] == "lsst"
        result = execute_in_lab(running.base, running.token, "python3",
                                "import os, sys; print(sys.executable, os.getcwd())")
        assert result["status"] == "ok", result
        assert result["stdout"].split() == [SCIPLAT_PYTHON, HOME]
    finally:
        docker("rm", "-f", running.name, check=False)


@pytest.fixture(scope="module")
def hub5_base(engine: None) -> str:
    tag = f"nublado-jupyterlab-base:{TEST_TAG}-hub5"
    result = run_cli("base", "--jupyterhub", "5", "--tag", tag, "--json")
    assert result.json["jupyterhub"] == 5
    return tag


def test_hub5_base_serves_a_5x_hub(hub5_base: str, home_volume: str) -> None:
    versions = docker("run", "--rm", hub5_base, "/usr/local/share/jupyterlab/venv/bin/"
                      "python3", "-I", "-c", "import jupyterhub, jupyterlab; "
                      "print(jupyterhub.__version__, jupyterlab.__version__)").stdout
    hub_version, lab_version = versions.split()
    assert hub_version.split(".")[0] == "5"
    assert lab_version.split(".")[0] == "4"
    # Nublado's hub pins 5.4.6: a minor difference, no warning.
    hub5 = FakeHub(bridge_gateway(), uuid.uuid4().hex, version="5.4.6")
    try:
        running = start_lab(hub5_base, None, home_volume, hub5,
                            command=("jupyterhub-singleuser",))
        try:
            assert "started" in get(running, "/api/status")
            logs = running.logs()
            assert "jupyterhub-singleuser version" not in logs, logs[-3000:]
            assert "could cause failure to authenticate" not in logs
        finally:
            docker("rm", "-f", running.name, check=False)
    finally:
        hub5.close()


def test_base_user_options_home_for_z2jh(engine: None) -> None:
    """`--user jovyan --home /home/jovyan`: Zero-to-JupyterHub's home, no settings."""
    tag = f"nublado-jupyterlab-base:{TEST_TAG}-jovyan"
    result = run_cli("base", "--user", "jovyan", "--uid", "1000", "--gid", "100",
                     "--home", "/home/jovyan", "--tag", tag, "--json")
    assert (result.json["user"], result.json["home"]) == ("jovyan", "/home/jovyan")
    attrs = json.loads(docker("image", "inspect", tag).stdout)[0]["Config"]
    assert attrs["User"] == "1000:100"
    assert attrs["Entrypoint"] == ["/usr/bin/tini", "-s", "--"]
    assert attrs["Cmd"] == ["/usr/local/share/jupyterlab/runlab"]
    # A command given to `docker run` runs under tini, unchanged.
    out = docker("run", "--rm", tag, "bash", "-c",
                 "echo \"$0 ok\"; tr '\\0' ' ' < /proc/1/cmdline").stdout
    assert out == "bash ok\n/usr/bin/tini -s -- bash -c echo \"$0 ok\"; tr '\\0' ' ' " \
        "< /proc/1/cmdline "
    name = f"nublado-protocol-jovyan-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, "-e", "JUPYTER_TOKEN=t", tag)
    try:
        deadline = time.monotonic() + 120
        cwd = ""
        while time.monotonic() < deadline and not cwd.startswith("/"):
            time.sleep(0.5)
            cwd = docker("exec", name, "bash", "-c", "readlink /proc/$(cut -d' ' "
                         "-f1 /proc/1/task/1/children)/cwd", check=False).stdout.strip()
        who = docker("exec", name, "bash", "-c", "id -un; echo $HOME").stdout.split()
    finally:
        docker("rm", "-f", name, check=False)
    assert cwd == "/home/jovyan"
    assert who == ["jovyan", "/home/jovyan"]
