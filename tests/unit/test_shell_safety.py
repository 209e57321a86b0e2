"""Shell safety of the generated files: values stay literal, never run.

Kernel names, display names, env values, descriptions and setup lines with
quotes, ``$``, backticks and newlines either reach the image literally or
are refused by the schema. The rendered wrapper and terminal setup are run
with bash in a sandbox, with a fake payload python that prints what it got.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from nubladobuild.errors import PayloadInvalid
from nubladobuild.kernels import kernel_files
from nubladobuild.kinds import Environment
from nubladobuild.loader import load_payload
from nubladobuild.schema import Kernel, Payload
from tests.unit.helpers import files_of, plan_of

#: Values that do something if a shell ever evaluates them.
NASTY = [
    "it's",
    'say "hi"',
    "$(touch PWNED-subst)",
    "`touch PWNED-backtick`",
    "${HOME}",
    "a;touch PWNED-semicolon",
    "back\\slash",
    "tab\there",
    "ünï €",
    "' ; touch PWNED-quote ; '",
    "*",
]
#: Refused in every value that reaches a Dockerfile or a shell line.
CONTROL = ["line one\nline two", "cr\rhere", "nul\x00", "esc\x1b[31m", "del\x7f",
           "c1\x85", "lone \ud800 surrogate"]


def fake_python(sandbox: Path) -> Path:
    """Write a stand-in payload python that prints its argv and env as JSON."""
    python = sandbox / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(textwrap.dedent(f"""\
        #!{os.path.realpath('/usr/bin/python3')}
        import json, os, sys
        print(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ),
                          "pid": os.getpid()}}))
        """))
    python.chmod(0o755)
    return python


def run_wrapper(wrapper: str, sandbox: Path, conn: str) -> dict[str, object]:
    script = sandbox / "launch"
    script.write_text(wrapper)
    script.chmod(0o755)
    proc = subprocess.run(["bash", str(script), conn], cwd=sandbox,
                          capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(sandbox)})
    assert proc.returncode == 0, proc.stderr
    data: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def assert_nothing_ran(sandbox: Path) -> None:
    assert not [p.name for p in sandbox.rglob("PWNED*")]


def test_wrapper_exports_env_values_literally(tmp_path: Path) -> None:
    python = fake_python(tmp_path)
    env = {f"NASTY_{i}": value for i, value in enumerate(NASTY)}
    kernel = Kernel(name="k", display_name="K", env=env)
    files = kernel_files(kernel, Environment(str(tmp_path), str(python)))
    assert files.wrapper is not None
    conn = "/tmp/conn $(touch PWNED-arg) `x`.json"
    out = run_wrapper(files.wrapper, tmp_path, conn)
    got = out["env"]
    assert isinstance(got, dict)
    for name, value in env.items():
        assert got[name] == value, name
    assert out["argv"] == ["-m", "ipykernel_launcher", "-f", conn]
    assert_nothing_ran(tmp_path)


def test_wrapper_runs_setup_lines_verbatim_and_execs(tmp_path: Path) -> None:
    """Setup lines are the payload's shell code: written as given, one a line."""
    python = fake_python(tmp_path)
    setup = [
        "export FROM_SETUP='$(touch PWNED-single) `x` \"q\"'",
        'export DOUBLE="$HOME/x"',
        "unset NOT_SET_ANYWAY",
    ]
    kernel = Kernel(name="k", display_name="K", setup=setup, env={"A": "1"})
    files = kernel_files(kernel, Environment(str(tmp_path), str(python)))
    assert files.wrapper is not None
    for line in setup:
        assert f"\n{line}\n" in files.wrapper
    last = [ln for ln in files.wrapper.splitlines() if ln.strip()][-1]
    assert last.startswith("exec ")
    out = run_wrapper(files.wrapper, tmp_path, "/tmp/c.json")
    env = out["env"]
    assert isinstance(env, dict)
    assert env["FROM_SETUP"] == "$(touch PWNED-single) `x` \"q\""
    assert env["DOUBLE"] == f"{tmp_path}/x"
    assert_nothing_ran(tmp_path)


@pytest.mark.parametrize("display_name", NASTY)
def test_kernel_json_keeps_display_name_literally(display_name: str) -> None:
    kernel = Kernel(name="k", display_name=display_name)
    env = Environment("/opt/payload/venv", "/opt/payload/venv/bin/python", "venv")
    spec = json.loads(kernel_files(kernel, env).kernel_json)
    assert spec["display_name"] == display_name
    assert spec["argv"][-1] == "{connection_file}"


