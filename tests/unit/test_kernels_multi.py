"""Several kernels per payload: the schema, the plan, rendering, compat.

``kernels:`` lists 1..16 kernels (``kernel:`` stays for one; exactly one of
the two). Each kernel is a Python kernel (its own ``python`` or the
derived one) or runs its own ``argv``; the first is the default.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nubladobuild.errors import EXIT_INPUT, PayloadInvalid
from nubladobuild.loader import load_payload
from tests.unit.helpers import dockerfile_of, files_of, plan_of

REPO = Path(__file__).resolve().parents[2]
R_LAB = REPO / "payloads" / "r-lab"
HEAD = """\
name: multi
install:
  - pip: {requirements: requirements.txt}
"""
IR = ('    argv: [/usr/bin/R, --no-echo, -e, "IRkernel::main()", --args, '
      '"{connection_file}"]\n')
TWO = HEAD + f"""\
kernels:
  - name: py
    display_name: Python
  - name: ir
    display_name: R
    language: R
{IR}"""


def write(tmp: Path, text: str) -> Path:
    (tmp / "payload.yaml").write_text(text)
    (tmp / "requirements.txt").write_text("six\n")
    return tmp


def problems(tmp: Path, text: str) -> list[str]:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(write(tmp, text))
    assert info.value.exit_code == EXIT_INPUT
    return [p.render() for p in info.value.problems]


# --- schema errors, each with the file, the YAML path and the line ---------


def test_kernel_and_kernels_together_refused(tmp_path: Path) -> None:
    text = TWO + "kernel: {name: k, display_name: K}\n"
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:4: kernels: give kernel (one kernel) or kernels "
        "(a list), not both; move the kernel into the kernels list"]


def test_neither_kernel_nor_kernels_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, HEAD) == [
        f"{tmp_path}/payload.yaml:1: kernel: required field is missing: give "
        "kernel (one kernel) or kernels (a list of up to 16, the first the "
        "default)"]


def test_duplicate_kernel_names_refused(tmp_path: Path) -> None:
    text = TWO.replace("name: ir", "name: PY")
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:7: kernels[1].name: duplicate kernel name 'PY' "
        "(also kernels[0].name; Jupyter compares kernel names case-insensitively);"
        " give each kernel its own name"]


def test_argv_without_connection_file_refused(tmp_path: Path) -> None:
    text = TWO.replace(', --args, "{connection_file}"', "")
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:10: kernels[1].argv: argv must contain "
        "{connection_file}, where Jupyter puts the connection file (IRkernel: "
        "[/usr/bin/R, --slave, -e, 'IRkernel::main()', --args, "
        "'{connection_file}'])"]


def test_python_and_argv_together_refused(tmp_path: Path) -> None:
    text = TWO.replace("    language: R\n",
                       "    language: R\n    python: /opt/r/bin/python\n")
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:11: kernels[1].argv: give python (a Python "
        "kernel, run by ipykernel) or argv (any other kernel's command), not both"]


def test_argv_program_must_be_absolute(tmp_path: Path) -> None:
    text = TWO.replace("argv: [/usr/bin/R,", "argv: [R,")
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:10: kernels[1].argv[0]: the kernel's program: "
        "must be an absolute path, got 'R'"]


def test_argv_needs_language(tmp_path: Path) -> None:
    text = TWO.replace("    language: R\n", "")
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:7: kernels[1].language: required with argv: the "
        "kernel's language as the kernel names it (R, julia, ...)"]


def test_unknown_language_needs_test(tmp_path: Path) -> None:
    text = TWO.replace("language: R", "language: cobol")
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:7: kernels[1].test: the image contract runs code "
        "in every kernel, and has no snippet for language 'cobol' (it has one for "
        "bash, julia, python, r); give test: {code, stdout} (a statement and the "
        "one line it prints)"]
    accepted = TWO.replace("language: R", "language: cobol\n    test: "
                           "{code: 'DISPLAY 2', stdout: '2'}")
    kernels = load_payload(write(tmp_path, accepted)).model.all_kernels
    assert kernels[1].test is not None
    assert (kernels[1].test.code, kernels[1].test.stdout) == ("DISPLAY 2", "2")


def test_language_without_argv_refused(tmp_path: Path) -> None:
    text = TWO.replace("  - name: py\n    display_name: Python\n",
                       "  - name: py\n    display_name: Python\n    language: R\n")
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:7: kernels[0].language: language 'R' needs argv:"
        " a kernel without argv runs ipykernel (Python); give argv (the kernel's "
        "command with {connection_file}) or drop language"]


def test_first_kernel_must_be_python(tmp_path: Path) -> None:
    text = HEAD + f"""\
