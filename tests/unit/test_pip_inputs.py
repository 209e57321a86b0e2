"""The pip kind's sources: project, pyproject, uv.lock, Pipfile(.lock); their errors.

Each source is parsed from real files in a payload directory through the
loader, its problems are checked as the CLI shows them (payload file, YAML
line, source file and line), and the rendered step (Dockerfile lines and
context files) is checked exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nubladobuild.errors import PayloadInvalid
from nubladobuild.loader import load_payload
from nubladobuild.pairing import parse_manifest
from nubladobuild.pyinputs import (
    PROJECT_ROOT,
    kernel_support_added,
    load_toml,
    pipfile_lock_requirements,
    pipfile_requirements,
)
from nubladobuild.requirements import parse_requirements, rewrite_projects
from nubladobuild.resolve import inputs_sha256
from tests.unit.helpers import dockerfile_of, files_of, plan_of

REPO = Path(__file__).resolve().parents[2]
UVLOCK = REPO / "tests" / "fixtures" / "uvlock"
H1, H2, H3 = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64
PYPROJECT = """\
[project]
name = "demo"
version = "0.1"
dependencies = ["six>=1.16", "attrs"]

[project.optional-dependencies]
plot = ["pyparsing==3.2.0"]
all = ["demo[plot]"]

