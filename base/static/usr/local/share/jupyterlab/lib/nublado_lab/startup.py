"""Start the JupyterLab server of nublado-jupyterlab-base.

Run by ``runlab`` (the image's CMD, and the old controller's
``/opt/lsst/software/jupyterlab/runlab.sh``) and by the
``jupyterhub-singleuser`` shim on the default PATH, always as
``<lab venv>/bin/python3 -I -m nublado_lab.startup``: isolated mode, so the
payload's ``PYTHON*`` variables and the user's site packages cannot reach
it, nor the server it starts.

How the server starts, first match wins:

1. The ``jupyterhub-singleuser`` shim: the hub's single-user server with
   the shim's arguments (Zero-to-JupyterHub's and KubeSpawner's default
   command).
2. The Nublado protocol (controller v11 and later): ``env.json`` and
   ``args.json`` in ``/etc/nublado/startup`` (or the older
   ``/lab_startup``). ``env.json`` is merged into the environment and the
   argv of ``args.json`` runs, its ``jupyterhub-singleuser`` resolved to the
   lab venv's own server. A file that is unreadable, not JSON or of the
   wrong shape stops the start with one line naming it.
3. ``JUPYTERHUB_API_TOKEN`` set (DockerSpawner with the image's CMD, the
   old controller): the hub's single-user server.
4. Otherwise a plain ``jupyter lab`` on ``0.0.0.0:8888`` with token auth.

Without protocol files the old controller's variables are honoured:
``DEBUG`` (debug log level), ``RESET_USER_ENV`` (move the user's tool state
aside into ``~/.user_env.<UTC time>``) and ``CPU_LIMIT`` (``CPU_COUNT`` and
the thread-count variables). In every case ``RUNNING_INSIDE_JUPYTERLAB=TRUE``
is exported, the payload's default kernel (``NUBLADO_DEFAULT_KERNEL``)
becomes ``MappingKernelManager.default_kernel_name`` unless the argv names
one, the server starts in ``$HOME`` (or the notebook directory it is given,
or the hub's ``JUPYTERHUB_ROOT_DIR``),
and variables that would change how the server's own Python or its shared
libraries load (``LD_*``, ``PYTHON*``, ``BASH_ENV``, ``ENV``) are taken out
of the server's environment and handed, unchanged, to kernels and terminals
through ``NUBLADO_PAYLOAD_ENV``.

Then, before the server starts, the payload's start hook runs when the
image has one (``nublado_lab.starthook``): what it exports reaches kernels
and terminals through a private file, never the server's environment; a
hook that fails or times out is logged and leaves
``NUBLADO_START_HOOK_FAILED`` set, and the lab starts all the same.

Everything that decides is a pure function of its inputs (``decide``);
``main`` reads the files, applies the plan and ``exec``s.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from nublado_lab import starthook

__all__ = [
    "LAB_ROOT",
    "Launch",
    "Protocol",
    "StartupError",
    "decide",
    "main",
    "read_protocol",
    "server_environment",
    "terminal_command",
]

LAB_ROOT = Path("/usr/local/share/jupyterlab")
"""Root of the lab's own files."""

VENV = LAB_ROOT / "venv"
"""The JupyterLab server venv."""

STARTUP_DIRS = (Path("/etc/nublado/startup"), Path("/lab_startup"))
"""Where the Nublado controller's init container writes the protocol files."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH when the environment has none."""

SENTINEL = "RUNNING_INSIDE_JUPYTERLAB"
"""Exported for the terminal hook and kernels: we are inside the lab."""

PAYLOAD_ENV = "NUBLADO_PAYLOAD_ENV"
"""JSON object of the variables kept from the server for kernels/terminals."""

ENTRY_SINGLEUSER = "--nublado-entry=singleuser"
"""First argument given by the ``jupyterhub-singleuser`` shim."""

SERVER_COMMANDS: Mapping[str, str] = {
    "jupyterhub-singleuser": "jupyterhub.singleuser",
    "jupyter-lab": "jupyterlab",
    "jupyter-server": "jupyter_server",
}
"""Server commands an argv may start with, and the module each runs."""

