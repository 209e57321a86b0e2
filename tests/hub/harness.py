"""A real JupyterHub for the tests: hub + configurable-http-proxy + DockerSpawner.

:class:`Hub` writes a ``jupyterhub_config.py`` into a scratch directory and
runs ``python -m jupyterhub`` as a subprocess (the hub starts
configurable-http-proxy from ``tests/hub/node_modules`` itself). Addresses:

- the public proxy listens on ``127.0.0.1:<free port>``, its REST API on
  another loopback port; the tests talk only to the public proxy;
- the hub listens on the Docker bridge gateway (``172.17.0.1`` usually),
  which is a local address of this machine, so the proxy reaches it and so
  do the containers (``hub_connect_ip``);
- DockerSpawner runs the lab on the default ``bridge`` network, publishing
  port 8888 on ``127.0.0.1`` only, with ``remove=True``.

The tests authenticate as a hub service (a token with admin scopes over
users and servers) and give each user a token of its own, as a user of the
hub would have. Every spawner setting a test varies lives in a
:class:`Mode`, keyed by the user's name and applied in a ``pre_spawn_hook``.

Clean-up (:meth:`Hub.stop`) ends the hub with SIGTERM (it stops the servers
and the proxy), then kills what is left by process id (the hub's own process
group, the proxy by its pid file) and removes every container that carries
this hub's label. Logs stay in the scratch directory and the last lines go
into every failure message (:meth:`Hub.log_tail`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHP = HERE / "node_modules" / ".bin" / "configurable-http-proxy"
HUB5_REQUIREMENTS = HERE / "requirements-hub5.txt"
LABEL = "nubladobuild.hubtest"


class HubError(AssertionError):
    """The hub or a spawn did not do what a test needed; message has the logs."""


@dataclass(frozen=True)
class Mode:
    """How DockerSpawner starts one user's server.

    ``cmd=None`` is DockerSpawner's default: the image's CMD.
    """

    user: str
    cmd: list[str] | None = None
    uid: int | None = None
    read_only: bool = False
    home_volume: str = ""  # mount a named volume (the hub's) at this path
    description: str = ""

    def spawner_settings(self) -> dict[str, Any]:
        """Return the settings the pre-spawn hook applies (JSON-ready)."""
        create: dict[str, Any] = {}
        host: dict[str, Any] = {}
        if self.uid is not None:
            create["user"] = f"{self.uid}:{self.uid}"
        if self.read_only:
            host["read_only"] = True
            host["tmpfs"] = {"/tmp": "rw,nosuid,nodev,mode=1777"}
        return {"cmd": self.cmd, "create": create, "host": host,
                "home": self.home_volume}


#: The three ways the issue asks for (issue 11, "Tests").
IMAGE_CMD = Mode("image-cmd", description="DockerSpawner default: the image CMD")
Z2JH_CMD = Mode("z2jh-cmd", cmd=["jupyterhub-singleuser"],
                description="Zero-to-JupyterHub default: cmd jupyterhub-singleuser")
UID_READ_ONLY = Mode("uid4242-ro", uid=4242, read_only=True,
                     description="uid 4242, read-only root, tmpfs /tmp")
MODES = (IMAGE_CMD, Z2JH_CMD, UID_READ_ONLY)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def bridge_gateway() -> str:
    """Return the address of this machine on Docker's default bridge.

    The default bridge's IPAM section often has no gateway; the address of
    its Linux interface (``docker0``) is the gateway.
    """
    info = json.loads(subprocess.run(
        ["docker", "network", "inspect", "bridge"], capture_output=True, text=True,
        check=True, timeout=60).stdout)[0]
    for config in info.get("IPAM", {}).get("Config") or []:
        if "." in config.get("Gateway", ""):
            return str(config["Gateway"])
    name = info.get("Options", {}).get("com.docker.network.bridge.name", "docker0")
    import fcntl
    import struct

    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), siocgifaddr,
                                 struct.pack("256s", name[:15].encode()))
        except OSError as err:
            raise HubError(f"no IPv4 address on the bridge interface {name}: "
                           f"{err}") from err
    return socket.inet_ntoa(packed[20:24])


def hub_python_5(cache: Path | None = None) -> str:
    """Return the Python of a venv with the hash-locked 5.x hub (made once).

    The venv lives in ``.venv-hub5`` at the top of the checkout and is
    rebuilt when ``tests/hub/requirements-hub5.txt`` changes.
    """
    venv = cache or REPO / ".venv-hub5"
    python = venv / "bin" / "python"
    stamp = venv / ".nublado-hub5-lock"
    import hashlib

    want = hashlib.sha256(HUB5_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == want:
        return str(python)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                   timeout=300)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-input",
         "--require-hashes", "-r", str(HUB5_REQUIREMENTS)],
        capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise HubError(f"installing the 5.x hub failed:\n{proc.stderr[-4000:]}")
    stamp.write_text(want + "\n")
    return str(python)


def _config(hub: Hub) -> str:
    settings = {
        "modes": {m.user: m.spawner_settings() for m in hub.modes},
        "image": hub.image,
        "label": {LABEL: hub.run_id},
        "user_label": f"{LABEL}.user",
        "prefix": hub.prefix,
    }
    d = hub.workdir
    return textwrap.dedent(f"""\
        # Generated by tests/hub/harness.py for one test run.
        import json

        c = get_config()  # noqa: F821 - traitlets injects it
        SETTINGS = json.loads({json.dumps(json.dumps(settings))})

        c.JupyterHub.ip = "127.0.0.1"
        c.JupyterHub.port = {hub.public_port}
        c.JupyterHub.hub_ip = {hub.hub_ip!r}
        c.JupyterHub.hub_port = {hub.hub_port}
        c.JupyterHub.hub_connect_ip = {hub.hub_ip!r}
        c.JupyterHub.db_url = "sqlite:///{d}/jupyterhub.sqlite"
        c.JupyterHub.cookie_secret_file = "{d}/jupyterhub_cookie_secret"
        c.JupyterHub.pid_file = "{d}/jupyterhub.pid"
        c.JupyterHub.cleanup_servers = True
        c.JupyterHub.cleanup_proxy = True
        c.JupyterHub.log_level = "DEBUG"
        c.JupyterHub.authenticator_class = "null"
        c.JupyterHub.services = [
            {{"name": "nubladotest", "api_token": {hub.service_token!r}}},
        ]
        c.JupyterHub.load_roles = [
            {{"name": "nubladotest",
              "scopes": ["admin:users", "admin:servers", "tokens",
                         "access:servers"],
              "services": ["nubladotest"]}},
        ]

        c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
        c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{hub.proxy_api_port}"
        c.ConfigurableHTTPProxy.auth_token = {hub.proxy_token!r}
        c.ConfigurableHTTPProxy.pid_file = "{d}/proxy.pid"

        c.JupyterHub.spawner_class = "docker"
        c.DockerSpawner.image = SETTINGS["image"]
        c.DockerSpawner.pull_policy = "never"
        c.DockerSpawner.remove = True
        c.DockerSpawner.network_name = "bridge"
        c.DockerSpawner.use_internal_ip = False
        c.DockerSpawner.host_ip = "127.0.0.1"
        c.DockerSpawner.prefix = SETTINGS["prefix"]
        c.Spawner.start_timeout = 180
        c.Spawner.http_timeout = 180
        c.Spawner.debug = False


        def pre_spawn_hook(spawner):
            mode = SETTINGS["modes"][spawner.user.name]
            spawner.cmd = mode["cmd"]
            labels = {{**SETTINGS["label"],
                       SETTINGS["user_label"]: spawner.user.name}}
            spawner.extra_create_kwargs = {{"labels": labels, **mode["create"]}}
            spawner.extra_host_config = mode["host"]
            if mode["home"]:
                volume = SETTINGS["prefix"] + "-home-" + spawner.escaped_name
                spawner.volumes = {{volume: mode["home"]}}


        c.Spawner.pre_spawn_hook = pre_spawn_hook
        """)


@dataclass
class Spawned:
    """A user's running server as the hub reported it."""

    user: str
    token: str
    url: str  # http://127.0.0.1:<public port>/user/<name>
    container: str
    seconds_to_ready: float


