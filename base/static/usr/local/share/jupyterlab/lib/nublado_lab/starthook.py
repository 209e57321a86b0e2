"""The payload's start hook, run by the start-up before the server.

A payload's ``start: {script: ..., timeout: ...}`` puts its script at
``/opt/nublado/start/start`` and its settings at
``/opt/nublado/start/start.json`` (nubladobuild/start.py). At lab start,
``nublado_lab.startup`` calls :func:`run_start_hook` as the lab user, after
it decided the server's environment and directory and before it ``exec``s
the server:

1. The hook runs as repo2docker's ``start`` does: ``start CMD...``, and must
   end with ``exec "$@"``. CMD is the lab venv's Python (``-I``) recording
   the environment it was ``exec``'d with into a private file. The hook
   gets the environment kernels get (the variables the start-up kept from
   the server back in, the payload environment activated), runs in the
   server's start directory, in a process group of its own, with its
   stdout and stderr going to the server log.
2. What the hook exported is the difference between the recorded
   environment and the one it was given, less what may not pass (see
   :func:`hook_exports`: loader and Python variables, Jupyter's, ours, the
   start-up's own and the shell's bookkeeping; each dropped name is
   logged).
3. The exports are written, mode 0600, to ``env.json`` and ``env.sh`` in a
   new private directory under ``$TMPDIR`` (else ``/tmp``, else ``$HOME``);
   the server gets only that directory's name, as
   ``NUBLADO_START_HOOK_DIR``. The server's own environment never holds an
   export: the kernel spec manager adds ``env.json`` to each kernel's
   environment, the terminals' profile hook sources ``env.sh``.
4. A hook that fails (exit status other than 0, ends without running its
   arguments, cannot run, outlives its time limit: then its whole process
   group is killed) does not stop the lab: the server log gets a line
   naming the hook, the reason and its last lines of output, and kernels
   and terminals see ``NUBLADO_START_HOOK_FAILED=<reason>`` (after
   Nublado's ``ABNORMAL_STARTUP``). Its exports are not used.

The decisions are pure functions (:func:`hook_environment`,
:func:`hook_exports`, :func:`failure_reason`, :func:`shell_exports`);
:func:`run_hook` runs the process.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "CONFIG_PATH",
    "DIR_VARIABLE",
    "FAILED_VARIABLE",
    "HookConfig",
    "HookError",
    "HookRun",
    "failure_reason",
    "hook_environment",
    "hook_exports",
    "read_config",
    "run_hook",
    "run_start_hook",
    "shell_exports",
    "start_exports",
]

CONFIG_PATH = Path("/opt/nublado/start/start.json")
"""The hook's settings, written by nublado-build (nubladobuild/start.py)."""

DIR_VARIABLE = "NUBLADO_START_HOOK_DIR"
"""The private directory holding the hook's exports (env.json, env.sh)."""

FAILED_VARIABLE = "NUBLADO_START_HOOK_FAILED"
"""Set, to the reason, in kernels and terminals when the hook failed."""

EXPORTS_JSON = "env.json"
EXPORTS_SH = "env.sh"

MAX_TIMEOUT = 600
"""The schema's bound on ``start.timeout`` (seconds)."""

TAIL_LINES = 20
"""Lines of the hook's output quoted in the failure line."""

GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL for a hook over its time limit, and
how long its output is read after it ended."""

SHELL_NOISE = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})
"""Variables shells set themselves: not exports of the hook."""

REFUSED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("LD_", "changes how programs load their libraries"),
    ("PYTHON", "changes how Python starts"),
    ("JUPYTER", "Jupyter's and the hub's own"),
    ("JPY_", "Jupyter's own"),
    ("NUBLADO_", "the lab's own"),
)
"""Names a hook may not export, by prefix, with the reason logged."""

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

#: The recorder: the program the hook ``exec``s. Writes the environment it
#: was exec'd with as JSON to argv[1] (a new file, mode 0600) and exits 0.
#: From /proc/self/environ: Python may add variables of its own at start
#: (LC_CTYPE, coercing a C locale), which os.environ would show.
RECORDER = (
    "import json, os, sys\n"
    "try:\n"
    "    with open('/proc/self/environ', 'rb') as f:\n"
    "        items = [i.split(b'=', 1) for i in f.read().split(b'\\0') if b'=' in i]\n"
    "    env = {os.fsdecode(k): os.fsdecode(v) for k, v in items}\n"
    "except OSError:\n"
    "    env = dict(os.environ)\n"
    "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)\n"
    "with os.fdopen(fd, 'w', encoding='utf-8', errors='surrogateescape') as f:\n"
    "    json.dump(env, f)\n"
)


class HookError(Exception):
    """The hook's settings cannot be used; the message is one line."""


