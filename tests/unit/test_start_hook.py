"""The start hook: ``start:`` in payload.yaml, its files, and how it runs.

Build side: the schema and loader (errors with file, line, exit 2), the
plan (``/opt/nublado/start/start`` and ``start.json``) and the rendered
context. Image side (``nublado_lab.starthook``): the decisions as pure
functions, and the hook run as a real subprocess (exports, failure, no
``exec``, a time limit that kills the process group).
"""

from __future__ import annotations

import io
import json
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nubladobuild.errors import EXIT_INPUT, PayloadInvalid
from nubladobuild.loader import load_payload
from nubladobuild.resolve import inputs_sha256
from nubladobuild.start import CONFIG_PATH, SCRIPT_PATH
from tests.unit.helpers import dockerfile_of, files_of, plan_of

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "base" / "static" / "usr" / "local" / "share" / "jupyterlab" / "lib"
PROFILE_HOOK = REPO / "base" / "static" / "etc" / "profile.d" / "zz-nublado-payload.sh"
sys.path.insert(0, str(LIB))

from nublado_lab import starthook  # noqa: E402 - after sys.path set-up
from nublado_lab.starthook import (  # noqa: E402 - after sys.path set-up
    HookConfig,
    HookError,
    HookRun,
    failure_reason,
    hook_environment,
    hook_exports,
    read_config,
    run_hook,
    run_start_hook,
    shell_exports,
    start_exports,
)

PAYLOAD = """\
name: hooked
install:
  - pip: {requirements: requirements.txt}
kernel:
  name: hooked
  display_name: Hooked
"""
SCRIPT = "#!/bin/bash\nexport GREETING=hello\nexec \"$@\"\n"


def write(tmp: Path, start: str, files: dict[str, str] | None = None) -> Path:
    (tmp / "payload.yaml").write_text(PAYLOAD + start)
    (tmp / "requirements.txt").write_text("six\n")
    for name, content in ({"start.sh": SCRIPT} if files is None else files).items():
        (tmp / name).write_text(content)
    return tmp


def problems(tmp: Path, start: str, files: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(write(tmp, start, files))
    assert info.value.exit_code == EXIT_INPUT
    return [p.render() for p in info.value.problems]


# --- schema and loader ------------------------------------------------------------


def test_start_loads_with_default_timeout(tmp_path: Path) -> None:
    loaded = load_payload(write(tmp_path, "start: {script: start.sh}\n"))
    assert loaded.model.start is not None
    assert (loaded.model.start.script, loaded.model.start.timeout) == ("start.sh", 60)
    assert loaded.start_script == SCRIPT.encode()


def test_no_start_no_script(tmp_path: Path) -> None:
    loaded = load_payload(write(tmp_path, "", {}))
    assert loaded.model.start is None and loaded.start_script is None


def test_missing_script_named_with_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "start: {script: bin/start}\n", {})
    assert found == [f"{tmp_path}/payload.yaml:7: start.script: file 'bin/start' "
                     f"does not exist in {tmp_path}; create it or fix the path"]


@pytest.mark.parametrize(("value", "message"), [
    ("0", "Input should be greater than or equal to 1"),
    ("601", "Input should be less than or equal to 600"),
    ("'60'", "Input should be a valid integer"),
    ("true", "Input should be a valid integer"),
    ("1.5", "Input should be a valid integer"),
])
def test_bad_timeout(tmp_path: Path, value: str, message: str) -> None:
    found = problems(tmp_path, f"start:\n  script: start.sh\n  timeout: {value}\n")
    assert found == [f"{tmp_path}/payload.yaml:9: start.timeout: {message}"]


def test_bad_timeout_and_missing_script_both_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, "start:\n  script: gone.sh\n  timeout: 0\n", {})
    assert found == [
        f"{tmp_path}/payload.yaml:8: start.script: file 'gone.sh' does not exist in "
        f"{tmp_path}; create it or fix the path",
        f"{tmp_path}/payload.yaml:9: start.timeout: Input should be greater than or "
        "equal to 1"]


@pytest.mark.parametrize(("start", "message"), [
    ("start: {script: /etc/start.sh}\n",
     "start.script: '/etc/start.sh' must be a path relative to the payload "
     "directory, made of letters, digits and ._+-/"),
    ("start: {timeout: 5}\n", "start.script: required field is missing"),
    ("start: {script: start.sh, when: early}\n",
     "start.when: unknown field 'when'; remove it or check its spelling"),
])
def test_schema_errors(tmp_path: Path, start: str, message: str) -> None:
    assert problems(tmp_path, start) == [f"{tmp_path}/payload.yaml:7: {message}"]