THREAD_VARIABLES = (
    "CPU_COUNT",
    "GOTO_NUM_THREADS",
    "MKL_DOMAIN_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MPI_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
"""Set to the CPU limit, as the Nublado controller does (plus MKL/vecLib)."""

RESET_NAMES = (".cache", ".conda", ".config", ".eups", ".jupyter", ".local")
"""What RESET_USER_ENV moves aside (the Nublado controller's list)."""

USER_SETUPS = Path("notebooks/.user_setups")
"""Also moved aside by RESET_USER_ENV: the Rubin kernel's per-user setup."""

HOOK_PROTECTED = ("HOME", SENTINEL, "CPU_LIMIT", *THREAD_VARIABLES)
"""Variables the start-up decides, which a start hook may not change."""

_NOTEBOOK_DIR_OPTIONS = ("notebook-dir", "ServerApp.root_dir",
                         "ServerApp.notebook_dir", "NotebookApp.notebook_dir")
_DEFAULT_KERNEL_RE = re.compile(r"^--\w*KernelManager\.default_kernel_name(=|$)")
_FALSE = frozenset({"", "0", "false", "no", "off"})


class StartupError(Exception):
    """The start cannot go on; the message is one line for the log."""


@dataclass(frozen=True)
class Protocol:
    """The Nublado controller's start-up files, read and checked."""

    directory: Path
    env: dict[str, str]
    args: list[str]


@dataclass(frozen=True)
class Launch:
    """What to do: moves, then exec ``argv`` with ``env`` in ``cwd``."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    mode: str
    moves: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- the protocol files --------------------------------------------------------


def _load_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StartupError(f"{path}: missing (the other start-up file is "
                           "there; the controller writes both)") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise StartupError(f"{path}: cannot be read ({reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StartupError(f"{path}: not valid JSON ({exc.msg} at line "
                           f"{exc.lineno}, column {exc.colno})") from None


def _valid_name(name: str) -> bool:
    return bool(name) and "=" not in name and "\0" not in name


def read_env_file(path: Path) -> dict[str, str]:
    """Read ``env.json``: an object of variable name -> string value."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise StartupError(f"{path}: must be a JSON object of variable names to "
                           f"strings, not {_json_type(data)}")
    for key, value in data.items():
        if not _valid_name(key):
            raise StartupError(f"{path}: {key!r} is not a valid variable name")
        if not isinstance(value, str) or "\0" in value:
            raise StartupError(f"{path}: the value of {key} must be a string, not "
                               f"{_json_type(value)}")
    return dict(data)