@dataclass
class Hub:
    """One JupyterHub process with its proxy, for one image."""

    python: str
    image: str
    workdir: Path
    major: int = 0  # the hub's major version, as the caller expects it
    modes: tuple[Mode, ...] = MODES
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    hub_ip: str = ""
    public_port: int = 0
    hub_port: int = 0
    proxy_api_port: int = 0
    service_token: str = field(default_factory=lambda: secrets.token_hex(32))
    proxy_token: str = field(default_factory=lambda: secrets.token_hex(32))
    proc: subprocess.Popen[bytes] | None = None
    version: str = ""

    @property
    def prefix(self) -> str:
        """Return the container-name prefix (``<prefix>-<user>``)."""
        tag = os.environ.get("NUBLADO_TEST_TAG", "test")
        return f"nbhub-{tag}-{self.run_id}"

    @property
    def public_url(self) -> str:
        """Return the public proxy's URL."""
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def log_path(self) -> Path:
        """Return the file with the hub's (and the proxy's) output."""
        return self.workdir / "jupyterhub.log"

    def log_tail(self, lines: int = 60) -> str:
        """Return the end of the hub log for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no hub log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, message: str) -> HubError:
        """Return an error carrying ``message`` and the hub log's tail."""
        return HubError(f"{message}\n--- hub log ({self.log_path}) ---\n"
                        f"{self.log_tail()}")

    # -- life cycle ----------------------------------------------------------

    def start(self, timeout: float = 90) -> None:
        """Write the config, start the hub, wait until the proxy routes to it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.hub_ip = self.hub_ip or bridge_gateway()
        self.public_port = free_port()
        self.proxy_api_port = free_port()
        self.hub_port = free_port(self.hub_ip)
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(_config(self))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("JUPYTERHUB_", "JPY_"))}
        env["CONFIGPROXY_AUTH_TOKEN"] = self.proxy_token
        env["PATH"] = f"{Path(CHP).parent}:{Path(self.python).parent}:{env['PATH']}"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-m", "jupyterhub", "-f", str(config)],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self.fail(f"jupyterhub exited {self.proc.returncode} "
                                "while starting")
            try:
                info = self.api("GET", "/")
                self.version = str(info["version"])
                return
            except (OSError, urllib.error.URLError, HubError):
                time.sleep(0.25)
        raise self.fail(f"the hub did not answer through the proxy in {timeout} s")

    def stop(self) -> None:
        """End the hub, its proxy and every container it started; never raises."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        if proc is not None:
            try:  # the hub's own session: what it started and did not end
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=30)
        self._kill_proxy()
        self.remove_containers()
        self.remove_volumes()

    def _kill_proxy(self) -> None:
        pid_file = self.workdir / "proxy.pid"
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(CHP).encode() in cmdline or b"configurable-http-proxy" in cmdline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def containers(self, user: str | None = None, *,
                   all_states: bool = True) -> list[str]:
        """Return the names of this hub's containers (of ``user`` if given)."""
        args = ["docker", "ps", "--filter", f"label={LABEL}={self.run_id}",
                "--format", "{{.Names}}"]
        if user is not None:
            args[2:2] = ["--filter", f"label={LABEL}.user={user}"]
        if all_states:
            args.insert(2, "-a")
        out = subprocess.run(args, capture_output=True, text=True, timeout=60,
                             check=False).stdout
        return sorted(out.split())

    def container_logs(self, user: str, lines: int = 60) -> str:
        """Return the end of ``user``'s container output (for failure messages)."""
        out = []
        for name in self.containers(user):
            proc = subprocess.run(["docker", "logs", "--tail", str(lines), name],
                                  capture_output=True, text=True, timeout=60,
                                  check=False)
            out.append(f"--- docker logs {name} ---\n{proc.stdout}{proc.stderr}")
        return "\n".join(out) or f"(no container of {user} left)"

    def volumes(self) -> list[str]:
        """Return the names of this hub's home volumes."""
        out = subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", f"name={self.prefix}-home-"],
            capture_output=True, text=True, timeout=60, check=False).stdout
        return sorted(out.split())

    def remove_volumes(self) -> None:
        """Remove this hub's home volumes (after its containers are gone)."""
        names = self.volumes()
        if names:
            subprocess.run(["docker", "volume", "rm", "-f", *names],
                           capture_output=True, timeout=120, check=False)

    def remove_containers(self) -> None:
        """Force-remove every container labelled with this hub's run id."""
        names = self.containers()
        if names:
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True,
                           timeout=120, check=False)

    # -- REST ----------------------------------------------------------------

    def api(self, method: str, path: str, body: dict[str, Any] | None = None,
            *, token: str | None = None, expect: tuple[int, ...] = (200, 201, 202, 204),
            ) -> Any:
        """Call ``/hub/api<path>`` through the public proxy as the test service."""
        status, data, _ = self.request(method, f"/hub/api{path}", body,
                                       token=token or self.service_token)
        if status not in expect:
            raise self.fail(f"{method} /hub/api{path} -> {status}: {data!r}")
        return data

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                *, token: str, timeout: float = 60,
                ) -> tuple[int, Any, dict[str, str]]:
        """Send one request to the public proxy; return status, JSON, headers."""
        raw = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.public_url}{path}", data=raw, method=method,
            headers={"Authorization": f"token {token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, text = resp.status, resp.read()
                headers = {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read()
            headers = {k.lower(): v for k, v in err.headers.items()}
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text.decode(errors="replace")
        return status, data, headers  # header names in lower case

    # -- users and servers ---------------------------------------------------

    def user_token(self, user: str) -> str:
        """Create ``user`` (if needed) and return a new API token of theirs."""
        status, _, _ = self.request("GET", f"/hub/api/users/{user}",
                                    token=self.service_token)
        if status == 404:
            self.api("POST", f"/users/{user}")
        data = self.api("POST", f"/users/{user}/tokens",
                        {"note": "nubladobuild hub tests", "expires_in": 7200})
        return str(data["token"])

    def server_model(self, user: str) -> dict[str, Any] | None:
        """Return the hub's model of ``user``'s default server, or None."""
        model = self.api("GET", f"/users/{user}")
        server: dict[str, Any] | None = model.get("servers", {}).get("")
        return server

    def spawn(self, mode: Mode, timeout: float = 240) -> Spawned:
        """Start ``mode.user``'s server; wait until the hub reports it ready."""
        token = self.user_token(mode.user)
        start = time.monotonic()
        status, data, _ = self.request("POST", f"/hub/api/users/{mode.user}/server",
                                       token=self.service_token, timeout=timeout)
        if status not in (201, 202):
            raise self.fail(f"spawning {mode.user} ({mode.description}): "
                            f"POST server -> {status}: {data!r}")
        deadline = start + timeout
        while True:
            server = self.server_model(mode.user)
            if server and server.get("ready"):
                break
            if server is None:
                raise self.fail(f"spawning {mode.user} ({mode.description}): "
                                "the spawn failed (the hub dropped the server)\n"
                                f"{self.container_logs(mode.user)}")
            if time.monotonic() > deadline:
                raise self.fail(f"spawning {mode.user}: not ready in {timeout} s\n"
                                f"{self.container_logs(mode.user)}")
            time.sleep(0.1)
        seconds = time.monotonic() - start
        mine = self.containers(mode.user, all_states=False)
        if len(mine) != 1:
            raise self.fail(f"{mode.user}: expected one running container, "
                            f"found {mine}")
        return Spawned(mode.user, token, f"{self.public_url}/user/{mode.user}",
                       mine[0], seconds)

    def stop_server(self, user: str, timeout: float = 120) -> float:
        """Stop ``user``'s server (DELETE); wait until it is stopped and gone.

        The hub reports the server stopped once ``docker stop`` returned and
        the removal was asked for; with ``remove=True`` (Docker's
        auto-remove) the daemon may still be removing the container, so this
        also waits until no container of ``user`` is left. Returns the
        seconds from the DELETE to that point.
        """
        start = time.monotonic()
        self.api("DELETE", f"/users/{user}/server", expect=(202, 204))
        while self.server_model(user) is not None or self.containers(user):
            if time.monotonic() - start > timeout:
                raise self.fail(f"{user}'s server was not stopped and removed in "
                                f"{timeout} s (containers: {self.containers(user)})")
            time.sleep(0.1)
        return time.monotonic() - start