def test_script_that_is_a_directory(tmp_path: Path) -> None:
    write(tmp_path, "start: {script: hooks}\n", {})
    (tmp_path / "hooks").mkdir()
    with pytest.raises(PayloadInvalid) as info:
        load_payload(tmp_path)
    assert [p.render() for p in info.value.problems] == [
        f"{tmp_path}/payload.yaml:7: start.script: 'hooks' is a directory; name a "
        "file"]


def test_validate_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "start:\n  script: start.sh\n  timeout: 900\n")
    proc = subprocess.run([sys.executable, "-m", "nubladobuild", "validate",
                           str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          check=False, timeout=120)
    assert proc.returncode == 2
    assert f"{tmp_path}/payload.yaml:9: start.timeout: Input should be less than or " \
        "equal to 600" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- plan and render -----------------------------------------------------------------


def test_plan_and_context(tmp_path: Path) -> None:
    plan = plan_of(write(tmp_path, "start: {script: start.sh, timeout: 15}\n"))
    assert plan.start is not None
    assert json.loads(plan.start.config) == {
        "argv": [SCRIPT_PATH], "timeout": 15, "payload": "hooked",
        "script": "start.sh", "path_first": ["/opt/payload/venv/bin"],
        "env": {"VIRTUAL_ENV": "/opt/payload/venv"}}
    files = files_of(plan)
    assert files["start/start"] == (SCRIPT.encode(), 0o755)
    assert files["start/start.json"] == (plan.start.config.encode(), 0o644)
    # The guard allows exactly these two (and the directories leading there).
    assert SCRIPT_PATH in plan.generated and CONFIG_PATH in plan.generated
    allowed = files["guard/allowed.txt"][0].decode().splitlines()
    assert [p for p in allowed if p.startswith("/opt/")] == [SCRIPT_PATH, CONFIG_PATH]
    assert list(plan.generated) == sorted(plan.generated)
    assert '\nCOPY ["start/start", "start/start.json", "/opt/nublado/start/"]\n' \
        in dockerfile_of(plan)


def test_script_without_shebang_runs_with_sh(tmp_path: Path) -> None:
    plan = plan_of(write(tmp_path, "start: {script: start.sh}\n",
                         {"start.sh": "export A=1\nexec \"$@\"\n"}))
    assert plan.start is not None
    assert json.loads(plan.start.config)["argv"] == ["/bin/sh", SCRIPT_PATH]


def test_no_start_nothing_rendered(tmp_path: Path) -> None:
    plan = plan_of(write(tmp_path, "", {}))
    assert plan.start is None
    assert not any(name.startswith("start/") for name in files_of(plan))
    assert "/opt/nublado" not in dockerfile_of(plan)
    assert not any(p.startswith("/opt/") for p in plan.generated)


def test_script_counts_in_the_inputs_hash(tmp_path: Path) -> None:
    first = inputs_sha256(load_payload(write(tmp_path, "start: {script: start.sh}\n")),
                          "standard")
    (tmp_path / "start.sh").write_text(SCRIPT + "# changed\n")
    assert inputs_sha256(load_payload(tmp_path), "standard") != first


def test_guard_protects_the_start_directory() -> None:
    from tests.unit.test_guard import guard

    assert "/opt/nublado" in guard.PROTECTED
    entry = ("file", "0o755", "0", "0", "")
    assert guard.allowed(SCRIPT_PATH, [SCRIPT_PATH, CONFIG_PATH], None, entry)
    assert guard.allowed("/opt/nublado/start", [SCRIPT_PATH], None,
                         ("dir", "0o755", "0", "0", ""))
    assert not guard.allowed("/opt/nublado/start/extra", [SCRIPT_PATH, CONFIG_PATH],
                             None, entry)


def test_prefix_in_the_start_directory_refused(tmp_path: Path) -> None:
    (tmp_path / "payload.yaml").write_text(PAYLOAD.replace(
        "requirements.txt}", "requirements.txt, prefix: /opt/nublado/venv}"))
    (tmp_path / "requirements.txt").write_text("six\n")
    with pytest.raises(PayloadInvalid) as info:
        load_payload(tmp_path)
    assert "nublado-build's own files" in info.value.problems[0].message


# --- settings in the image ------------------------------------------------------------


def config(tmp: Path, script: str, timeout: int = 10) -> HookConfig:
    path = tmp / "start"
    path.write_text(script)
    path.chmod(0o755)
    return HookConfig(argv=[str(path)], timeout=timeout, payload="p", script="s.sh")


def test_read_config(tmp_path: Path) -> None:
    path = tmp_path / "start.json"
    assert read_config(path) is None
    path.write_text(json.dumps({"argv": ["/opt/nublado/start/start"], "timeout": 5,
                                "payload": "p", "script": "s.sh",
                                "path_first": ["/opt/v/bin"],
                                "env": {"VIRTUAL_ENV": "/opt/v"}}))
    assert read_config(path) == HookConfig(
        argv=["/opt/nublado/start/start"], timeout=5, payload="p", script="s.sh",
        path_first=["/opt/v/bin"], env={"VIRTUAL_ENV": "/opt/v"})


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not valid JSON (Expecting property name enclosed in double quotes)"),
    ("[]", "must be a JSON object"),
    ('{"argv": [], "timeout": 5}', "argv must be a non-empty list of strings"),
    ('{"argv": ["x"], "timeout": 0}',
     "timeout must be a whole number of seconds from 1 to 600"),
    ('{"argv": ["x"], "timeout": true}',
     "timeout must be a whole number of seconds from 1 to 600"),
    ('{"argv": ["x"], "timeout": 5, "env": {"A=B": "c"}}',
     "env must be an object of variable names to strings"),
])
def test_read_config_refuses(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "start.json"
    path.write_text(text)
    with pytest.raises(HookError) as info:
        read_config(path)
    assert str(info.value) == f"{path}: {message}"


# --- decisions ---------------------------------------------------------------------


def test_hook_environment_is_the_kernels() -> None:
    conf = HookConfig(argv=["x"], timeout=5, path_first=["/opt/v/bin"],
                      env={"VIRTUAL_ENV": "/opt/v"})
    env = hook_environment({"PATH": "/usr/bin", "HOME": "/h",
                            "NUBLADO_PAYLOAD_ENV": '{"LD_LIBRARY_PATH": "/l"}'},
                           conf, {"LD_LIBRARY_PATH": "/l"}, "NUBLADO_PAYLOAD_ENV")
    assert env == {"PATH": "/opt/v/bin:/usr/bin", "HOME": "/h",
                   "LD_LIBRARY_PATH": "/l", "VIRTUAL_ENV": "/opt/v"}


def test_hook_exports_diff_and_filter() -> None:
    given = {"PATH": "/usr/bin", "HOME": "/h", "KEEP": "same", "GONE": "x",
             "CHANGED": "old", "SHLVL": "1"}
    recorded = {"PATH": "/h/bin:/usr/bin", "HOME": "/elsewhere", "KEEP": "same",
                "CHANGED": "new", "NEW": "it's $HOME", "SHLVL": "2", "_": "/x",
                "PWD": "/h", "LD_PRELOAD": "/evil.so", "LD_LIBRARY_PATH": "/l",
                "LD_AUDIT": "/a.so", "PYTHONPATH": "/p", "JUPYTER_PATH": "/j",
                "JUPYTERHUB_API_TOKEN": "t", "JPY_SESSION_NAME": "s",
                "NUBLADO_START_HOOK_FAILED": "no", "BASH_ENV": "/b",
                "RUNNING_INSIDE_JUPYTERLAB": "FALSE", "OMP_NUM_THREADS": "64",
                "BAD-NAME": "v"}
    exports, dropped = hook_exports(given, recorded, ("HOME", "OMP_NUM_THREADS",
                                                      "RUNNING_INSIDE_JUPYTERLAB"))
    assert exports == {"PATH": "/h/bin:/usr/bin", "CHANGED": "new",
                       "NEW": "it's $HOME"}
    assert dropped == [
        ("BAD-NAME", "not a shell variable name"),
        ("BASH_ENV", "makes shells run a file"),
        ("GONE", "unset by the hook; a hook can add or change variables, not "
                 "remove them"),
        ("HOME", "set by the lab's start-up"),
        ("JPY_SESSION_NAME", "Jupyter's own"),
        ("JUPYTERHUB_API_TOKEN", "Jupyter's and the hub's own"),
        ("JUPYTER_PATH", "Jupyter's and the hub's own"),
        ("LD_AUDIT", "changes how programs load their libraries"),
        ("LD_LIBRARY_PATH", "changes how programs load their libraries"),
        ("LD_PRELOAD", "changes how programs load their libraries"),
        ("NUBLADO_START_HOOK_FAILED", "the lab's own"),
        ("OMP_NUM_THREADS", "set by the lab's start-up"),
        ("PYTHONPATH", "changes how Python starts"),
        ("RUNNING_INSIDE_JUPYTERLAB", "set by the lab's start-up")]


def test_hook_exports_non_utf8_value_dropped() -> None:
    exports, dropped = hook_exports({}, {"A": "caf\udce9"})
    assert exports == {}
    assert dropped == [("A", "its value is not UTF-8 text")]


@pytest.mark.parametrize(("run", "reason"), [
    (HookRun(returncode=0, recorded={}), None),
    (HookRun(returncode=3, recorded=None), "exit status 3"),
    (HookRun(returncode=1, recorded={"A": "1"}), "exit status 1"),
    (HookRun(returncode=0, recorded=None),
     "exit status 0 without running its arguments (end it with exec \"$@\")"),
    (HookRun(returncode=-9, timed_out=True), "timed out after 7 s"),
    (HookRun(returncode=-15), "killed by SIGTERM"),
    (HookRun(error="Permission denied"), "cannot run: Permission denied"),
])
def test_failure_reason(run: HookRun, reason: str | None) -> None:
    assert failure_reason(run, 7) == reason


def test_shell_exports_round_trip_through_a_shell(tmp_path: Path) -> None:
    values = {"A": "it's \"quoted\" $HOME `x` \\ ; done", "B": "",
              "PATH": "/x:/usr/bin"}
    (tmp_path / "env.sh").write_text(shell_exports(values))
    out = subprocess.run(["/bin/sh", "-c", f". {tmp_path}/env.sh && /usr/bin/env -0"],
                         capture_output=True, check=True, env={}).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if item)
    assert {k: env[k] for k in values} == values