kernels:
  - name: ir
    display_name: R
    language: R
{IR}  - name: py
    display_name: Python
"""
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:8: kernels[0].argv: the first kernel is the "
        "payload's default (the terminal's Python, what notebooks asking for "
        "python3 get): it must be a Python kernel; list a Python kernel first"]


def test_kernels_list_bounds(tmp_path: Path) -> None:
    assert problems(tmp_path, HEAD + "kernels: []\n") == [
        f"{tmp_path}/payload.yaml:4: kernels: List should have at least 1 item "
        "after validation, not 0"]
    many = "".join(f"  - {{name: k{i}, display_name: K{i}}}\n" for i in range(17))
    assert problems(tmp_path, HEAD + "kernels:\n" + many) == [
        f"{tmp_path}/payload.yaml:4: kernels: List should have at most 16 items "
        "after validation, not 17"]


def test_null_kernel_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, HEAD + "kernel: ~\n") == [
        f"{tmp_path}/payload.yaml:4: kernel: must be a valid dictionary (name, "
        "display_name, ...) for kernel, or a list of them for kernels; not null"]


def test_python_of_second_kernel_must_be_derivable(tmp_path: Path) -> None:
    text = """\
name: multi
install:
  - script: {path: requirements.txt, prefix: /opt/x}
kernels:
  - {name: a, display_name: A, python: /opt/x/bin/python}
  - {name: b, display_name: B}
"""
    assert problems(tmp_path, text) == [
        f"{tmp_path}/payload.yaml:6: kernels[1]: kernels[1].python cannot be "
        "derived from the install steps (no pip or conda step, and no 'python' on "
        "a script or transplant step); set kernels[1].python to the payload "
        "interpreter"]


# --- the model: the first kernel is the default -----------------------------


def test_single_kernel_unchanged(tmp_path: Path) -> None:
    model = load_payload(write(tmp_path, HEAD + "kernel: {name: k, display_name: "
                               "K}\n")).model
    assert model.kernels is None
    assert [k.name for k in model.all_kernels] == ["k"]
    assert model.default_kernel is model.kernel
    assert model.kernel_python == "/opt/payload/venv/bin/python"


def test_default_kernel_and_environments(tmp_path: Path) -> None:
    text = """\
name: multi
install:
  - pip: {requirements: requirements.txt, prefix: /opt/a}
  - pip: {requirements: requirements.txt, prefix: /opt/b}
kernels:
  - {name: a, display_name: A, python: /opt/a/bin/python}
  - {name: b, display_name: B}