@pytest.mark.parametrize("field,value", [
    ("name", "k;id"), ("name", "k$(id)"), ("name", "k`id`"), ("name", "k\nx"),
    ("name", "k'x"), ("name", 'k"x'), ("name", "../k"),
    ("display_name", "K\nRUN id"), ("display_name", "K\rx"),
    ("setup", ["ok", "a\nb"]), ("env", {"A B": "x"}), ("env", {"A;B": "x"}),
    ("env", {"A": "nul\x00"}),
])
def test_schema_refuses_unsafe_kernel_fields(field: str, value: object) -> None:
    data: dict[str, object] = {"name": "k", "display_name": "K", field: value}
    with pytest.raises(ValidationError):
        Kernel.model_validate(data)


@pytest.mark.parametrize("value", ["/opt/x;id", "/opt/$HOME", "/opt/`id`",
                                   "/opt/a b", "/opt/x\n", "/opt/'x'"])
def test_schema_refuses_unsafe_prefixes_and_pythons(value: str) -> None:
    base = {"name": "p", "kernel": {"name": "k", "display_name": "K"}}
    with pytest.raises(ValidationError):
        Payload.model_validate({**base, "install": [
            {"pip": {"requirements": "r.txt", "prefix": value}}]})
    with pytest.raises(ValidationError):
        Payload.model_validate({**base, "install": [
            {"pip": {"requirements": "r.txt", "python": value}}]})


def make_payload(root: Path, shell_setup: list[str] | None = None) -> Path:
    payload = root / "payload"
    payload.mkdir()
    (payload / "requirements.txt").write_text("six\n")
    data: dict[str, object] = {
        "name": "nasty",
        "description": "\n".join(NASTY) + "\nRUN touch /PWNED-dockerfile",
        "install": [{"pip": {"requirements": "requirements.txt"}}],
        "kernel": {"name": "nasty", "display_name": 'Nasty "$(id)" `id` \'x\'',
                   "env": {f"NASTY_{i}": v for i, v in enumerate(NASTY)},
                   "setup": ["export FROM_SETUP='$(touch PWNED-setup)'"]},
    }
    if shell_setup is not None:
        data["shell"] = {"setup": shell_setup}
    (payload / "payload.yaml").write_text(json.dumps(data))  # JSON is YAML
    return payload


def rendered(payload: Path) -> dict[str, str]:
    plan = plan_of(payload)
    return {k: v.decode() for k, (v, _) in files_of(plan).items()}


def test_dockerfile_keeps_nasty_values_inside_their_instruction(tmp_path: Path
                                                                ) -> None:
    files = rendered(make_payload(tmp_path))
    dockerfile = files["Dockerfile"]
    # No value starts a line of its own: a newline in the description or a
    # display name never becomes a Dockerfile instruction.
    for line in dockerfile.splitlines():
        assert "PWNED" not in line or not line.lstrip().startswith("RUN touch")
    label = next(ln for ln in dockerfile.splitlines()
                 if "org.opencontainers.image.description" in ln)
    assert "\\n" not in label and "\\$(touch" in label  # folded to one line
    spec = json.loads(files["kernel/kernel.json"])
    assert spec["display_name"] == 'Nasty "$(id)" `id` \'x\''