# --- running it ------------------------------------------------------------


def run_real(tmp: Path, script: str, timeout: int = 10,
             env: dict[str, str] | None = None) -> tuple[HookRun, str]:
    out = io.BytesIO()
    given = env if env is not None else {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}
    run = run_hook(config(tmp, script, timeout), given, str(tmp), tmp / "rec.json",
                   sys.executable, out)
    return run, out.getvalue().decode()


def test_run_records_the_exec_environment(tmp_path: Path) -> None:
    run, out = run_real(tmp_path, "#!/bin/sh\necho hello; echo oops >&2\n"
                        "export GREETING='hi there'\nexec \"$@\"\n")
    assert (run.returncode, run.timed_out, run.error) == (0, False, None)
    assert out == "hello\noops\n"
    assert run.tail == ["hello", "oops"]
    assert run.recorded is not None
    assert run.recorded["GREETING"] == "hi there"
    assert run.recorded["HOME"] == str(tmp_path)
    assert failure_reason(run, 10) is None
    assert stat.S_IMODE((tmp_path / "rec.json").stat().st_mode) == 0o600


def test_run_failing_hook(tmp_path: Path) -> None:
    run, _ = run_real(tmp_path, "#!/bin/sh\necho one; echo two\nexit 3\n")
    assert (run.returncode, run.recorded, run.tail) == (3, None, ["one", "two"])
    assert failure_reason(run, 10) == "exit status 3"