"""
    model = load_payload(write(tmp_path, text)).model
    assert model.default_kernel.name == "a"
    assert model.kernel_python == "/opt/a/bin/python"
    envs = [model.kernel_environment(k) for k in model.all_kernels]
    assert [(e.prefix, e.python, e.flavour) for e in envs] == [
        ("/opt/a", "/opt/a/bin/python", "venv"),
        ("/opt/b", "/opt/b/bin/python", "venv")]
    plan = plan_of(tmp_path)
    assert [json.loads(k.kernel_json)["argv"][0] for k in plan.kernels] == [
        "/opt/a/bin/python", "/opt/b/bin/python"]
    assert dict(plan.labels)["io.nublado.payload.kernels"] == "a,b"
    assert dict(plan.labels)["io.nublado.payload.python"] == "/opt/a/bin/python"


# --- rendering: two kernelspecs, the wrapper, the guard's list --------------


def test_two_kernelspecs_rendered(tmp_path: Path) -> None:
    text = TWO.replace(IR, IR + "    env: {OMP_NUM_THREADS: '1'}\n")
    plan = plan_of(write(tmp_path, text))
    files = files_of(plan)
    assert sorted(n for n in files if n.startswith("kernel")) == [
        "kernel/kernel.json", "kernels/ir/kernel.json", "kernels/ir/launch"]
    assert files["kernels/ir/launch"][1] == 0o755
    py = json.loads(files["kernel/kernel.json"][0])
    assert py["argv"] == ["/opt/payload/venv/bin/python", "-m", "ipykernel_launcher",
                          "-f", "{connection_file}"]
    assert py["metadata"] == {"debugger": True,
                              "nublado": {"python": "/opt/payload/venv/bin/python"}}
    ir = json.loads(files["kernels/ir/kernel.json"][0])
    assert ir == {
        "argv": ["/usr/local/share/jupyterlab/kernels/ir/launch", "--no-echo", "-e",
                 "IRkernel::main()", "--args", "{connection_file}"],
        "display_name": "R",
        "env": {"PATH": "/opt/payload/venv/bin:${HOME}/.local/bin:${PATH}",
                "VIRTUAL_ENV": "/opt/payload/venv"},
        "interrupt_mode": "signal",
        "language": "R",
        "metadata": {"debugger": False, "nublado": {
            "test": {"code": "cat(1 + 1)", "stdout": "2"}}},
    }
    wrapper = files["kernels/ir/launch"][0].decode()
    lines = [ln for ln in wrapper.splitlines() if ln.strip()]
    assert lines[0] == "#!/bin/bash"
    assert "export OMP_NUM_THREADS=1" in lines
    assert lines[-1] == 'exec /usr/bin/R "$@"'
    dockerfile = dockerfile_of(plan)
    block = dockerfile[dockerfile.index('# Kernel "py"'):
                       dockerfile.index("COPY [\"shell/setup.sh\"")]
    assert block.splitlines() == [
        '# Kernel "py" (the default).',
        'COPY ["kernel/kernel.json", "/usr/local/share/jupyter/kernels/py/'
        'kernel.json"]',
        '# Kernel "ir" and the terminal setup.',
        'COPY ["kernels/ir/kernel.json", "/usr/local/share/jupyter/kernels/ir/'
        'kernel.json"]',
        'COPY ["kernels/ir/launch", "/usr/local/share/jupyterlab/kernels/ir/launch"]',
    ]
    assert "ENV NUBLADO_DEFAULT_KERNEL=py\n" in dockerfile
    # The isolation guard allows exactly the generated files, every kernel's.
    assert files["guard/allowed.txt"][0].decode().splitlines() == [
        "/usr/local/share/jupyter/kernels/ir/",
        "/usr/local/share/jupyter/kernels/py/",
        "/usr/local/share/jupyterlab/kernels/ir/",
        "/usr/local/share/jupyterlab/shell.d/50-multi.sh",
        "/usr/local/share/jupyterlab/versions-installed/payload-multi.txt",
    ]


def test_argv_wrapper_passes_arguments_and_execs(tmp_path: Path) -> None:
    """The wrapper runs the setup, then execs the program with its arguments."""
    text = TWO.replace(IR, IR.replace("/usr/bin/R", "/usr/bin/printf") +
                       "    setup: ['export FROM_SETUP=yes']\n")
    wrapper = files_of(plan_of(write(tmp_path, text)))["kernels/ir/launch"][0]
    script = tmp_path / "launch"
    script.write_bytes(wrapper.replace(b"exec /usr/bin/printf",
                                       b'echo "$FROM_SETUP"; exec /usr/bin/printf'))
    proc = subprocess.run(["bash", str(script), "[%s]", "a b", "/tmp/c.json"],
                          capture_output=True, text=True, check=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.stdout == "yes\n[a b][/tmp/c.json]"


def test_compat_placeholders_name_the_default_kernel(tmp_path: Path) -> None:
    text = TWO.replace("    display_name: Python\n",
                       "    display_name: Python\n    setup: ['true']\n") + \
        "compat:\n" \
        "  - {path: /opt/legacy/kernel.json, target: '{kernel.json}'}\n" \
        "  - {path: /opt/legacy/launch, target: '{kernel.wrapper}'}\n" \
        "  - {path: /opt/legacy/kdir, target: '{kernel.dir}'}\n"
    plan = plan_of(write(tmp_path, text))
    links = {link.path: link.target for link in plan.compat.links}
    assert links == {
        "/opt/legacy/kernel.json": "/usr/local/share/jupyter/kernels/py/kernel.json",
        "/opt/legacy/launch": "/usr/local/share/jupyterlab/kernels/py/launch",
        "/opt/legacy/kdir": "/usr/local/share/jupyter/kernels/py",
    }


def test_compat_wrapper_placeholder_needs_the_default_kernel_wrapper(
        tmp_path: Path) -> None:
    """Only the R kernel has a wrapper: {kernel.wrapper} still means the default's."""
    text = TWO.replace(IR, IR + "    env: {A: '1'}\n") + \
        "compat:\n  - {path: /opt/legacy/launch, target: '{kernel.wrapper}'}\n"
    with pytest.raises(PayloadInvalid) as info:
        plan_of(write(tmp_path, text))
    assert [p.location for p in info.value.problems] == ["compat[0]"]
    assert "kernel 'py' has no wrapper script" in info.value.problems[0].message


def test_r_lab_example_plans() -> None:
    plan = plan_of(R_LAB)
    assert [k.name for k in plan.kernels] == ["py", "ir"]
    assert [k.wrapper_path for k in plan.kernels] == [
        None, "/usr/local/share/jupyterlab/kernels/ir/launch"]
    assert plan.python == "/opt/r-lab/venv/bin/python"
    assert [s.kind for s in plan.steps] == ["apt", "pip"]