def read_args_file(path: Path) -> list[str]:
    """Read ``args.json``: a non-empty list of strings (the server argv)."""
    data = _load_json(path)
    if not isinstance(data, list) or not data:
        raise StartupError(f"{path}: must be a non-empty JSON list of strings (the "
                           f"server command), not {_json_type(data)}")
    for index, item in enumerate(data):
        if not isinstance(item, str) or "\0" in item:
            raise StartupError(f"{path}: item {index} must be a string, not "
                               f"{_json_type(item)}")
    if not data[0]:
        raise StartupError(f"{path}: item 0 (the command) is empty")
    return list(data)


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    names = {dict: "an object", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _present(path: Path) -> bool:
    """Return whether ``path`` exists, or might (it cannot be checked)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # e.g. a directory we may not search: reading will say
    return True


def read_protocol(dirs: Sequence[Path] = STARTUP_DIRS) -> Protocol | None:
    """Return the first directory's protocol files, or None when none has any.

    A directory counts when either file is there; then both must be
    readable and well formed.

    Raises
    ------
    StartupError
        Naming the file that is missing, unreadable, not JSON or of the
        wrong shape.
    """
    for directory in dirs:
        env_path, args_path = directory / "env.json", directory / "args.json"
        if _present(env_path) or _present(args_path):
            return Protocol(directory, read_env_file(env_path),
                            read_args_file(args_path))
    return None


# --- decisions -----------------------------------------------------------------


def _enabled(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in _FALSE


def _option_value(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """Return the last value of ``--NAME=V`` or ``--NAME V`` in ``argv``."""
    found = None
    for index, arg in enumerate(argv):
        for name in names:
            if arg.startswith(f"--{name}="):
                found = arg.split("=", 1)[1]
            elif arg == f"--{name}" and index + 1 < len(argv):
                found = argv[index + 1]
    return found


def server_command(argv: Sequence[str], venv: Path = VENV) -> list[str]:
    """Return the argv that runs ``argv``'s server from the lab venv.

    ``argv[0]`` must be one of the server commands (bare, or the venv's own
    script): it never goes through a PATH that users see.
    """
    command = argv[0]
    name = os.path.basename(command)
    if command != name and os.path.dirname(os.path.normpath(command)) \
            != str(venv / "bin"):
        name = ""
    if name not in SERVER_COMMANDS:
        known = ", ".join(SERVER_COMMANDS)
        raise StartupError(f"the server command {command!r} is not one this image "
                           f"runs (expected {known})")
    return [str(venv / "bin" / "python3"), "-I", "-m", SERVER_COMMANDS[name],
            *argv[1:]]


def split_environment(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split ``env`` into the server's part and the part only kernels get.

    Variables that change how a Python or the dynamic loader behaves
    (``LD_*``, ``PYTHON*``, ``BASH_ENV``, ``ENV``) stay away from the server;
    kernels and terminals get them back through ``NUBLADO_PAYLOAD_ENV``.
    """
    server: dict[str, str] = {}
    kept: dict[str, str] = {}
    for name, value in env.items():
        if name.startswith(("LD_", "PYTHON")) or name in ("BASH_ENV", "ENV"):
            kept[name] = value
        else:
            server[name] = value
    return server, kept


def _clean_path(path: str | None, venv: Path) -> str:
    bad = {str(venv / "bin"), str(venv / "bin") + "/"}
    parts = [p for p in (path or "").split(":") if p and p not in bad]
    return ":".join(parts) or DEFAULT_PATH


def server_environment(env: Mapping[str, str], venv: Path = VENV) -> dict[str, str]:
    """Return the server's environment from the full one (see split_environment)."""
    server, kept = split_environment(env)
    server.pop(PAYLOAD_ENV, None)
    if kept:
        server[PAYLOAD_ENV] = json.dumps(kept, sort_keys=True)
    server["PATH"] = _clean_path(server.get("PATH"), venv)
    return server


def cpu_variables(limit: str) -> dict[str, str]:
    """Return the thread-count variables for ``CPU_LIMIT`` (at least 1)."""
    try:
        count = max(int(float(limit)), 1)
    except (ValueError, OverflowError):
        count = 1
    return {name: str(count) for name in ("CPU_LIMIT", *THREAD_VARIABLES)}


def reset_moves(home: str, now: datetime.datetime,
                exists: Callable[[str], bool]) -> list[tuple[str, str]]:
    """Return the (source, destination) moves RESET_USER_ENV asks for."""
    target = os.path.join(home, f".user_env.{now.strftime('%Y%m%d%H%M%S')}")
    moves = []
    for name in RESET_NAMES:
        source = os.path.join(home, name)
        if exists(source):
            moves.append((source, os.path.join(target, name.lstrip("."))))
    setups = os.path.join(home, USER_SETUPS)
    if exists(setups):
        moves.append((setups, os.path.join(target, "notebooks", "user_setups")))
    return moves


def decide(environ: Mapping[str, str], args: Sequence[str], *,
           protocol: Protocol | None, now: datetime.datetime,
           usable_dir: Callable[[str], bool],
           exists: Callable[[str], bool] = os.path.lexists,
           venv: Path = VENV) -> Launch:
    """Decide how the server starts; pure apart from the two probes.

    Parameters
    ----------
    environ
        The process environment.
    args
        Arguments given to runlab (appended to the server argv), or the
        shim's marker followed by its arguments.
    protocol
        The Nublado controller's files, when present (ignored by the shim).
    now
        The time, for the RESET_USER_ENV directory name.
    usable_dir
        Return whether a path is (or can be made) a writable directory.
    exists
        Return whether a path exists (RESET_USER_ENV candidates).
    venv
        The lab venv.

    Raises
    ------
    StartupError
        When the protocol's server command is not one the image runs.
    """
    env = dict(environ)
    warnings: list[str] = []
    moves: list[tuple[str, str]] = []
    extra = list(args)
    shim = bool(extra) and extra[0] == ENTRY_SINGLEUSER
    if shim:
        extra = extra[1:]
        protocol = None

    if protocol is not None:
        mode = f"nublado protocol ({protocol.directory})"
        env.update(protocol.env)
        argv = [*server_command(protocol.args, venv), *extra]
    else:
        singleuser = shim or bool(env.get("JUPYTERHUB_API_TOKEN"))
        options: list[str] = []
        if singleuser:
            mode = "jupyterhub-singleuser" + (" (shim)" if shim else "")
            module = "jupyterhub.singleuser"
            if not env.get("JUPYTERHUB_SERVICE_URL"):
                # The hub normally says where to listen; without it, where
                # a plain lab listens.
                options += ["--ip=0.0.0.0", "--port=8888"]
        else:
            mode = "jupyter lab"
            module = "jupyterlab"
            ip = env.get("JUPYTERLAB_IP") or "0.0.0.0"  # noqa: S104 - the lab's port
            options += [f"--ip={ip}",
                        f"--port={env.get('JUPYTERLAB_PORT') or '8888'}",
                        "--no-browser"]
        if _enabled(env.get("DEBUG")):
            options.append("--log-level=DEBUG")
        argv = [str(venv / "bin" / "python3"), "-I", "-m", module, *options, *extra]
        if env.get("CPU_LIMIT"):
            env.update(cpu_variables(env["CPU_LIMIT"]))

    env[SENTINEL] = "TRUE"
    # Only the start hook, run after this decision, says these.
    env.pop(starthook.DIR_VARIABLE, None)
    env.pop(starthook.FAILED_VARIABLE, None)
    kernel = env.get("NUBLADO_DEFAULT_KERNEL", "")
    if kernel and not any(_DEFAULT_KERNEL_RE.match(a) for a in argv):
        argv.append(f"--MappingKernelManager.default_kernel_name={kernel}")

    home = env.get("HOME", "")
    if not home.strip("/") or not usable_dir(home):
        fallback = next((d for d in ("/tmp", env.get("TMPDIR", ""))  # noqa: S108 - container path
                         if d and usable_dir(d)), "/tmp")  # noqa: S108 - container path
        if home.strip("/"):
            warnings.append(f"HOME {home} is not a writable directory; using "
                            f"{fallback}")
        home = env["HOME"] = fallback
    if protocol is None and _enabled(env.get("RESET_USER_ENV")):
        moves = reset_moves(home, now, exists)
    tmpdir = env.get("TMPDIR")
    if tmpdir and not usable_dir(tmpdir):
        warnings.append(f"TMPDIR {tmpdir} is not a writable directory; unset")
        del env["TMPDIR"]

    cwd = _option_value(argv, _NOTEBOOK_DIR_OPTIONS)
    if not cwd and "jupyterhub.singleuser" in argv[:4]:
        # The hub's Spawner.notebook_dir; the server expands ~ the same way.
        root = env.get("JUPYTERHUB_ROOT_DIR", "")
        if root == "~" or root.startswith("~/"):
            root = home + root[1:]
        cwd = root
    cwd = cwd or home
    return Launch(argv=argv, env=server_environment(env, venv), cwd=cwd, mode=mode,
                  moves=moves, warnings=warnings)


# --- shared with the server configuration -------------------------------------


def kept_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the variables the start-up kept from the server for kernels."""
    raw = (os.environ if environ is None else environ).get(PAYLOAD_ENV, "")
    try:
        data = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def terminal_command(environ: Mapping[str, str] | None = None,
                     shell: Sequence[str] = ("/bin/bash", "-l")) -> list[str]:
    """Return the terminal command: a login shell with the kept variables back."""
    kept = kept_environment(environ)
    if not kept:
        return list(shell)
    return ["/usr/bin/env", *(f"{k}={v}" for k, v in sorted(kept.items())), *shell]


# --- doing it ------------------------------------------------------------------


def _usable_dir(path: str) -> bool:
    """Return whether ``path`` is a writable directory, making it if needed."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return False
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _say(message: str) -> None:
    print(f"runlab: {message}", file=sys.stderr, flush=True)


def apply(launch: Launch, hook_config: Path | None = None) -> NoReturn:
    """Move aside, change directory, run the start hook and exec the server."""
    for message in launch.warnings:
        _say(f"warning: {message}")
    for source, target in launch.moves:
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(source, target)
            _say(f"RESET_USER_ENV: moved {source} to {target}")
        except OSError as exc:
            _say(f"warning: RESET_USER_ENV: cannot move {source}: {exc}")
    cwd = launch.cwd
    try:
        os.chdir(cwd)
    except OSError as exc:
        _say(f"warning: cannot start in {cwd} ({exc.strerror}); starting in "
             f"{launch.env['HOME']}")
        cwd = launch.env["HOME"]
        os.chdir(cwd)
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(launch.env)
    env.update(starthook.run_start_hook(
        launch.env, cwd, kept=kept_environment(launch.env),
        payload_env_variable=PAYLOAD_ENV, protected=HOOK_PROTECTED,
        python=str(VENV / "bin" / "python3"),
        config_path=hook_config or starthook.CONFIG_PATH))
    _say(f"starting {launch.mode} in {cwd}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(launch.argv[0], launch.argv, env)  # noqa: S606 - exec, no shell


def main(args: Sequence[str] | None = None) -> NoReturn:
    """Start the server (the runlab and jupyterhub-singleuser entry point)."""
    args = list(sys.argv[1:] if args is None else args)
    try:
        shim = bool(args) and args[0] == ENTRY_SINGLEUSER
        protocol = None if shim else read_protocol()
        launch = decide(os.environ, args, protocol=protocol,
                        now=datetime.datetime.now(datetime.UTC),
                        usable_dir=_usable_dir)
    except StartupError as exc:
        _say(f"error: {exc}")
        sys.exit(2)
    apply(launch)


if __name__ == "__main__":
    main()