@dataclass(frozen=True)
class HookConfig:
    """``start.json``: how to run the hook."""

    argv: list[str]
    timeout: int
    payload: str = ""
    script: str = ""
    path_first: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Return how log lines name the hook."""
        where = self.argv[-1] if self.argv else "?"
        if self.script and self.payload:
            return f"{where} ({self.script} of payload {self.payload})"
        return where


@dataclass
class HookRun:
    """What happened when the hook ran."""

    returncode: int | None = None
    timed_out: bool = False
    error: str | None = None
    recorded: dict[str, str] | None = None
    tail: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- settings ---------------------------------------------------------------------


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def read_config(path: Path = CONFIG_PATH) -> HookConfig | None:
    """Return the hook's settings, or None when the image has no hook.

    Raises
    ------
    HookError
        When the file is unreadable or not of the shape nublado-build writes.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise HookError(f"{path}: cannot be read ({reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HookError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise HookError(f"{path}: must be a JSON object")
    argv, timeout = data.get("argv"), data.get("timeout")
    if not _strings(argv) or not argv:
        raise HookError(f"{path}: argv must be a non-empty list of strings")
    if not isinstance(timeout, int) or isinstance(timeout, bool) \
            or not 1 <= timeout <= MAX_TIMEOUT:
        raise HookError(f"{path}: timeout must be a whole number of seconds from 1 "
                        f"to {MAX_TIMEOUT}")
    path_first = data.get("path_first", [])
    env = data.get("env", {})
    if not _strings(path_first):
        raise HookError(f"{path}: path_first must be a list of strings")
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and _NAME_RE.match(k) and isinstance(v, str)
            for k, v in env.items()):
        raise HookError(f"{path}: env must be an object of variable names to strings")
    payload, script = data.get("payload", ""), data.get("script", "")
    return HookConfig(argv=list(argv), timeout=timeout,
                      payload=payload if isinstance(payload, str) else "",
                      script=script if isinstance(script, str) else "",
                      path_first=list(path_first), env=dict(env))


# --- decisions ----------------------------------------------------------------------


def hook_environment(server_env: Mapping[str, str], config: HookConfig,
                     kept: Mapping[str, str], payload_env_variable: str
                     ) -> dict[str, str]:
    """Return the environment the hook runs with: what kernels get.

    Parameters
    ----------
    server_env
        The server's environment, as the start-up decided it.
    config
        The hook's settings (the payload environment's activation).
    kept
        The variables the start-up kept away from the server (``LD_*``,
        ``PYTHON*``, ...): kernels and terminals get them back, so does the
        hook.
    payload_env_variable
        The variable that carries ``kept`` in the server's environment
        (not passed on: the hook gets the variables themselves).
    """
    env = {k: v for k, v in server_env.items() if k != payload_env_variable}
    env.update(kept)
    if config.path_first:
        env["PATH"] = ":".join([*config.path_first, env.get("PATH", "")]).rstrip(":")
    env.update(config.env)
    return env


def refusal(name: str, value: str, protected: Sequence[str] = ()) -> str | None:
    """Return why an exported variable may not pass on, or None when it may."""
    if not _NAME_RE.match(name):
        return "not a shell variable name"
    for prefix, reason in REFUSED_PREFIXES:
        if name.startswith(prefix):
            return reason
    if name in ("BASH_ENV", "ENV"):
        return "makes shells run a file"
    if name in protected:
        return "set by the lab's start-up"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "its value is not UTF-8 text"
    return None