[dependency-groups]
lint = ["pyflakes"]
dev = [{include-group = "lint"}, "pytest"]

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
"""


def write(tmp_path: Path, step: str, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (tmp_path / "payload.yaml").write_text(
        f"name: demo\ninstall:\n  - pip: {step}\n"
        "kernel: {name: k, display_name: K}\n")
    return tmp_path


def problems(directory: Path) -> list[str]:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(directory)
    return [p.render() for p in info.value.problems]


def step_text(directory: Path) -> tuple[str, dict[str, tuple[bytes, int]]]:
    plan = plan_of(directory)
    text = dockerfile_of(plan)
    step = text.split("# install[0]: pip\n")[1].split("\n\n")[0]
    return step, files_of(plan)


# --- one source, the schema ------------------------------------------------

@pytest.mark.parametrize(("step", "needle"), [
    ("{prefix: /opt/x}", "exactly one source, one of requirements, project, "
     "pyproject, uv_lock, pipfile_lock, pipfile; it has none"),
    ("{requirements: r.txt, project: .}",
     "exactly one source, one of requirements, project, pyproject, uv_lock, "
     "pipfile_lock, pipfile; it has requirements, project"),
    ("{requirements: r.txt, groups: [dev]}",
     "groups go with pyproject, uv_lock, pipfile_lock, pipfile, not requirements"),
    ("{project: ., groups: [dev]}", "not project; use extras"),
    ("{pyproject: pyproject.toml, extras: [plot]}",
     "extras go with project (the project's extras); for a pyproject, uv_lock or "
     "Pipfile use groups"),
    ("{pyproject: pyproject.toml, lock: r.txt}",
     "lock goes with requirements only (a hash lock made by `nublado-build lock`)"),
    ("{pyproject: pyproject.toml, groups: ['-x']}",
     "'-x' is not a valid extra or group name (letters, digits and ._-)"),
])
def test_exactly_one_source(tmp_path: Path, step: str, needle: str) -> None:
    found = problems(write(tmp_path, step, {"r.txt": "six\n",
                                            "pyproject.toml": PYPROJECT}))
    assert len(found) == 1, found
    assert found[0].endswith(needle), found
    assert ":3: install[0].pip: " in found[0]


# --- the payload's project ----------------------------------------------------

def test_dot_line_without_project_names_file_and_line(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "{requirements: r.txt}",
                           {"r.txt": "six\n-e .\n"}))
    assert found == [
        f"{tmp_path}/payload.yaml:3: install[0].pip.requirements: r.txt:2: the "
        "payload directory has no pyproject.toml or setup.py, so it is not a "
        "Python project; add one, or remove the line and list packages by name"]


def test_sub_line_missing_and_outside(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "{requirements: r.txt}",
                           {"r.txt": "./nope\n./sub/../../x\n"}))
    assert found == [
        f"{tmp_path}/payload.yaml:3: install[0].pip.requirements: r.txt:2: "
        "'./sub/../../x' is outside the payload directory; move the project in",
        f"{tmp_path}/payload.yaml:3: install[0].pip.requirements: r.txt:1: "
        f"directory 'nope' does not exist in the payload directory {tmp_path}; "
        "create it or fix the path"]


def test_hashed_file_with_project_line_refused(tmp_path: Path) -> None:
    text = f"six==1.17.0 --hash={H1}\n-e .\n"
    found = problems(write(tmp_path, "{requirements: r.txt}",
                           {"r.txt": text, "setup.py": ""}))
    assert found == [
        f"{tmp_path}/payload.yaml:3: install[0].pip.requirements: r.txt:2: names "
        "a project directory of the payload, but the file is hash-locked (--hash) "
        "and pip refuses a path in hash-checking mode; install the project in a "
        "step of its own (`pip: {project: .}`)"]


def test_project_lines_only_in_pip_steps() -> None:
    # A conda environment's pip section still refuses them (not copied).
    reqs = parse_requirements("-e .\n")
    assert reqs.projects == ()
    assert reqs.problems[0][1].startswith("installs from a local path")
    assert [(p.line, p.path, p.editable, p.extras) for p in
            parse_requirements(".\n-e ./sub[a,b]\n--editable=./x/\n",
                               projects=True).projects] == [
        (1, ".", False, ""), (2, "sub", True, "[a,b]"), (3, "x", True, "")]


def test_rewrite_projects_points_at_the_image_copy() -> None:
    text = "six\r\n.  # me\n-e ./sub[x]\n# -e .\n"
    assert rewrite_projects(text, PROJECT_ROOT) == (
        "six\r\n/opt/payload/project\n-e /opt/payload/project/sub[x]\n# -e .\n")


def test_requirements_with_editable_project_renders(tmp_path: Path) -> None:
    directory = write(tmp_path, "{requirements: r.txt}", {
        "r.txt": "six\n-e .\n", "pyproject.toml": PYPROJECT,
        "src/demo/__init__.py": "x = 1\n", ".git/config": "", "tests/t.py": "",
        "src/demo/__pycache__/a.pyc": "", "build/lib/x.py": ""})
    (directory / "payload.yaml").write_text(
        (directory / "payload.yaml").read_text() + "tests: tests\n")
    step, files = step_text(directory)
    assert step == (
        "# The payload's project, where it stays for run time (editable installs).\n"
        'COPY ["steps/00-pip/project/", "/opt/payload/project/"]\n'
        + step.split("\n", 2)[2])
    assert step.endswith("install-pip \\\n    python3 /opt/payload/venv "
                         "/tmp/nb-step/requirements.txt \\\n    uv nohashes")
    assert files["steps/00-pip/requirements.txt"][0] == (
        b"six\n-e /opt/payload/project\n# added by nublado-build for the kernel\n"
        b"ipykernel\n")
    assert sorted(f for f in files if f.startswith("steps/00-pip/project/")) == [
        "steps/00-pip/project/pyproject.toml", "steps/00-pip/project/r.txt",
        "steps/00-pip/project/src/demo/__init__.py"]
    # The project's files count in the inputs digest (provenance label).
    loaded = load_payload(directory)
    assert sorted(loaded.inputs[0].files) == ["pyproject.toml", "r.txt",
                                              "src/demo/__init__.py"]
    before = inputs_sha256(loaded, "standard")
    (directory / "src/demo/__init__.py").write_text("x = 2\n")
    assert inputs_sha256(load_payload(directory), "standard") != before


def test_project_with_extras_renders(tmp_path: Path) -> None:
    directory = write(tmp_path, "{project: ., extras: [plot], installer: pip}",
                      {"pyproject.toml": PYPROJECT, "demo.py": ""})
    step, files = step_text(directory)
    assert 'COPY ["steps/00-pip/project/", "/opt/payload/project/"]' in step
    assert step.endswith("/tmp/nb-step/requirements.txt \\\n    pip nohashes")
    assert files["steps/00-pip/requirements.txt"][0] == (
        b"/opt/payload/project[plot]\n# added by nublado-build for the kernel\n"
        b"ipykernel\n")


def test_project_unknown_extra_and_missing_project(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "{project: ., extras: [plots]}",
                           {"pyproject.toml": PYPROJECT}))
    assert found == [f"{tmp_path}/payload.yaml:3: install[0].pip.extras: "
                     "pyproject.toml has no optional-dependencies 'plots'; "
                     "available: all, plot"]
    other = tmp_path / "other"
    other.mkdir()
    found = problems(write(other, "{project: sub}", {"sub/README": ""}))
    assert found == [f"{other}/payload.yaml:3: install[0].pip.project: 'sub' has "
                     "no pyproject.toml or setup.py, so it is not a Python project; "
                     "add one, or remove the line and list packages by name"]


# --- pyproject dependencies -----------------------------------------------------

def test_pyproject_dependencies_and_groups_render(tmp_path: Path) -> None:
    directory = write(tmp_path, "{pyproject: pyproject.toml, groups: [all, dev]}",
                      {"pyproject.toml": PYPROJECT})
    step, files = step_text(directory)
    assert "COPY" not in step
    assert files["steps/00-pip/requirements.txt"][0] == (
        b"six>=1.16\nattrs\npyparsing==3.2.0\npyflakes\npytest\n"
        b"# added by nublado-build for the kernel\nipykernel\n")


def test_pyproject_unknown_group_names_the_available(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "{pyproject: pyproject.toml, groups: [docs]}",
                           {"pyproject.toml": PYPROJECT}))
    assert found == [f"{tmp_path}/payload.yaml:3: install[0].pip.groups: "
                     "pyproject.toml has no optional-dependencies or "
                     "dependency-groups group 'docs'; available: all, dev, lint, "
                     "plot"]


def test_pyproject_dynamic_dependencies_suggest_project(tmp_path: Path) -> None:
    text = '[project]\nname = "d"\nversion = "1"\ndynamic = ["dependencies"]\n'
    found = problems(write(tmp_path, "{pyproject: pyproject.toml}",
                           {"pyproject.toml": text}))
    assert found == [f"{tmp_path}/payload.yaml:3: install[0].pip.pyproject: "
                     "pyproject.toml:4: the dependencies are declared dynamic "
                     "(computed by the build backend), so they cannot be read "
                     "without building the project; use `project:` to install "
                     "the project with its dependencies"]


def test_pyproject_toml_error_has_its_line(tmp_path: Path) -> None:
    text = '[project]\nname = "d"\ndependencies = ["six"\nversion = "1"\n'
    found = problems(write(tmp_path, "{pyproject: pyproject.toml}",
                           {"pyproject.toml": text}))
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path}/payload.yaml:3: install[0].pip."
                               "pyproject: pyproject.toml:4: not valid TOML (")
    assert found[0].endswith("); fix the file")


def test_pyproject_local_and_invalid_requirements(tmp_path: Path) -> None:
    text = ('[project]\nname = "d"\nversion = "1"\n'
            'dependencies = ["x @ file:///tmp/x", "not valid!"]\n')
    found = problems(write(tmp_path, "{pyproject: pyproject.toml}",
                           {"pyproject.toml": text}))
    assert len(found) == 2
    assert "pyproject.toml: dependencies: 'not valid!' is not a valid requirement" \
        in found[0]
    assert found[1].endswith("pyproject.toml: 'x @ file:///tmp/x': installs from a "
                             "local path or file URL, which is not in the build; "
                             "list the project by name (or use a `script` step)")


def test_load_toml_reports_the_line() -> None:
    data, why = load_toml("a = 1\nb = \n", "x.toml")
    assert data is None
    assert why is not None and why.startswith("x.toml:2: not valid TOML (")


# --- uv.lock ------------------------------------------------------------------------

def uv_payload(tmp_path: Path, step: str = "{uv_lock: uv.lock}") -> Path:
    for name in ("uv.lock", "pyproject.toml"):
        shutil.copy(UVLOCK / name, tmp_path / name)
    return write(tmp_path, step, {})


def test_uv_lock_renders_export_with_groups(tmp_path: Path) -> None:
    step, files = step_text(uv_payload(
        tmp_path, "{uv_lock: uv.lock, groups: [extra], installer: pip}"))
    assert step.endswith(
        "install-pip \\\n    python3 /opt/payload/venv "
        "/tmp/nb-uv-export/requirements.txt \\\n    pip hashes kernel-support "
        "/tmp/nb-step/uv --group extra")
    assert files["steps/00-pip/uv/uv.lock"][0] == (UVLOCK / "uv.lock").read_bytes()
    assert files["steps/00-pip/uv/pyproject.toml"][0] == \
        (UVLOCK / "pyproject.toml").read_bytes()
    assert "steps/00-pip/requirements.txt" not in files


def test_uv_lock_without_pyproject(tmp_path: Path) -> None:
    (tmp_path / "locks").mkdir()
    shutil.copy(UVLOCK / "uv.lock", tmp_path / "locks" / "uv.lock")
    found = problems(write(tmp_path, "{uv_lock: locks/uv.lock}", {}))
    assert found == [f"{tmp_path}/payload.yaml:3: install[0].pip.uv_lock: "
                     "'locks/uv.lock' needs the pyproject.toml it was locked from "
                     "next to it, but there is no locks/pyproject.toml; commit it "
                     "with the lock"]


def test_uv_lock_unknown_group_and_not_a_lock(tmp_path: Path) -> None:
    found = problems(uv_payload(tmp_path, "{uv_lock: uv.lock, groups: [docs]}"))
    assert found == [f"{tmp_path}/payload.yaml:3: install[0].pip.groups: "
                     "pyproject.toml has no optional-dependencies or "
                     "dependency-groups group 'docs'; available: extra"]
    write(tmp_path, "{uv_lock: uv.lock}", {"uv.lock": "version = 1\n"})
    found = problems(tmp_path)
    assert found == [f"{tmp_path}/payload.yaml:3: install[0].pip.uv_lock: uv.lock "
                     "has no [[package]] entries, so it is not a uv.lock of "
                     "anything; make it with `uv lock`"]
    (tmp_path / "uv.lock").write_text("[[package]]\nname = 'six'\nversion = \n")
    found = problems(tmp_path)
    assert len(found) == 1 and found[0].startswith(
        f"{tmp_path}/payload.yaml:3: install[0].pip.uv_lock: uv.lock:3: not "
        "valid TOML (")


# --- Pipfile.lock and Pipfile ---------------------------------------------------------

PIPFILE_LOCK = {
    "_meta": {"hash": {"sha256": "0" * 64}, "pipfile-spec": 6,
              "requires": {"python_version": "3.13"},
              "sources": [{"name": "pypi", "url": "https://pypi.org/simple",
                           "verify_ssl": True}]},
    "default": {
        "six": {"hashes": [H2, H1], "index": "pypi", "version": "==1.17.0",
                "markers": "python_version >= '2.7' and python_version not in "
                           "'3.0, 3.1, 3.2'"},
        "requests": {"extras": ["socks"], "hashes": [H3], "version": "==2.32.3"},
    },
    "develop": {"attrs": {"hashes": [H1], "version": "==25.4.0"},
                "six": {"hashes": [H2, H1], "version": "==1.17.0"}},
}


def test_pipfile_lock_converts_hashes_and_markers() -> None:
    text = json.dumps(PIPFILE_LOCK, indent=4)
    got = pipfile_lock_requirements(text, "Pipfile.lock", ["develop"])
    assert got.problems == ()
    assert got.text == (
        f"requests[socks]==2.32.3 \\\n    --hash={H3}\n"
        "six==1.17.0 ; python_version >= '2.7' and python_version not in "
        f"'3.0, 3.1, 3.2' \\\n    --hash={H1} \\\n    --hash={H2}\n"
        f"attrs==25.4.0 \\\n    --hash={H1}\n")
    assert got.names == frozenset({"requests", "six", "attrs"})
    reqs = parse_requirements(got.text)
    assert reqs.hashed and reqs.problems == ()


def test_pipfile_lock_errors_name_file_and_line() -> None:
    got = pipfile_lock_requirements('{\n  "default": {\n    "six": \n}', "P.lock", [])
    assert got.problems[0].startswith("P.lock:4: not valid JSON (")
    lock = json.loads(json.dumps(PIPFILE_LOCK))
    lock["default"]["six"] = {"version": "==1.17.0"}
    lock["default"]["demo"] = {"editable": True, "path": "."}
    text = json.dumps(lock, indent=4)
    got = pipfile_lock_requirements(text, "Pipfile.lock", ["docs"])
    assert got.problems == ("Pipfile.lock has no section 'docs'; available: "
                            "develop",)
    got = pipfile_lock_requirements(text, "Pipfile.lock", [])
    lines = text.splitlines()
    demo = lines.index('        "demo": {') + 1
    six = lines.index('        "six": {') + 1
    assert (demo, six) == (31, 19)
    assert got.problems == (
        f"Pipfile.lock:{demo}: default.demo is installed from path ('.'), which a "
        "hash-checked install cannot take; list the project by name (or install "
        "the payload's own project with `project:`)",
        f"Pipfile.lock:{six}: default.six has no sha256 hashes; lock again with "
        "`pipenv lock`")


def test_pipfile_lock_step_renders_hashed_with_kernel_support(tmp_path: Path) -> None:
    directory = write(tmp_path, "{pipfile_lock: Pipfile.lock}",
                      {"Pipfile.lock": json.dumps(PIPFILE_LOCK, indent=4)})
    step, files = step_text(directory)
    assert step.endswith("/tmp/nb-step/requirements.txt \\\n    uv hashes "
                         "kernel-support")
    assert files["steps/00-pip/requirements.txt"][0].startswith(
        b"requests[socks]==2.32.3 \\\n")
    assert b"ipykernel" not in files["steps/00-pip/requirements.txt"][0]


def test_pipfile_converts_sections(tmp_path: Path) -> None:
    text = ('[[source]]\nurl = "https://pypi.org/simple"\nname = "pypi"\n'
            'verify_ssl = true\n\n[packages]\nsix = "*"\n'
            'attrs = {version = ">=23", extras = ["tests"], '
            'sys_platform = "== \'linux\'"}\n'
            'requests = {version = "==2.32.3", markers = "python_version >= \'3.8\'"}'
            '\n\n[dev-packages]\npytest = "==8.3.0"\n')
    got = pipfile_requirements(text, "Pipfile", ["dev-packages"])
    assert got.problems == ()
    assert got.text == ("six\nattrs[tests]>=23 ; sys_platform == 'linux'\n"
                        "requests==2.32.3 ; python_version >= '3.8'\n"
                        "pytest==8.3.0\n")
    directory = write(tmp_path, "{pipfile: Pipfile, groups: [develop]}",
                      {"Pipfile": text})
    found = problems(directory)
    assert found == [f"{tmp_path}/payload.yaml:3: install[0].pip.groups: Pipfile "
                     "has no section 'develop'; available: dev-packages"]


def test_pipfile_git_entry_and_toml_error() -> None:
    text = '[packages]\nsix = "*"\ndemo = {git = "https://x/y.git"}\n'
    got = pipfile_requirements(text, "Pipfile", [])
    assert got.problems == (
        "Pipfile:3: demo is installed from git ('https://x/y.git'), which is not in "
        "the build; list the project by name, or install the payload's own "
        "project with `project:`",)
    got = pipfile_requirements("[packages\n", "Pipfile", [])
    assert got.problems[0].startswith("Pipfile:1: not valid TOML (")


# --- hash locks without ipykernel, the manifest ---------------------------------

def test_hashed_requirements_without_ipykernel_get_kernel_support(
        tmp_path: Path) -> None:
    directory = write(tmp_path, "{requirements: r.txt}",
                      {"r.txt": f"six==1.17.0 \\\n    --hash={H1}\n"})
    step, files = step_text(directory)
    assert step.endswith("/tmp/nb-step/requirements.txt \\\n    uv hashes "
                         "kernel-support")
    assert files["steps/00-pip/requirements.txt"][0] == \
        f"six==1.17.0 \\\n    --hash={H1}\n".encode()
    with_kernel = f"six==1.17.0 --hash={H1}\nipykernel==7.0 --hash={H2}\n"
    (directory / "r.txt").write_text(with_kernel)
    step, _ = step_text(directory)
    assert step.endswith("/tmp/nb-step/requirements.txt \\\n    uv hashes")


def test_ipykernel_lock_is_hashed_and_complete() -> None:
    text = (REPO / "base" / "build" / "ipykernel.txt").read_text()
    reqs = parse_requirements(text)
    assert reqs.problems == () and reqs.hashed
    assert {"ipykernel", "ipython", "jupyter-client", "pyzmq", "tornado",
            "traitlets", "comm", "debugpy"} <= reqs.names
    assert "uv pip compile --universal --python-version 3.11 --generate-hashes" \
        in text


def test_manifest_kernel_support_lines_are_backwards_compatible() -> None:
    manifest = ("Python 3.13.5\n# kernel-support-added: ipykernel 7.4.0\n"
                "# kernel-support-added: tornado 6.6.1\nipykernel==7.4.0\n"
                "six==1.17.0\ntornado==6.6.1\n")
    assert kernel_support_added(manifest) == {"ipykernel": "7.4.0",
                                              "tornado": "6.6.1"}
    # Readers of name==version lines see the packages only.
    assert parse_manifest(manifest) == {"ipykernel": "7.4.0", "six": "1.17.0",
                                        "tornado": "6.6.1"}
    assert kernel_support_added("Python 3.13.5\nsix==1.17.0\n") == {}