def test_run_hook_that_does_not_exec(tmp_path: Path) -> None:
    run, _ = run_real(tmp_path, "#!/bin/sh\nexport A=1\n")
    assert failure_reason(run, 10) == "exit status 0 without running its arguments " \
        "(end it with exec \"$@\")"


def test_run_hook_that_cannot_run(tmp_path: Path) -> None:
    conf = config(tmp_path, "#!/bin/sh\nexec \"$@\"\n")
    Path(conf.argv[0]).chmod(0o644)
    run = run_hook(conf, {"PATH": "/bin"}, str(tmp_path), tmp_path / "r.json",
                   sys.executable, io.BytesIO())
    assert failure_reason(run, 10) == "cannot run: Permission denied"


def gone(pid: int) -> bool:
    """Return whether a process ended (or is a zombie its adopter has not reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_run_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (f"#!/bin/sh\necho started\nsleep 30 &\necho $! > {pids}\n"
              "trap '' TERM\nsleep 30\nexec \"$@\"\n")
    start = time.monotonic()
    run, _ = run_real(tmp_path, script, timeout=1)
    elapsed = time.monotonic() - start
    assert run.timed_out and run.recorded is None
    assert failure_reason(run, 1) == "timed out after 1 s"
    assert run.tail == ["started"]
    # 1 s limit, up to GRACE for SIGTERM (ignored here), then SIGKILL.
    assert 1 <= elapsed < 1 + 2 * starthook.GRACE + 1, elapsed
    time.sleep(0.2)
    assert gone(int(pids.read_text()))
    assert run.returncode == -signal.SIGKILL


def test_sigterm_while_the_hook_runs_ends_the_hook(tmp_path: Path) -> None:
    """``docker stop`` during the hook: the start-up and the hook both end."""
    pids = tmp_path / "pids"
    hook = config(tmp_path, f"#!/bin/sh\nsleep 30 &\necho $! > {pids}\nwait\n")
    code = (
        "import io, sys\n"
        f"sys.path.insert(0, {str(LIB)!r})\n"
        "from pathlib import Path\n"
        "from nublado_lab.starthook import HookConfig, run_hook\n"
        f"conf = HookConfig(argv=[{hook.argv[0]!r}], timeout=60)\n"
        f"run_hook(conf, {{'PATH': '/usr/bin:/bin'}}, {str(tmp_path)!r}, "
        f"Path({str(tmp_path / 'r.json')!r}), sys.executable, io.BytesIO())\n")
    proc = subprocess.Popen([sys.executable, "-I", "-c", code])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (pids.exists() and pids.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 128 + signal.SIGTERM
    time.sleep(0.2)
    assert gone(int(pids.read_text()))


def test_run_background_output_is_still_copied(tmp_path: Path) -> None:
    """A process the hook leaves running keeps writing, to the log, unharmed."""
    log = tmp_path / "log"
    done = tmp_path / "done"
    script = (f"#!/bin/sh\n(sleep 3; echo late; touch {done}) &\nexec \"$@\"\n")
    with log.open("wb") as out:
        start = time.monotonic()
        run = run_hook(config(tmp_path, script), {"PATH": "/usr/bin:/bin"},
                       str(tmp_path), tmp_path / "r.json", sys.executable, out)
        elapsed = time.monotonic() - start
    assert failure_reason(run, 10) is None
    assert elapsed < 3, elapsed  # not waiting for the background process
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (done.exists() and log.read_bytes()):
        time.sleep(0.1)
    time.sleep(0.2)
    assert done.exists()  # no SIGPIPE killed it
    assert log.read_text() == "late\n"


# --- run_start_hook: what the server gets --------------------------------------------


def start_json(tmp: Path, script: str, timeout: int = 10) -> Path:
    conf = config(tmp, script, timeout)
    path = tmp / "start.json"
    path.write_text(json.dumps({"argv": conf.argv, "timeout": timeout, "payload": "p",
                                "script": "s.sh", "path_first": [str(tmp / "bin")],
                                "env": {"VIRTUAL_ENV": str(tmp)}}))
    return path


def test_start_hook_exports_go_to_a_private_file(tmp_path: Path) -> None:
    path = start_json(tmp_path, "#!/bin/sh\nexport GREETING=\"hi $VIRTUAL_ENV\"\n"
                      "export LD_BIND_NOW=1\nexport PATH=/hook/bin:$PATH\n"
                      "exec \"$@\"\n")
    (tmp_path / "t").mkdir()
    out = io.BytesIO()
    server = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
              "TMPDIR": str(tmp_path / "t")}
    added = run_start_hook(server, str(tmp_path), kept={}, payload_env_variable="K",
                           protected=("HOME",), python=sys.executable,
                           config_path=path, out=out)
    assert list(added) == ["NUBLADO_START_HOOK_DIR"]
    directory = Path(added["NUBLADO_START_HOOK_DIR"])
    assert directory.parent == tmp_path / "t"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == ["env.json", "env.sh"]
    exports = json.loads((directory / "env.json").read_text())
    assert exports == {"GREETING": f"hi {tmp_path}",
                       "PATH": f"/hook/bin:{tmp_path}/bin:/usr/bin:/bin"}
    for name in ("env.json", "env.sh"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert start_exports({"NUBLADO_START_HOOK_DIR": str(directory)}) == exports
    lines = out.getvalue().decode().splitlines()
    assert lines == [
        f"runlab: start hook: running {tmp_path}/start (s.sh of payload p), time "
        "limit 10 s",
        "runlab: start hook: not passed on: LD_BIND_NOW (changes how programs load "
        "their libraries)",
        lines[2]]
    assert lines[2].startswith("runlab: start hook: done in ")
    assert lines[2].endswith(" s; kernels and terminals get: GREETING, PATH")


def test_start_hook_failure_is_logged_and_flagged(tmp_path: Path) -> None:
    path = start_json(tmp_path, "#!/bin/sh\necho 'cannot mount data'\nexit 4\n")
    out = io.BytesIO()
    added = run_start_hook({"PATH": "/bin", "HOME": str(tmp_path)}, str(tmp_path),
                           kept={}, payload_env_variable="K", protected=(),
                           python=sys.executable, config_path=path, out=out)
    assert added == {"NUBLADO_START_HOOK_FAILED": "exit status 4"}
    assert out.getvalue().decode().splitlines()[-1] == (
        f"runlab: start hook: FAILED: {tmp_path}/start (s.sh of payload p): exit "
        "status 4; the lab starts without its exports; NUBLADO_START_HOOK_FAILED is "
        "set. Last output: cannot mount data")


def test_start_hook_timeout_flagged(tmp_path: Path) -> None:
    path = start_json(tmp_path, "#!/bin/sh\nsleep 30\nexec \"$@\"\n", timeout=1)
    added = run_start_hook({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                           str(tmp_path), kept={}, payload_env_variable="K",
                           protected=(), python=sys.executable, config_path=path,
                           out=io.BytesIO())
    assert added == {"NUBLADO_START_HOOK_FAILED": "timed out after 1 s"}


def test_no_hook_nothing_added(tmp_path: Path) -> None:
    out = io.BytesIO()
    assert run_start_hook({"PATH": "/bin"}, str(tmp_path), kept={},
                          payload_env_variable="K", protected=(),
                          python=sys.executable, config_path=tmp_path / "none.json",
                          out=out) == {}
    assert out.getvalue() == b""


def test_unreadable_settings_flagged(tmp_path: Path) -> None:
    path = tmp_path / "start.json"
    path.write_text("[]")
    out = io.BytesIO()
    added = run_start_hook({"PATH": "/bin"}, str(tmp_path), kept={},
                           payload_env_variable="K", protected=(),
                           python=sys.executable, config_path=path, out=out)
    assert added == {"NUBLADO_START_HOOK_FAILED": "its settings cannot be read"}
    assert out.getvalue().decode() == (f"runlab: start hook: error: {path}: must be a "
                                       "JSON object; the lab starts without it\n")


def test_start_exports_refilters_the_file(tmp_path: Path) -> None:
    (tmp_path / "env.json").write_text(json.dumps(
        {"A": "1", "LD_PRELOAD": "/x.so", "PYTHONPATH": "/p", "B": 2}))
    assert start_exports({"NUBLADO_START_HOOK_DIR": str(tmp_path)}) == {"A": "1"}
    assert start_exports({"NUBLADO_START_HOOK_DIR": "relative"}) == {}
    assert start_exports({}) == {}


# --- terminals: the profile hook sources env.sh ------------------------------


def test_profile_hook_sources_the_exports(tmp_path: Path) -> None:
    (tmp_path / "env.sh").write_text(shell_exports(
        {"GREETING": "hi 'there'", "PATH": "/hook/bin:/usr/bin:/bin"}))
    script = f". {PROFILE_HOOK}; printf '%s|%s' \"$GREETING\" \"$PATH\""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "RUNNING_INSIDE_JUPYTERLAB": "TRUE",
           "NUBLADO_START_HOOK_DIR": str(tmp_path)}
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert out == f"hi 'there'|{tmp_path}/.local/bin:/hook/bin:/usr/bin:/bin"
    outside = subprocess.run(["/bin/sh", "-c", script], capture_output=True,
                             text=True, check=True,
                             env={**env, "RUNNING_INSIDE_JUPYTERLAB": ""}).stdout
    assert outside == "|/usr/bin:/bin"