def hook_exports(given: Mapping[str, str], recorded: Mapping[str, str],
                 protected: Sequence[str] = ()
                 ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Return what the hook exported and may pass on, and what it may not.

    Parameters
    ----------
    given
        The environment the hook was given.
    recorded
        The environment its ``exec "$@"`` ran with.
    protected
        Names the start-up itself sets (``HOME``, the CPU variables, ...).

    Returns
    -------
    tuple
        The exports (name -> value: new or changed variables), and the
        dropped ones as (name, reason), by name. A variable the hook unset
        is dropped too: kernels and terminals inherit the server's.
    """
    exports: dict[str, str] = {}
    dropped: list[tuple[str, str]] = []
    for name in sorted(recorded):
        value = recorded[name]
        if name in SHELL_NOISE or given.get(name) == value:
            continue
        reason = refusal(name, value, protected)
        if reason is None:
            exports[name] = value
        else:
            dropped.append((name, reason))
    for name in sorted(set(given) - set(recorded) - SHELL_NOISE):
        dropped.append((name, "unset by the hook; a hook can add or change "
                        "variables, not remove them"))
    return exports, sorted(dropped)


def failure_reason(run: HookRun, timeout: int) -> str | None:
    """Return why the hook failed, in a few words, or None when it did not."""
    if run.error is not None:
        return f"cannot run: {run.error}"
    if run.timed_out:
        return f"timed out after {timeout} s"
    code = run.returncode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    if code:
        return f"exit status {code}"
    if run.recorded is None:
        return "exit status 0 without running its arguments (end it with exec \"$@\")"
    return None


def shell_exports(exports: Mapping[str, str]) -> str:
    """Return ``env.sh``: one quoted ``export`` per variable, sourced by shells."""
    lines = ["# The start hook's exports, written by the lab's start-up; sourced",
             "# by /etc/profile.d/zz-nublado-payload.sh in terminals."]
    lines += [f"export {name}={shlex.quote(value)}"
              for name, value in sorted(exports.items())]
    return "\n".join(lines) + "\n"


# --- running it ----------------------------------------------------------------------


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_Handler = Callable[[int, Any], object] | int | None


def _stop_with(pgid: int) -> _Handler:
    """Make SIGTERM (``docker stop`` while the hook runs) end the hook too.

    The hook has a session of its own, so tini's SIGTERM reaches only the
    start-up; without this the hook would outlive it. Returns the previous
    handler (None when handlers cannot be set: not the main thread).
    """
    def stop(signum: int, _frame: Any) -> None:
        _kill_group(pgid, signal.SIGKILL)
        os._exit(128 + signum)

    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:
        return None


def _restore(previous: _Handler) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _drain_in_background(fd: int, out: BinaryIO) -> None:
    """Copy what is left of the hook's output to ``out`` from a detached process.

    Processes the hook left running keep its output open; closing our end
    would kill them with SIGPIPE at their next line. A grandchild (adopted,
    and reaped, by the init process) copies until they close it.
    """
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:  # the child: fork again and leave
        try:
            if os.fork() == 0:
                os.setsid()
                while chunk := os.read(fd, 65536):
                    out.write(chunk)
                    out.flush()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def run_hook(config: HookConfig, env: Mapping[str, str], cwd: str, record: Path,
             python: str, out: BinaryIO,
             clock: Callable[[], float] = time.monotonic) -> HookRun:
    """Run the hook with its time limit; copy its output to ``out``.

    Parameters
    ----------
    config
        The hook's settings (argv, time limit).
    env
        The environment it runs with (see :func:`hook_environment`).
    cwd
        Its working directory.
    record
        Where the recorder writes the environment (must not exist).
    python
        The interpreter of the recorder (the lab venv's).
    out
        Where the hook's stdout and stderr go (the server log).
    clock
        The monotonic clock.
    """
    argv = [*config.argv, python, "-I", "-c", RECORDER, str(record)]
    run = HookRun()
    started = clock()
    try:
        proc = subprocess.Popen(argv, env=dict(env), cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        run.error = exc.strerror or str(exc)
        return run
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    tail: deque[bytes] = deque(maxlen=TAIL_LINES)
    partial = b""
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    previous = _stop_with(proc.pid)
    deadline = started + config.timeout
    ended_at: float | None = None
    eof = False
    while not eof:
        now = clock()
        if ended_at is None and proc.poll() is not None:
            ended_at = now
        if ended_at is None and now >= deadline:
            run.timed_out = True
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(GRACE)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
            _kill_group(proc.pid, signal.SIGKILL)  # what ignored SIGTERM in the group
            ended_at = clock()
            continue
        if ended_at is not None and now >= ended_at + GRACE:
            break
        limit = (ended_at + GRACE if ended_at is not None else deadline) - now
        for _ in selector.select(min(max(limit, 0.0), 0.2)):
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                eof = True
                break
            out.write(chunk)
            out.flush()
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            tail.extend(lines)
    selector.close()
    _restore(previous)
    run.returncode = proc.wait()
    run.seconds = clock() - started
    if partial:
        tail.append(partial)
    run.tail = [line.decode("utf-8", "replace").rstrip("\r") for line in tail]
    if not eof:
        os.set_blocking(fd, True)
        _drain_in_background(fd, out)
    proc.stdout.close()
    try:
        data = json.loads(record.read_text(encoding="utf-8", errors="surrogateescape"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and all(isinstance(k, str) and isinstance(v, str)
                                      for k, v in data.items()):
        run.recorded = data
    return run


def _private_dir(env: Mapping[str, str]) -> Path:
    """Return a new private directory for the hook's files (mode 0700)."""
    candidates = [env.get("TMPDIR", ""), "/tmp", env.get("HOME", "")]  # noqa: S108
    error: OSError | None = None
    for base in candidates:
        if base and os.path.isabs(base):
            try:
                return Path(tempfile.mkdtemp(prefix="nublado-start-", dir=base))
            except OSError as exc:
                error = exc
    raise error or OSError("no writable directory for the start hook's files")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def start_exports(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the hook's exports for a kernel (``env.json``), or nothing.

    Read by the kernel spec manager in the server; checked again, so that
    whatever the file holds only ever adds allowed names.
    """
    env = os.environ if environ is None else environ
    directory = env.get(DIR_VARIABLE, "")
    if not directory or not os.path.isabs(directory):
        return {}
    try:
        data = json.loads((Path(directory) / EXPORTS_JSON).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(k, str) and isinstance(v, str) and refusal(k, v) is None}


def _say(out: BinaryIO, message: str) -> None:
    out.write(f"runlab: start hook: {message}\n".encode("utf-8", "replace"))
    out.flush()


def run_start_hook(server_env: Mapping[str, str], cwd: str, *, kept: Mapping[str, str],
                   payload_env_variable: str, protected: Sequence[str],
                   python: str, config_path: Path = CONFIG_PATH,
                   out: BinaryIO | None = None) -> dict[str, str]:
    """Run the image's start hook, if any; return what the server env gets.

    Parameters
    ----------
    server_env
        The server's environment, as the start-up decided it.
    cwd
        The server's start directory (the hook runs there).
    kept
        The variables kept away from the server (the hook gets them).
    payload_env_variable
        The variable carrying ``kept`` in ``server_env``.
    protected
        Names the start-up sets, which the hook may not change.
    python
        The lab venv's interpreter (the recorder).
    config_path
        The hook's settings.
    out
        The server log (default: stderr).

    Returns
    -------
    dict
        ``{NUBLADO_START_HOOK_DIR: directory}`` after a hook that worked,
        ``{NUBLADO_START_HOOK_FAILED: reason}`` after one that did not,
        nothing without a hook. Never an export itself.
    """
    log = out if out is not None else sys.stderr.buffer
    try:
        config = read_config(config_path)
    except HookError as exc:
        _say(log, f"error: {exc}; the lab starts without it")
        return {FAILED_VARIABLE: "its settings cannot be read"}
    if config is None:
        return {}
    env = hook_environment(server_env, config, kept, payload_env_variable)
    try:
        directory = _private_dir(server_env)
    except OSError as exc:
        why = f"no writable directory for its files ({exc})"
        _say(log, f"{config.name} not run: {why}; the lab starts without it")
        return {FAILED_VARIABLE: why}
    _say(log, f"running {config.name}, time limit {config.timeout} s")
    run = run_hook(config, env, cwd, directory / "recorded.json", python, log)
    try:
        (directory / "recorded.json").unlink()
    except OSError:
        pass
    reason = failure_reason(run, config.timeout)
    if reason is not None:
        tail = " | ".join(run.tail[-TAIL_LINES:]) or "(no output)"
        _say(log, f"FAILED: {config.name}: {reason}; the lab starts without its "
             f"exports; {FAILED_VARIABLE} is set. Last output: {tail}")
        return {FAILED_VARIABLE: reason}
    assert run.recorded is not None
    exports, dropped = hook_exports(env, run.recorded, protected)
    for name, why in dropped:
        _say(log, f"not passed on: {name} ({why})")
    try:
        _write_private(directory / EXPORTS_JSON,
                       json.dumps(exports, sort_keys=True, indent=1) + "\n")
        _write_private(directory / EXPORTS_SH, shell_exports(exports))
    except OSError as exc:
        why = f"cannot write its exports ({exc.strerror or exc})"
        _say(log, f"FAILED: {config.name}: {why}")
        return {FAILED_VARIABLE: why}
    names = ", ".join(sorted(exports)) or "nothing"
    _say(log, f"done in {run.seconds:.1f} s; kernels and terminals get: {names}")
    return {DIR_VARIABLE: str(directory)}
