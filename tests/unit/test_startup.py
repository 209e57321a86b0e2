"""The base's start-up (nublado_lab.startup) and kernel policy (kernelspecs).

The start-up is tested through its decision function: environment,
arguments and protocol files in, (argv, environment, directory) out; the
file readers against real files; ``main`` once, with ``os.execve`` caught.
The kernelspec manager runs against a temporary kernelspec directory with
this host's jupyter_client.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "base" / "static" / "usr" / "local" / "share" / "jupyterlab" / "lib"
sys.path.insert(0, str(LIB))

from nublado_lab import startup  # noqa: E402 - after sys.path set-up
from nublado_lab.startup import (  # noqa: E402 - after sys.path set-up
    Protocol,
    StartupError,
    decide,
    read_protocol,
)

VENV = "/usr/local/share/jupyterlab/venv"
PY = f"{VENV}/bin/python3"
NOW = datetime.datetime(2026, 11, 24, 18, 30, 5, tzinfo=datetime.UTC)
HOME = "/home/lab"

#: The argv the Nublado controller writes (tests/data/startup/output/args.json
#: in lsst-sqre/nublado), for a user "hambone".
NUBLADO_ARGS = [
    "jupyterhub-singleuser", "--ip=0.0.0.0", "--port=8888", "--no-browser",
    "--ContentsManager.allow_hidden=True", "--FileContentsManager.hide_globs=[]",
    "--KernelSpecManager.ensure_native_kernel=False", "--QtExporter.enabled=False",
    "--PDFExporter.enabled=False", "--WebPDFExporter.enabled=False",
    "--MappingKernelManager.default_kernel_name=lsst",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--notebook-dir=/home/hambone", "--log-level=INFO"]
NUBLADO_ENV = {
    "CPU_COUNT": "1", "CPU_LIMIT": "1", "HOME": "/home/hambone",
    "JUPYTER_PREFER_ENV_PATH": "no", "OMP_NUM_THREADS": "1",
    "RUNNING_INSIDE_JUPYTERLAB": "TRUE", "SCRATCH_DIR": "/scratch/hambone",
    "TMPDIR": "/scratch/hambone/tmp", "USER": "hambone"}


def all_dirs(_: str) -> bool:
    return True


def run(environ: dict[str, str], args: list[str] | None = None, *,
        protocol: Protocol | None = None, usable: Any = all_dirs,
        exists: Any = lambda _: False) -> startup.Launch:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": HOME, **environ}
    return decide(env, args or [], protocol=protocol, now=NOW, usable_dir=usable,
                  exists=exists)


# --- mode and argv ---------------------------------------------------------------


def test_plain_lab() -> None:
    launch = run({})
    assert launch.argv == [PY, "-I", "-m", "jupyterlab", "--ip=0.0.0.0",
                           "--port=8888", "--no-browser"]
    assert launch.mode == "jupyter lab"
    assert launch.cwd == HOME
    assert launch.env["RUNNING_INSIDE_JUPYTERLAB"] == "TRUE"
    assert launch.moves == [] and launch.warnings == []


def test_plain_lab_ip_port_and_extra_args() -> None:
    launch = run({"JUPYTERLAB_IP": "127.0.0.1", "JUPYTERLAB_PORT": "9999"},
                 ["--ServerApp.token=abc"])
    assert launch.argv == [PY, "-I", "-m", "jupyterlab", "--ip=127.0.0.1",
                           "--port=9999", "--no-browser", "--ServerApp.token=abc"]


def test_hub_token_starts_singleuser_where_the_hub_says() -> None:
    launch = run({"JUPYTERHUB_API_TOKEN": "t",
                  "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/u/"})
    assert launch.argv == [PY, "-I", "-m", "jupyterhub.singleuser"]
    assert launch.mode == "jupyterhub-singleuser"
    assert launch.env["JUPYTERHUB_API_TOKEN"] == "t"


def test_hub_token_without_service_url_listens_like_a_lab() -> None:
    launch = run({"JUPYTERHUB_API_TOKEN": "t"})
    assert launch.argv == [PY, "-I", "-m", "jupyterhub.singleuser", "--ip=0.0.0.0",
                           "--port=8888"]


def test_shim_is_singleuser_with_its_args_and_ignores_protocol() -> None:
    protocol = Protocol(Path("/etc/nublado/startup"), {"X": "1"}, ["jupyter-lab"])
    launch = run({"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/"},
                 [startup.ENTRY_SINGLEUSER, "--debug"], protocol=protocol)
    assert launch.argv == [PY, "-I", "-m", "jupyterhub.singleuser", "--debug"]
    assert launch.mode == "jupyterhub-singleuser (shim)"
    assert "X" not in launch.env


@pytest.mark.parametrize("value", ["1", "TRUE", "true", "yes", "on"])
def test_debug_sets_debug_log_level(value: str) -> None:
    assert run({"DEBUG": value}).argv[-1] == "--log-level=DEBUG"


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off"])
def test_debug_off_values(value: str) -> None:
    assert "--log-level=DEBUG" not in run({"DEBUG": value}).argv


def test_default_kernel_added_once() -> None:
    launch = run({"NUBLADO_DEFAULT_KERNEL": "lsst"})
    assert launch.argv[-1] == "--MappingKernelManager.default_kernel_name=lsst"


@pytest.mark.parametrize("given", [
    "--MappingKernelManager.default_kernel_name=other",
    "--MultiKernelManager.default_kernel_name=other",
    "--AsyncMappingKernelManager.default_kernel_name"])
def test_default_kernel_given_in_argv_wins(given: str) -> None:
    launch = run({"NUBLADO_DEFAULT_KERNEL": "lsst"}, [given, "other"])
    assert not any(a.endswith("=lsst") for a in launch.argv)


# --- the Nublado protocol ------------------------------------------------------


def test_protocol_merges_env_and_runs_the_lab_venv_server() -> None:
    protocol = Protocol(Path("/etc/nublado/startup"), dict(NUBLADO_ENV),
                        list(NUBLADO_ARGS))
    launch = run({"HOME": "/", "NUBLADO_DEFAULT_KERNEL": "lsst", "DEBUG": "TRUE",
                  "RESET_USER_ENV": "TRUE", "CPU_LIMIT": "4"},
                 protocol=protocol, exists=lambda _: True)
    assert launch.argv == [PY, "-I", "-m", "jupyterhub.singleuser",
                           *NUBLADO_ARGS[1:]]
    assert launch.mode == "nublado protocol (/etc/nublado/startup)"
    for key, value in NUBLADO_ENV.items():
        assert launch.env[key] == value
    # The init container did the old controller's work: not again here.
    assert launch.env["CPU_LIMIT"] == "1" and launch.env["OMP_NUM_THREADS"] == "1"
    assert "MKL_NUM_THREADS" not in launch.env
    assert launch.moves == []
    assert launch.cwd == "/home/hambone"


def test_protocol_extra_args_and_default_kernel() -> None:
    protocol = Protocol(Path("/lab_startup"), {}, ["jupyterhub-singleuser"])
    launch = run({"NUBLADO_DEFAULT_KERNEL": "lsst"}, ["--x=1"], protocol=protocol)
    assert launch.argv == [PY, "-I", "-m", "jupyterhub.singleuser", "--x=1",
                           "--MappingKernelManager.default_kernel_name=lsst"]


@pytest.mark.parametrize(("command", "module"), [
    ("jupyterhub-singleuser", "jupyterhub.singleuser"),
    (f"{VENV}/bin/jupyterhub-singleuser", "jupyterhub.singleuser"),
    ("jupyter-lab", "jupyterlab"),
    ("jupyter-server", "jupyter_server")])
def test_protocol_server_commands(command: str, module: str) -> None:
    protocol = Protocol(Path("/etc/nublado/startup"), {}, [command, "--a"])
    assert run({}, protocol=protocol).argv == [PY, "-I", "-m", module, "--a"]


@pytest.mark.parametrize("command", ["/usr/local/bin/jupyterhub-singleuser",
                                     "bash", "/opt/payload/venv/bin/jupyter-lab",
                                     "python3"])
def test_protocol_refuses_other_commands(command: str) -> None:
    protocol = Protocol(Path("/etc/nublado/startup"), {}, [command])
    with pytest.raises(StartupError, match=f"the server command '{command}' is not"):
        run({}, protocol=protocol)


# --- old controller variables --------------------------------------------------


@pytest.mark.parametrize(("limit", "count"), [("4", "4"), ("2.5", "2"),
                                              ("0.5", "1"), ("lots", "1")])
def test_cpu_limit_sets_thread_variables(limit: str, count: str) -> None:
    env = run({"CPU_LIMIT": limit, "OMP_NUM_THREADS": "7"}).env
    for name in ("CPU_LIMIT", "CPU_COUNT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS",
                 "GOTO_NUM_THREADS", "MKL_DOMAIN_NUM_THREADS", "MPI_NUM_THREADS",
                 "RAYON_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        assert env[name] == count, name


def test_no_cpu_limit_no_thread_variables() -> None:
    assert "OMP_NUM_THREADS" not in run({}).env


def test_reset_user_env_moves_into_a_dated_directory() -> None:
    present = {f"{HOME}/.local", f"{HOME}/.jupyter", f"{HOME}/.cache",
               f"{HOME}/.config", f"{HOME}/notebooks/.user_setups"}
    launch = run({"RESET_USER_ENV": "TRUE"}, exists=present.__contains__)
    target = f"{HOME}/.user_env.20261124183005"
    assert launch.moves == [
        (f"{HOME}/.cache", f"{target}/cache"),
        (f"{HOME}/.config", f"{target}/config"),
        (f"{HOME}/.jupyter", f"{target}/jupyter"),
        (f"{HOME}/.local", f"{target}/local"),
        (f"{HOME}/notebooks/.user_setups", f"{target}/notebooks/user_setups")]


def test_reset_user_env_off() -> None:
    assert run({"RESET_USER_ENV": ""}, exists=lambda _: True).moves == []


def test_jupyterlab_config_dir_is_not_a_config_path() -> None:
    env = run({"JUPYTERLAB_CONFIG_DIR": "/opt/lsst/software/jupyterlab"}).env
    assert "JUPYTER_CONFIG_PATH" not in env
    assert env["JUPYTERLAB_CONFIG_DIR"] == "/opt/lsst/software/jupyterlab"


def test_jupyterhub_variables_pass_through() -> None:
    env = run({"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_USER": "u",
               "JUPYTERHUB_SERVICE_PREFIX": "/user/u/"}).env
    assert (env["JUPYTERHUB_USER"], env["JUPYTERHUB_SERVICE_PREFIX"]) == \
        ("u", "/user/u/")


# --- HOME, TMPDIR, start directory ---------------------------------------------


@pytest.mark.parametrize("home", [None, "", "/", "//"])
def test_home_unset_or_root_falls_back_to_tmp(home: str | None) -> None:
    environ = {"PATH": "/bin"} if home is None else {"PATH": "/bin", "HOME": home}
    launch = decide(environ, [], protocol=None, now=NOW, usable_dir=all_dirs)
    assert launch.env["HOME"] == "/tmp"
    assert launch.cwd == "/tmp"
    assert launch.warnings == []


def test_unwritable_home_falls_back_with_a_warning() -> None:
    launch = run({"HOME": "/home/other"}, usable=lambda d: d != "/home/other")
    assert launch.env["HOME"] == "/tmp"
    assert launch.warnings == ["HOME /home/other is not a writable directory; "
                               "using /tmp"]


def test_home_fallback_to_tmpdir_when_tmp_is_not_writable() -> None:
    launch = run({"HOME": "/", "TMPDIR": "/scratch/t"},
                 usable=lambda d: d == "/scratch/t")
    assert launch.env["HOME"] == "/scratch/t"


def test_tmpdir_honoured() -> None:
    made: list[str] = []

    def usable(path: str) -> bool:
        made.append(path)
        return True

    launch = run({"TMPDIR": "/scratch/u/tmp"}, usable=usable)
    assert launch.env["TMPDIR"] == "/scratch/u/tmp"
    assert made == [HOME, "/scratch/u/tmp"]


def test_unusable_tmpdir_is_unset() -> None:
    launch = run({"TMPDIR": "/nope"}, usable=lambda d: d != "/nope")
    assert "TMPDIR" not in launch.env
    assert launch.warnings == ["TMPDIR /nope is not a writable directory; unset"]


@pytest.mark.parametrize("args", [["--notebook-dir=/data"], ["--notebook-dir", "/data"],
                                  ["--ServerApp.root_dir=/data"],
                                  ["--ServerApp.notebook_dir=/x",
                                   "--notebook-dir=/data"]])
def test_start_directory_from_argv(args: list[str]) -> None:
    assert run({}, args).cwd == "/data"


@pytest.mark.parametrize(("root", "cwd"), [("/data", "/data"), ("~", HOME),
                                           ("~/work", f"{HOME}/work"), ("", HOME)])
def test_start_directory_from_the_hubs_root_dir(root: str, cwd: str) -> None:
    launch = run({"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_ROOT_DIR": root})
    assert launch.cwd == cwd


def test_hub_root_dir_ignored_by_a_plain_lab_and_after_argv() -> None:
    assert run({"JUPYTERHUB_ROOT_DIR": "/data"}).cwd == HOME
    assert run({"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_ROOT_DIR": "/data"},
               ["--notebook-dir=/nb"]).cwd == "/nb"


# --- the server's environment --------------------------------------------------


def test_payload_variables_kept_from_the_server() -> None:
    payload = {"PYTHONPATH": "/opt/p/lib", "PYTHONSTARTUP": "/opt/p/rc.py",
               "PYTHONHOME": "/opt/p", "BASH_ENV": "/opt/p/env.sh",
               "LD_PRELOAD": "/opt/p/libx.so", "LD_LIBRARY_PATH": "/opt/p/lib",
               "ENV": "/opt/p/env.sh", "PYTHONNOUSERSITE": "1"}
    launch = run({**payload, "MY_VAR": "kept"})
    for name in payload:
        assert name not in launch.env, name
    assert json.loads(launch.env["NUBLADO_PAYLOAD_ENV"]) == payload
    assert launch.env["MY_VAR"] == "kept"


def test_no_payload_env_when_nothing_is_kept() -> None:
    assert "NUBLADO_PAYLOAD_ENV" not in run({"NUBLADO_PAYLOAD_ENV": "{}"}).env


def test_lab_venv_never_on_path() -> None:
    launch = run({"PATH": f"{VENV}/bin:/opt/p/bin:{VENV}/bin/:/usr/bin"})
    assert launch.env["PATH"] == "/opt/p/bin:/usr/bin"


def test_empty_path_gets_the_default() -> None:
    assert run({"PATH": ""}).env["PATH"] == startup.DEFAULT_PATH


def test_protocol_env_is_split_too() -> None:
    protocol = Protocol(Path("/etc/nublado/startup"),
                        {"LD_LIBRARY_PATH": "/x", "A": "b"}, ["jupyterhub-singleuser"])
    env = run({}, protocol=protocol).env
    assert json.loads(env["NUBLADO_PAYLOAD_ENV"]) == {"LD_LIBRARY_PATH": "/x"}
    assert env["A"] == "b"


def test_terminal_command() -> None:
    assert startup.terminal_command({}) == ["/bin/bash", "-l"]
    env = {"NUBLADO_PAYLOAD_ENV": json.dumps({"LD_X": "a=b c", "PYTHONPATH": "/p"})}
    assert startup.terminal_command(env) == ["/usr/bin/env", "LD_X=a=b c",
                                             "PYTHONPATH=/p", "/bin/bash", "-l"]


@pytest.mark.parametrize("raw", ["not json", "[1]", '{"a": 1}'])
def test_kept_environment_ignores_garbage(raw: str) -> None:
    assert startup.kept_environment({"NUBLADO_PAYLOAD_ENV": raw}) == {}


# --- protocol files ------------------------------------------------------------


def write(directory: Path, env: Any = None, args: Any = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if env is not None:
        (directory / "env.json").write_text(env if isinstance(env, str)
                                            else json.dumps(env))
    if args is not None:
        (directory / "args.json").write_text(args if isinstance(args, str)
                                             else json.dumps(args))
    return directory


def test_read_protocol_none(tmp_path: Path) -> None:
    assert read_protocol([tmp_path / "a", tmp_path / "b"]) is None


def test_read_protocol_first_directory_wins(tmp_path: Path) -> None:
    new = write(tmp_path / "new", NUBLADO_ENV, NUBLADO_ARGS)
    write(tmp_path / "old", {"X": "1"}, ["jupyter-lab"])
    protocol = read_protocol([new, tmp_path / "old"])
    assert protocol == Protocol(new, NUBLADO_ENV, NUBLADO_ARGS)


def test_read_protocol_old_directory(tmp_path: Path) -> None:
    old = write(tmp_path / "old", {"X": "1"}, ["jupyterhub-singleuser"])
    protocol = read_protocol([tmp_path / "new", old])
    assert protocol == Protocol(old, {"X": "1"}, ["jupyterhub-singleuser"])


@pytest.mark.parametrize(("env", "args", "file", "message"), [
    (None, ["a"], "env.json", "missing (the other start-up file is there; the "
     "controller writes both)"),
    ({}, None, "args.json", "missing (the other start-up file is there; the "
     "controller writes both)"),
    ("{", ["a"], "env.json", "not valid JSON (Expecting property name enclosed in "
     "double quotes at line 1, column 2)"),
    ({}, "", "args.json", "not valid JSON (Expecting value at line 1, column 1)"),
    ([], ["a"], "env.json", "must be a JSON object of variable names to strings, "
     "not an empty list"),
    ({"A": 1}, ["a"], "env.json", "the value of A must be a string, not a number"),
    ({"A": None}, ["a"], "env.json", "the value of A must be a string, not null"),
    ({"A=B": "x"}, ["a"], "env.json", "'A=B' is not a valid variable name"),
    ({"": "x"}, ["a"], "env.json", "'' is not a valid variable name"),
    ({}, [], "args.json", "must be a non-empty JSON list of strings (the server "
     "command), not an empty list"),
    ({}, {"a": "b"}, "args.json", "must be a non-empty JSON list of strings (the "
     "server command), not an object"),
    ({}, "\"jupyterhub-singleuser\"", "args.json", "must be a non-empty JSON list of "
     "strings (the server command), not a string"),
    ({}, ["a", 2], "args.json", "item 1 must be a string, not a number"),
    ({}, ["a", ["b"]], "args.json", "item 1 must be a string, not a list"),
    ({}, [""], "args.json", "item 0 (the command) is empty"),
])
def test_malformed_files_one_line_naming_the_file(
        tmp_path: Path, env: Any, args: Any, file: str, message: str) -> None:
    directory = write(tmp_path / "s", env, args)
    with pytest.raises(StartupError) as info:
        read_protocol([directory])
    assert str(info.value) == f"{directory / file}: {message}"
    assert "\n" not in str(info.value)


def test_unsearchable_directory_counts_as_present(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A startup directory we may not search: reading it names the file."""
    directory = tmp_path / "s"
    real_lstat = os.lstat

    def lstat(path: Any) -> Any:
        if str(path).startswith(str(directory)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_lstat(path)

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(StartupError) as info:
        read_protocol([directory])
    assert str(info.value).startswith(f"{directory}/env.json: ")


def test_file_under_a_file_is_absent(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    assert read_protocol([tmp_path / "f"]) is None


def test_unreadable_file(tmp_path: Path) -> None:
    directory = write(tmp_path / "s", {}, ["a"])
    (directory / "env.json").unlink()
    (directory / "env.json").mkdir()  # reading a directory: an OSError, even as root
    with pytest.raises(StartupError) as info:
        read_protocol([directory])
    assert str(info.value) == f"{directory}/env.json: cannot be read (Is a directory)"


def test_not_utf8(tmp_path: Path) -> None:
    directory = write(tmp_path / "s", {}, ["a"])
    (directory / "env.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(StartupError, match=r"env.json: cannot be read \("):
        read_protocol([directory])


# --- main, end to end in a subprocess -------------------------------------------


def _main_in_subprocess(tmp_path: Path, startup_dir: Path, env: dict[str, str],
                        args: list[str], hook: Path | None = None
                        ) -> subprocess.CompletedProcess[str]:
    """Run main() with os.execve replaced by a print of what it would exec.

    The start hook's settings are read from ``hook`` (default: none there),
    its recorder is this interpreter.
    """
    code = (
        "import json, os, sys\n"
        f"sys.path.insert(0, {str(LIB)!r})\n"
        "from pathlib import Path\n"
        "from nublado_lab import startup\n"
        "startup.starthook.CONFIG_PATH = "
        f"Path({str(hook or tmp_path / 'no-start.json')!r})\n"
        f"startup.VENV = Path({str(Path(sys.executable).parent.parent)!r})\n"
        f"startup.STARTUP_DIRS = (Path({str(startup_dir)!r}),)\n"
        "startup.read_protocol.__defaults__ = (startup.STARTUP_DIRS,)\n"
        "def fake(path, argv, env):\n"
        "    print(json.dumps({'argv': argv, 'cwd': os.getcwd(),\n"
        "                      'env': {k: env[k] for k in sorted(env)}}))\n"
        "    sys.exit(0)\n"
        "os.execve = fake\n"
        "startup.main(sys.argv[1:])\n")
    return subprocess.run([sys.executable, "-I", "-c", code, *args], env=env,
                          capture_output=True, text=True, cwd=tmp_path, check=False)


def test_main_execs_the_plan(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".local").mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "RESET_USER_ENV": "1",
           "TMPDIR": str(tmp_path / "t" / "mp")}
    proc = _main_in_subprocess(tmp_path, tmp_path / "none", env, ["--x"])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["argv"] == [PY, "-I", "-m", "jupyterlab", "--ip=0.0.0.0",
                           "--port=8888", "--no-browser", "--x"]
    assert out["cwd"] == str(home)
    assert (tmp_path / "t" / "mp").is_dir()
    moved = list(home.glob(".user_env.*/local"))
    assert len(moved) == 1 and not (home / ".local").exists()
    assert proc.stderr.splitlines()[-1] == f"runlab: starting jupyter lab in {home}"


def test_main_malformed_file_exits_2_with_one_line(tmp_path: Path) -> None:
    startup_dir = write(tmp_path / "s", {"A": 1}, ["jupyterhub-singleuser"])
    proc = _main_in_subprocess(tmp_path, startup_dir, {"PATH": "/bin"}, [])
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (f"runlab: error: {startup_dir}/env.json: the value of A "
                           "must be a string, not a number\n")


def test_main_missing_notebook_dir_starts_in_home(tmp_path: Path) -> None:
    startup_dir = write(tmp_path / "s", {"HOME": str(tmp_path)},
                        ["jupyterhub-singleuser", "--notebook-dir=/does/not/exist"])
    proc = _main_in_subprocess(tmp_path, startup_dir, {"PATH": "/bin"}, [])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cwd"] == str(tmp_path)
    assert "runlab: warning: cannot start in /does/not/exist (No such file or " \
        "directory); starting in" in proc.stderr


def test_decide_drops_start_hook_variables_from_outside() -> None:
    env = run({"NUBLADO_START_HOOK_DIR": "/tmp/x",
               "NUBLADO_START_HOOK_FAILED": "fake"}).env
    assert "NUBLADO_START_HOOK_DIR" not in env
    assert "NUBLADO_START_HOOK_FAILED" not in env


def _hook(tmp_path: Path, script: str, timeout: int = 10) -> Path:
    (tmp_path / "start").write_text(script)
    (tmp_path / "start").chmod(0o755)
    (tmp_path / "start.json").write_text(json.dumps(
        {"argv": [str(tmp_path / "start")], "timeout": timeout, "payload": "p",
         "script": "start.sh", "path_first": [], "env": {}}))
    return tmp_path / "start.json"


def test_main_runs_the_start_hook_before_the_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    hook = _hook(tmp_path, "#!/bin/sh\necho \"hook in $(pwd) as $(id -u)\"\n"
                 "export GREETING='hi there'\nexport LD_BIND_NOW=1\nexec \"$@\"\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LD_LIBRARY_PATH": "/kept",
           "TMPDIR": str(tmp_path)}
    proc = _main_in_subprocess(tmp_path, tmp_path / "none", env, [], hook)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    server = out["env"]
    # The exports reach kernels and terminals through the file only.
    assert "GREETING" not in server and "LD_BIND_NOW" not in server
    assert "NUBLADO_START_HOOK_FAILED" not in server
    directory = Path(server["NUBLADO_START_HOOK_DIR"])
    assert directory.parent == tmp_path
    assert json.loads((directory / "env.json").read_text()) == {"GREETING": "hi there"}
    assert (directory / "env.sh").read_text().splitlines()[-1] == \
        "export GREETING='hi there'"
    # The hook saw the kept variables (as kernels do); the server does not.
    assert json.loads(server["NUBLADO_PAYLOAD_ENV"]) == {"LD_LIBRARY_PATH": "/kept"}
    lines = proc.stderr.splitlines()
    assert lines[0] == (f"runlab: start hook: running {tmp_path}/start (start.sh of "
                        "payload p), time limit 10 s")
    assert lines[1] == f"hook in {home} as {os.getuid()}"
    assert lines[2] == ("runlab: start hook: not passed on: LD_BIND_NOW (changes how "
                        "programs load their libraries)")
    assert lines[3].startswith("runlab: start hook: done in ")
    assert lines[4] == f"runlab: starting jupyter lab in {home}"


def test_main_failing_hook_still_starts_the_server(tmp_path: Path) -> None:
    hook = _hook(tmp_path, "#!/bin/sh\necho broken\nexit 5\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = _main_in_subprocess(tmp_path, tmp_path / "none", env, [], hook)
    assert proc.returncode == 0, proc.stderr
    server = json.loads(proc.stdout)["env"]
    assert server["NUBLADO_START_HOOK_FAILED"] == "exit status 5"
    assert "NUBLADO_START_HOOK_DIR" not in server
    assert proc.stderr.splitlines()[-2:] == [
        f"runlab: start hook: FAILED: {tmp_path}/start (start.sh of payload p): exit "
        "status 5; the lab starts without its exports; NUBLADO_START_HOOK_FAILED is "
        "set. Last output: broken",
        f"runlab: starting jupyter lab in {tmp_path}"]


# --- the kernelspec manager ------------------------------------------------------


@pytest.fixture
def kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with payload kernels; a fake lab prefix with a native spec."""
    data = tmp_path / "data"
    lab = tmp_path / "labvenv"
    payload_bin = tmp_path / "payload" / "bin"
    payload_bin.mkdir(parents=True)
    (payload_bin / "python3").write_text("#!/bin/sh\n")
    (payload_bin / "python3").chmod(0o755)

    def spec(where: Path, name: str, argv: list[str], env: dict[str, str] | None
             = None) -> None:
        d = where / "kernels" / name
        d.mkdir(parents=True)
        (d / "kernel.json").write_text(json.dumps(
            {"argv": argv, "display_name": name, "language": "python",
             "env": env or {}}))

    spec(data, "lsst", ["/opt/lsst/launch", "{connection_file}"], {"K": "v"})
    spec(data, "other", [str(tmp_path / "payload" / "bin" / "python3"), "-m",
                         "ipykernel_launcher", "-f", "{connection_file}"])
    spec(data, "barepy", ["python3", "-m", "ipykernel_launcher", "-f",
                          "{connection_file}"])
    spec(data, "labby", [str(lab / "bin" / "python3"), "-m", "ipykernel_launcher"])
    spec(lab / "share" / "jupyter", "native", ["python", "-m", "ipykernel_launcher"])
    monkeypatch.setenv("JUPYTER_PATH", f"{data}:{lab / 'share' / 'jupyter'}")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "userdata"))
    monkeypatch.setenv("PATH", f"{payload_bin}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.delenv("NUBLADO_DEFAULT_KERNEL", raising=False)
    monkeypatch.delenv("NUBLADO_PAYLOAD_ENV", raising=False)
    monkeypatch.delenv("NUBLADO_START_HOOK_DIR", raising=False)
    return tmp_path


def manager(tmp: Path, **kwargs: Any) -> Any:
    from nublado_lab.kernelspecs import NubladoKernelSpecManager

    return NubladoKernelSpecManager(lab_prefix=str(tmp / "labvenv"), **kwargs)


def test_kernelspecs_payload_only(kernels: Path) -> None:
    assert sorted(manager(kernels).find_kernel_specs()) == ["barepy", "lsst", "other"]


def test_kernelspecs_bare_python_resolved_on_path(kernels: Path) -> None:
    spec = manager(kernels).get_kernel_spec("barepy")
    assert spec.argv[0] == str(kernels / "payload" / "bin" / "python3")


def test_kernelspecs_bare_python_missing_is_hidden(
        kernels: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_client.kernelspec import NoSuchKernel

    monkeypatch.setenv("PATH", "/nonexistent")
    ksm = manager(kernels, default_kernel="lsst")
    assert "barepy" not in ksm.find_kernel_specs()
    assert ksm.get_kernel_spec("barepy").argv[0] == "/opt/lsst/launch"
    monkeypatch.setenv("PATH", f"{kernels}/labvenv/bin")
    (kernels / "labvenv" / "bin").mkdir()
    (kernels / "labvenv" / "bin" / "python3").write_text("")
    (kernels / "labvenv" / "bin" / "python3").chmod(0o755)
    with pytest.raises(NoSuchKernel):
        manager(kernels).get_kernel_spec("barepy")


@pytest.mark.parametrize("name", ["python3", "python", "Python3", "labby", "native"])
def test_kernelspecs_aliases_run_the_default_kernel(
        kernels: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("NUBLADO_DEFAULT_KERNEL", "lsst")
    spec = manager(kernels).get_kernel_spec(name)
    assert spec.argv == ["/opt/lsst/launch", "{connection_file}"]


def test_kernelspecs_native_python3_never_runs(kernels: Path) -> None:
    """Without a default and with several kernels, python3 is no kernel at all."""
    from jupyter_client.kernelspec import NoSuchKernel

    ksm = manager(kernels)
    with pytest.raises(NoSuchKernel):
        ksm.get_kernel_spec("python3")
    with pytest.raises(NoSuchKernel):
        ksm.get_kernel_spec("nosuch")


def test_kernelspecs_native_resources_hidden(
        kernels: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ipykernel's own resources (the native kernel) are inside the lab prefix.

    jupyter_client falls back to them for the name python3 even with
    ensure_native_kernel off; a stand-in ipykernel (the dev venv has none)
    shows the manager refuses them and runs the default kernel instead.
    """
    import types

    from jupyter_client.kernelspec import NoSuchKernel

    resources = kernels / "labvenv" / "lib" / "ipykernel" / "resources"
    resources.mkdir(parents=True)
    fake = types.ModuleType("ipykernel.kernelspec")
    fake.RESOURCES = str(resources)  # type: ignore[attr-defined]
    fake.get_kernel_dict = lambda: {  # type: ignore[attr-defined]
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "ipykernel.kernelspec", fake)
    from jupyter_client.kernelspec import KernelSpecManager

    plain = KernelSpecManager(ensure_native_kernel=False)
    assert plain.get_kernel_spec("python3").argv[0] == sys.executable  # the bug
    ksm = manager(kernels)
    assert "python3" not in ksm.find_kernel_specs()
    with pytest.raises(NoSuchKernel):
        ksm.get_kernel_spec("python3")
    monkeypatch.setenv("NUBLADO_DEFAULT_KERNEL", "lsst")
    assert manager(kernels).get_kernel_spec("python3").argv[0] == "/opt/lsst/launch"


def test_kernelspecs_payload_python3_wins(kernels: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d = kernels / "data" / "kernels" / "python3"
    d.mkdir()
    (d / "kernel.json").write_text(json.dumps(
        {"argv": ["/opt/payload/venv/bin/python", "-m", "ipykernel_launcher"],
         "display_name": "Payload Python 3", "language": "python"}))
    monkeypatch.setenv("NUBLADO_DEFAULT_KERNEL", "lsst")
    ksm = manager(kernels)
    assert "python3" in ksm.find_kernel_specs()
    assert ksm.get_kernel_spec("python3").argv[0] == "/opt/payload/venv/bin/python"


def test_kernelspecs_alias_target_order(kernels: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from traitlets.config import Configurable

    class Parent(Configurable):
        class kernel_manager:  # noqa: N801 - mimics the traitlets attribute name
            default_kernel_name = "other"

    monkeypatch.setenv("NUBLADO_DEFAULT_KERNEL", "lsst")
    assert manager(kernels, default_kernel="barepy").alias_target() == "barepy"
    assert manager(kernels, parent=Parent()).alias_target() == "other"
    assert manager(kernels).alias_target() == "lsst"
    monkeypatch.delenv("NUBLADO_DEFAULT_KERNEL")
    assert manager(kernels).alias_target() is None
    for name in ("other", "barepy"):
        (kernels / "data" / "kernels" / name / "kernel.json").unlink()
    assert manager(kernels).alias_target() == "lsst"  # the only one left


def test_kernelspecs_environment(kernels: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUBLADO_PAYLOAD_ENV", json.dumps(
        {"LD_LIBRARY_PATH": "/opt/p/lib", "PYTHONPATH": "/opt/$x", "K": "server"}))
    spec = manager(kernels).get_kernel_spec("lsst")
    assert spec.env == {"K": "v", "LD_LIBRARY_PATH": "/opt/p/lib",
                        "PYTHONPATH": "/opt/$$x", "PATH": "/home/u/.local/bin:${PATH}"}
    other = manager(kernels).get_kernel_spec("other")
    assert other.env["PATH"] == f"/home/u/.local/bin:{kernels}/payload/bin:${{PATH}}"
    # Listing shows the specs as written.
    listed = manager(kernels).get_all_specs()["lsst"]["spec"]
    assert listed["env"] == {"K": "v"}


def test_kernelspecs_environment_substitution(kernels: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What jupyter_client's provisioner makes of the env: literal values."""
    from string import Template

    monkeypatch.setenv("NUBLADO_PAYLOAD_ENV", json.dumps({"PYTHONPATH": "/opt/$x"}))
    spec = manager(kernels).get_kernel_spec("lsst")
    values = {"PATH": "/usr/bin", "x": "NO"}
    got = {k: Template(v).safe_substitute(values) for k, v in spec.env.items()}
    assert got["PYTHONPATH"] == "/opt/$x"
    assert got["PATH"] == "/home/u/.local/bin:/usr/bin"


def _hook_exports(tmp: Path, monkeypatch: pytest.MonkeyPatch,
                  exports: dict[str, str]) -> None:
    directory = tmp / "hookdir"
    directory.mkdir()
    (directory / "env.json").write_text(json.dumps(exports))
    monkeypatch.setenv("NUBLADO_START_HOOK_DIR", str(directory))


def test_kernelspecs_add_the_start_hook_exports(
        kernels: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hook_exports(kernels, monkeypatch, {"GREETING": "hi $USER", "K": "hook",
                                         "LD_PRELOAD": "/x.so",
                                         "PATH": "/hook/bin:/usr/bin"})
    spec = manager(kernels).get_kernel_spec("lsst")
    # The spec's own K wins; LD_PRELOAD never passes; the hook's PATH stands
    # where the server's would.
    assert spec.env == {"K": "v", "GREETING": "hi $$USER",
                        "PATH": "/home/u/.local/bin:/hook/bin:/usr/bin"}
    other = manager(kernels).get_kernel_spec("other")
    assert other.env["PATH"] == f"/home/u/.local/bin:{kernels}/payload/bin:" \
        "/hook/bin:/usr/bin"
    # The server's own environment is untouched.
    assert "GREETING" not in os.environ


def test_kernelspecs_hook_path_in_a_spec_path(kernels: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    d = kernels / "data" / "kernels" / "wrapped"
    d.mkdir()
    (d / "kernel.json").write_text(json.dumps(
        {"argv": ["/usr/local/share/jupyterlab/kernels/wrapped/launch",
                  "{connection_file}"], "display_name": "Wrapped",
         "language": "python",
         "env": {"PATH": "/opt/payload/venv/bin:${HOME}/.local/bin:${PATH}"}}))
    _hook_exports(kernels, monkeypatch, {"PATH": "/hook/bin:/usr/bin"})
    assert manager(kernels).get_kernel_spec("wrapped").env["PATH"] == \
        "/opt/payload/venv/bin:${HOME}/.local/bin:/hook/bin:/usr/bin"


@pytest.mark.parametrize(("kept", "command"), [
    (None, ["/bin/bash", "-l"]),
    ({"LD_LIBRARY_PATH": "/opt/p/lib"},
     ["/usr/bin/env", "LD_LIBRARY_PATH=/opt/p/lib", "/bin/bash", "-l"])])
def test_server_config_uses_the_manager(monkeypatch: pytest.MonkeyPatch,
                                        kept: dict[str, str] | None,
                                        command: list[str]) -> None:
    from traitlets.config import Config

    if kept is None:
        monkeypatch.delenv("NUBLADO_PAYLOAD_ENV", raising=False)
    else:
        monkeypatch.setenv("NUBLADO_PAYLOAD_ENV", json.dumps(kept))
    config_file = REPO / "base/static/usr/local/etc/jupyter/jupyter_server_config.py"
    c = Config()
    namespace = {"get_config": lambda: c}
    exec(compile(config_file.read_text(), str(config_file), "exec"), namespace)
    assert c.ServerApp.kernel_spec_manager_class == \
        "nublado_lab.kernelspecs.NubladoKernelSpecManager"
    assert c.ServerApp.terminado_settings == {"shell_command": command}


def test_kernelspecs_payload_bin_from_nublado_metadata(kernels: Path) -> None:
    d = kernels / "data" / "kernels" / "wrapped"
    d.mkdir()
    (d / "kernel.json").write_text(json.dumps(
        {"argv": ["/usr/local/share/jupyterlab/kernels/wrapped/launch",
                  "{connection_file}"],
         "display_name": "Wrapped", "language": "python",
         "metadata": {"nublado": {"python": "/opt/payload/venv/bin/python"}}}))
    spec = manager(kernels).get_kernel_spec("wrapped")
    assert spec.env["PATH"] == "/home/u/.local/bin:/opt/payload/venv/bin:${PATH}"


def test_kernelspecs_keep_a_path_the_spec_sets(kernels: Path) -> None:
    """nublado-build writes each kernel's PATH; the manager adds nothing."""
    d = kernels / "data" / "kernels" / "wrapped"
    d.mkdir()
    path = "/opt/payload/venv/bin:${HOME}/.local/bin:${PATH}"
    (d / "kernel.json").write_text(json.dumps(
        {"argv": ["/usr/local/share/jupyterlab/kernels/wrapped/launch",
                  "{connection_file}"],
         "display_name": "Wrapped", "language": "python", "env": {"PATH": path},
         "metadata": {"nublado": {"python": "/opt/payload/venv/bin/python"}}}))
    assert manager(kernels).get_kernel_spec("wrapped").env["PATH"] == path


@pytest.mark.parametrize("metadata", [{}, {"nublado": "x"}, {"nublado": {"python": 3}},
                                      {"nublado": {"python": "python3"}}])
def test_kernelspecs_no_payload_bin_without_a_known_python(
        kernels: Path, metadata: dict[str, Any]) -> None:
    d = kernels / "data" / "kernels" / "wrapped"
    d.mkdir()
    (d / "kernel.json").write_text(json.dumps(
        {"argv": ["/opt/w/launch", "{connection_file}"], "display_name": "W",
         "language": "python", "metadata": metadata}))
    assert manager(kernels).get_kernel_spec("wrapped").env["PATH"] == \
        "/home/u/.local/bin:${PATH}"


def test_kernelspecs_no_payload_bin_inside_the_lab(kernels: Path) -> None:
    d = kernels / "data" / "kernels" / "wrapped"
    d.mkdir()
    (d / "kernel.json").write_text(json.dumps(
        {"argv": ["/opt/w/launch", "{connection_file}"], "display_name": "W",
         "language": "python",
         "metadata": {"nublado": {"python": f"{kernels}/labvenv/bin/python3"}}}))
    assert manager(kernels).get_kernel_spec("wrapped").env["PATH"] == \
        "/home/u/.local/bin:${PATH}"