def test_rendered_wrapper_and_shell_setup_in_a_sandbox(tmp_path: Path) -> None:
    files = rendered(make_payload(tmp_path, shell_setup=[
        "export SHELL_SETUP='`touch PWNED-shell` $(touch PWNED-shell2)'"]))
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    python = fake_python(sandbox)
    wrapper = files["kernel/launch"].replace("/opt/payload/venv/bin/python",
                                             str(python))
    out = run_wrapper(wrapper, sandbox, "/tmp/c.json")
    env = out["env"]
    assert isinstance(env, dict)
    for i, value in enumerate(NASTY):
        assert env[f"NASTY_{i}"] == value
    assert env["FROM_SETUP"] == "$(touch PWNED-setup)"
    setup = sandbox / "setup.sh"
    setup.write_text(files["shell/setup.sh"])
    proc = subprocess.run(["bash", "-c", '. ./setup.sh && printf %s "$SHELL_SETUP"'],
                          cwd=sandbox, capture_output=True, text=True, timeout=30,
                          check=False, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "`touch PWNED-shell` $(touch PWNED-shell2)"
    assert_nothing_ran(sandbox)
    assert_nothing_ran(tmp_path)


def test_default_shell_setup_quotes_paths(tmp_path: Path) -> None:
    files = rendered(make_payload(tmp_path))
    proc = subprocess.run(["bash", "-c", '. /dev/stdin && printf "%s|%s|%s" '
                           '"$VIRTUAL_ENV" "$NUBLADO_PAYLOAD" "${PATH%%:*}"'],
                          input=files["shell/setup.sh"], capture_output=True,
                          text=True, timeout=30, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "/opt/payload/venv|nasty|/opt/payload/venv/bin"


@pytest.mark.parametrize("value", CONTROL)
@pytest.mark.parametrize("where", ["kernel.env", "kernel.setup", "kernel.display_name",
                                   "shell.setup", "script.env", "description"])
def test_control_characters_refused_everywhere(tmp_path: Path, where: str,
                                               value: str) -> None:
    """No control character reaches a Dockerfile or a shell line (exit 2)."""
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "install.sh").write_text("true\n")
    data: dict[str, object] = {
        "name": "ctl", "install": [{"pip": {"requirements": "requirements.txt"}}],
        "kernel": {"name": "k", "display_name": "K"}}
    kernel = data["kernel"]
    assert isinstance(kernel, dict)
    if where == "kernel.env":
        kernel["env"] = {"X": value}
    elif where == "kernel.setup":
        kernel["setup"] = [value]
    elif where == "kernel.display_name":
        kernel["display_name"] = value
    elif where == "shell.setup":
        data["shell"] = {"setup": [value]}
    elif where == "script.env":
        data["install"] = [{"pip": {"requirements": "requirements.txt"}},
                           {"script": {"path": "install.sh", "prefix": "/opt/x",
                                       "env": {"X": value}}}]
    else:
        data["description"] = value
    if where == "description" and value in ("line one\nline two", "cr\rhere"):
        # Multi-line YAML text folds to one line in the description label.
        (tmp_path / "payload.yaml").write_text(json.dumps(data))
        assert "\n" not in load_payload(tmp_path).model.description
        return
    text = json.dumps(data, ensure_ascii=True)
    (tmp_path / "payload.yaml").write_text(text)
    with pytest.raises(PayloadInvalid) as info:
        load_payload(tmp_path)
    rendered_problems = " ".join(p.render() for p in info.value.problems)
    assert ("control character" in rendered_problems
            or "surrogate" in rendered_problems
            or "unicode string" in rendered_problems), rendered_problems


REPO = Path(__file__).resolve().parents[2]
BUILD = "/usr/local/share/jupyterlab/build"


def script_run_command(dockerfile: str) -> str:
    """Return the shell command of the script step's RUN, as BuildKit runs it."""
    lines = dockerfile.splitlines()
    start = next(i for i, ln in enumerate(lines)
                 if ln.startswith("# install[1]: script"))
    command: list[str] = []
    for line in lines[start + 1:]:
        command.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    text = " ".join(command).removeprefix("RUN ")
    return " ".join(w for w in text.split(" ") if not w.startswith("--mount="))


def test_rendered_script_step_runs_values_literally(tmp_path: Path) -> None:
    """The rendered RUN of a script step, run by sh in a sandbox.

    Env values stay literal; the script sees PAYLOAD_PREFIX, PAYLOAD_PYTHON
    (the pip step's venv), PATH with its prefix's and the venv's bin first,
    a HOME of its own that is gone afterwards, and pip's and uv's caches on
    the cache mounts.
    """
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "requirements.txt").write_text("six\n")
    (payload / "post.sh").write_text(
        "#!/bin/bash\n/usr/bin/python3 -c 'import json, os, sys; "
        "json.dump(dict(os.environ), open(sys.argv[1], \"w\"))' "
        '"$PAYLOAD_PREFIX/env.json"\ntouch "$HOME/marker"\n')
    env = {f"NASTY_{i}": v for i, v in enumerate(NASTY)}
    (payload / "payload.yaml").write_text(json.dumps({
        "name": "nasty", "kernel": {"name": "k", "display_name": "K"},
        "install": [{"pip": {"requirements": "requirements.txt"}},
                    {"script": {"path": "post.sh", "prefix": "/opt/nasty",
                                "env": env}}]}))
    command = script_run_command(rendered(payload)["Dockerfile"])
    sandbox = tmp_path / "sandbox"
    (sandbox / "files").mkdir(parents=True)
    shutil.copy(payload / "post.sh", sandbox / "files" / "post.sh")
    prefix = sandbox / "prefix"
    command = (command.replace(f"{BUILD}/with-build-secrets ", "")
               .replace(f"{BUILD}/run-install-script",
                        str(REPO / "base/build/run-install-script"))
               .replace("/tmp/nb-payload", str(sandbox / "files"))
               .replace("/opt/nasty", str(prefix)))
    proc = subprocess.run(["sh", "-c", command], cwd=sandbox, capture_output=True,
                          text=True, timeout=30, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/root"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "install[1].script: running post.sh" in proc.stdout
    got = json.loads((prefix / "env.json").read_text())
    for name, value in env.items():
        assert got[name] == value, name
    assert got["PAYLOAD_PREFIX"] == str(prefix)
    assert got["PAYLOAD_PYTHON"] == "/opt/payload/venv/bin/python"
    assert got["PATH"] == f"{prefix}/bin:/opt/payload/venv/bin:/usr/bin:/bin"
    assert (got["PIP_CACHE_DIR"], got["UV_CACHE_DIR"]) == ("/root/.cache/pip",
                                                           "/root/.cache/uv")
    home = Path(got["HOME"])
    assert home.name.startswith("nb-home.") and not home.exists()
    assert_nothing_ran(sandbox)
    assert_nothing_ran(tmp_path)
