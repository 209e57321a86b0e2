"""``nublado-build init``: a payload.yaml from a repo2docker repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nubladobuild import init as init_mod
from nubladobuild.errors import InputError
from nubladobuild.init import (
    Mapped,
    NotMapped,
    check_written,
    derive_name,
    plan_init,
    repo2docker_files,
    write_payload,
)
from nubladobuild.kinds import KINDS
from nubladobuild.loader import load_payload

REPO = Path(__file__).resolve().parents[2]
UVLOCK = REPO / "tests" / "fixtures" / "uvlock"
ENV_YML = "dependencies:\n  - python=3.11\n  - ipykernel\n  - numpy\n"
POSTBUILD = "#!/bin/bash\necho built\n"
IGNORED = "ignored: repo2docker reads only binder/ when it exists"
R_HINT = ("install R with an apt step (r-base, r-cran-irkernel) and add an R kernel "
          "under kernels: (see payloads/r-lab)")
SETUP_PY = "from setuptools import setup\nsetup(name='demo', version='0.1')\n"
PYPROJECT = ("[build-system]\nrequires = ['setuptools']\n"
             "build-backend = 'setuptools.build_meta'\n"
             "[project]\nname = 'demo'\nversion = '0.1'\ndependencies = ['six']\n")
PIPFILE = '[packages]\nsix = "*"\n[dev-packages]\npytest = "*"\n'
SIX_HASHES = [
    "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
    "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"]
PIPFILE_LOCK = json.dumps({
    "_meta": {"hash": {"sha256": "0" * 64}, "pipfile-spec": 6,
              "requires": {"python_version": "3.13"},
              "sources": [{"name": "pypi", "url": "https://pypi.org/simple",
                           "verify_ssl": True}]},
    "default": {"six": {"hashes": SIX_HASHES, "index": "pypi",
                        "version": "==1.17.0"}},
    "develop": {"six": {"hashes": SIX_HASHES, "index": "pypi",
                        "version": "==1.17.0"}}}, indent=4)
START = '#!/bin/bash\nexport DEMO=1\nexec "$@"\n'


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nubladobuild", *args],
                          capture_output=True, text=True, cwd=REPO, check=False,
                          env=dict(os.environ), timeout=120)


def repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def no_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry as it is before the apt kind lands."""
    monkeypatch.setattr(init_mod, "KINDS",
                        {k: v for k, v in KINDS.items() if k != "apt"})


@pytest.fixture
def with_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry once the apt kind lands (the schema check is skipped)."""
    monkeypatch.setattr(init_mod, "KINDS", {**KINDS, "apt": KINDS["pip"]})
    monkeypatch.setattr(init_mod, "_validate", lambda payload, directory: None)


def payload_of(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / "payload.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_binder_dir_wins_over_root_files(tmp_path: Path, no_apt: None) -> None:
    root = repo(tmp_path / "My_Repo.git", {
        "binder/environment.yml": ENV_YML, "binder/postBuild": POSTBUILD,
        "requirements.txt": "numpy\n", "setup.py": "", "postBuild": POSTBUILD})
    result = plan_init(root)
    assert result.config_dir == "binder"
    assert result.payload == {
        "name": "my-repo-git",
        "description": "Made by nublado-build init from the repo2docker files in "
                       "binder/",
        "install": [{"conda": {"environment": "binder/environment.yml"}},
                    {"script": {"path": "binder/postBuild",
                                "prefix": "/opt/my-repo-git"}}],
        "kernel": {"name": "my-repo-git", "display_name": "My_Repo.git"},
    }
    assert [(m.file, m.kind) for m in result.mapped] == [
        ("binder/environment.yml", "conda"), ("binder/postBuild", "script")]
    assert "runs as root at build time with PAYLOAD_PREFIX=/opt/my-repo-git" \
        in result.mapped[1].note
    assert result.not_mapped == (
        NotMapped("requirements.txt", IGNORED), NotMapped("postBuild", IGNORED),
        NotMapped("setup.py", IGNORED))
    write_payload(result)
    loaded = load_payload(root)
    assert loaded.model.kernel_python == "/opt/conda/envs/my-repo-git/bin/python"
    assert [s.kind for s in loaded.model.steps()] == ["conda", "script"]


def test_exact_yaml_for_root_layout(tmp_path: Path, no_apt: None) -> None:
    root = repo(tmp_path / "demo", {"requirements.txt": "numpy\n",
                                    "postBuild": "echo no shebang\n"})
    result = plan_init(root)
    assert result.config_dir == ""
    assert result.text == """\
# Made by `nublado-build init` from the repo2docker files in the repository root:
#   requirements.txt, postBuild
# Check:
#   - requirements.txt: a venv made with the base image's python3; ipykernel is \
added when missing
#   - postBuild: runs as root at build time with PAYLOAD_PREFIX=/opt/demo, not as \
the notebook user inside the environment as repo2docker runs it; check what it \
writes where
# Then run `nublado-build validate` on this directory.
name: demo
description: Made by nublado-build init from the repo2docker files in the \
repository root
install:
- pip:
    requirements: requirements.txt
- script:
    path: postBuild
    prefix: /opt/demo
kernel:
  name: demo
  display_name: demo
"""
    write_payload(result)
    loaded = load_payload(root)
    assert loaded.model.kernel_python == "/opt/payload/venv/bin/python"


def test_dot_binder(tmp_path: Path, no_apt: None) -> None:
    root = repo(tmp_path / "r", {".binder/requirements.txt": "numpy\n",
                                 "environment.yml": ENV_YML})
    result = plan_init(root)
    assert result.config_dir == ".binder"
    assert result.payload["install"] == [
        {"pip": {"requirements": ".binder/requirements.txt"}}]
    assert result.not_mapped == (NotMapped(
        "environment.yml", "ignored: repo2docker reads only .binder/ when it exists"),)
    write_payload(result)
    assert load_payload(root).model.name == "r"


def test_binder_and_dot_binder_refused(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"binder/requirements.txt": "x\n",
                                 ".binder/requirements.txt": "x\n"})
    with pytest.raises(InputError, match=r"has both binder/ and \.binder/"):
        plan_init(root)


def test_requirements_apt_runtime_without_apt_kind(tmp_path: Path,
                                                   no_apt: None) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "numpy\n",
                                 "apt.txt": "curl\n", "runtime.txt": "python-3.11\n"})
    result = plan_init(root)
    assert result.payload["install"] == [
        {"pip": {"requirements": "requirements.txt", "python": "python3.11"}}]
    assert result.mapped[-1] == Mapped(
        "runtime.txt", "pip.python", "python3.11 makes the venv; validate and build "
        "check that the base image has it")
    assert result.not_mapped == (
        NotMapped("apt.txt", "Debian packages (the apt kind) are not supported "
                  "by this nublado-build"),)
    write_payload(result)
    assert load_payload(root).model.name == "r"


def test_requirements_apt_runtime_with_apt_kind(tmp_path: Path,
                                                with_apt: None) -> None:
    root = repo(tmp_path / "r", {"binder/requirements.txt": "numpy\n",
                                 "binder/apt.txt": "curl\n",
                                 "binder/runtime.txt": "r-4.3-2024-01-01\n"})
    result = plan_init(root)
    assert result.payload["install"] == [
        {"apt": {"file": "binder/apt.txt"}},
        {"pip": {"requirements": "binder/requirements.txt"}}]
    assert [(m.file, m.kind) for m in result.mapped] == [
        ("binder/apt.txt", "apt"), ("binder/requirements.txt", "pip")]
    assert result.not_mapped == (NotMapped(
        "binder/runtime.txt", "asks for R (r-4.3-2024-01-01), which init does not "
        "map: " + R_HINT),)
    assert "- apt:\n    file: binder/apt.txt\n- pip:" in result.text


def test_conda_runtime_and_ignored_requirements(tmp_path: Path, no_apt: None) -> None:
    root = repo(tmp_path / "r", {"environment.yml": ENV_YML,
                                 "requirements.txt": "x\n", "Pipfile": "",
                                 "runtime.txt": "python-3.10"})
    result = plan_init(root)
    assert result.payload["install"] == [{"conda": {"environment": "environment.yml"}}]
    assert result.not_mapped == (
        NotMapped("Pipfile", "ignored: repo2docker uses environment.yml when it "
                  "exists"),
        NotMapped("requirements.txt", "ignored: repo2docker uses environment.yml "
                  "when it exists"),
        NotMapped("runtime.txt", "asks for Python 3.10: the conda environment's "
                  "own Python is used: pin python=3.10 in environment.yml"),
    )


def test_unsupported_files_listed(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "x\n", "Dockerfile": "",
                                 "install.R": "", "DESCRIPTION": "", "REQUIRE": "",
                                 "Project.toml": "", "default.nix": ""})
    result = plan_init(root)
    assert result.not_mapped == (
        NotMapped("Dockerfile", "a whole Dockerfile is not supported (repo2docker "
                  "would build it instead of the other files); port its RUN, COPY "
                  "and ENV lines to a dockerfile fragment step"),
        NotMapped("install.R", "R packages from install.R are not installed by "
                  f"init: {R_HINT}, then install the packages with Debian's "
                  "r-cran-* packages or a script step running install.R"),
        NotMapped("Project.toml", "Julia environments are not supported"),
        NotMapped("REQUIRE", "Julia environments are not supported"),
        NotMapped("default.nix", "Nix environments are not supported"),
        NotMapped("DESCRIPTION", "an R package (DESCRIPTION) is not installed by "
                  f"init: {R_HINT}"))
    assert "# Not mapped:\n#   - Dockerfile: a whole Dockerfile" in result.text


def test_nothing_to_map_lists_what_was_found(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"Dockerfile": "", "postBuild": POSTBUILD})
    with pytest.raises(InputError) as info:
        plan_init(root)
    message = info.value.message
    assert "nothing gives the kernel an environment: init needs an environment.yml, " \
        "a Pipfile.lock or Pipfile, a requirements.txt, or a Python project " \
        "(setup.py, or pyproject.toml with [project] and [build-system]) in the " \
        "repository root" in message
    assert "\n  not mapped: Dockerfile: a whole Dockerfile" in message
    assert message.endswith("\n  found: postBuild (script)")


def test_pipfile_lock_preferred_over_pipfile(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"Pipfile": PIPFILE, "Pipfile.lock": PIPFILE_LOCK,
                                 "requirements.txt": "x\n", "setup.py": "",
                                 "runtime.txt": "python-3.12", "postBuild": POSTBUILD})
    result = plan_init(root)
    assert result.payload["install"] == [
        {"pip": {"pipfile_lock": "Pipfile.lock", "groups": ["develop"]}},
        {"script": {"path": "postBuild", "prefix": "/opt/r"}}]
    assert result.mapped[0] == Mapped(
        "Pipfile.lock", "pip", "a venv made with the base image's python3; [default] "
        "and [develop] installed hash-checked, as locked, as repo2docker's pipenv "
        "install --dev does")
    assert result.not_mapped == (
        NotMapped("Pipfile", "ignored: Pipfile.lock is installed instead, as "
                  "repo2docker does (pipenv --ignore-pipfile)"),
        NotMapped("requirements.txt", "ignored: repo2docker uses Pipfile.lock when "
                  "it exists"),
        NotMapped("setup.py", "ignored: repo2docker's Pipfile.lock build does not "
                  "install the repository itself"),
        NotMapped("runtime.txt", "asks for Python 3.12: repo2docker takes a "
                  "Pipfile's Python from its [requires]; the pip step uses the base "
                  "image's python3"))


def test_pipfile_alone_with_and_without_dev_packages(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"binder/Pipfile": PIPFILE})
    result = plan_init(root)
    assert result.payload["install"] == [
        {"pip": {"pipfile": "binder/Pipfile", "groups": ["dev-packages"]}}]
    assert result.mapped[0].note == (
        "a venv made with the base image's python3; [packages] and [dev-packages] "
        "installed unlocked, resolved at build time (commit a Pipfile.lock to pin "
        "it), as repo2docker's pipenv install --dev does")
    (root / "binder/Pipfile").write_text('[packages]\nsix = "*"\n[dev-packages]\n')
    assert plan_init(root).payload["install"] == [
        {"pip": {"pipfile": "binder/Pipfile"}}]


def test_environment_yml_wins_over_pipfile_requirements_and_project(
        tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"environment.yaml": ENV_YML, "Pipfile": PIPFILE,
                                 "requirements.txt": "x\n", "setup.py": "",
                                 "uv.lock": "", "pyproject.toml": PYPROJECT})
    result = plan_init(root)
    assert result.payload["install"] == [
        {"conda": {"environment": "environment.yaml"}}]
    ignored = "ignored: with environment.yaml repo2docker does not install the " \
        "repository itself"
    assert result.not_mapped == (
        NotMapped("Pipfile", "ignored: repo2docker uses environment.yaml when it "
                  "exists"),
        NotMapped("requirements.txt", "ignored: repo2docker uses environment.yaml "
                  "when it exists"),
        NotMapped("setup.py", ignored), NotMapped("pyproject.toml", ignored),
        NotMapped("uv.lock", ignored))


def test_requirements_then_project(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "six\n", "setup.py": SETUP_PY,
                                 "pyproject.toml": PYPROJECT})
    result = plan_init(root)
    assert result.payload["install"] == [
        {"pip": {"requirements": "requirements.txt"}}, {"pip": {"project": "."}}]
    assert result.mapped[1] == Mapped(
        "setup.py", "pip", "the repository installed as a Python project (pip "
        "install .), as repo2docker does; copied to /opt/payload/project in the "
        "image")
    assert result.not_mapped == ()


@pytest.mark.parametrize("line", [".", "-e .", "-e .[plot]", "--editable=.", "./",
                                  ". # the repo"])
def test_requirements_installing_the_project_need_no_project_step(
        tmp_path: Path, line: str) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": f"six\n{line}\n",
                                 "setup.py": SETUP_PY})
    result = plan_init(root)
    assert result.payload["install"] == [{"pip": {"requirements": "requirements.txt"}}]
    assert result.not_mapped == (NotMapped(
        "setup.py", "requirements.txt installs the repository itself already (a . "
        "line)"),)


@pytest.mark.parametrize(("files", "mapped_file"), [
    ({"setup.py": SETUP_PY}, "setup.py"),
    ({"pyproject.toml": PYPROJECT}, "pyproject.toml"),
])
def test_project_alone(tmp_path: Path, files: dict[str, str],
                       mapped_file: str) -> None:
    root = repo(tmp_path / "r", {**files, "runtime.txt": "python-3.13.1\n"})
    result = plan_init(root)
    assert result.payload["install"] == [
        {"pip": {"project": ".", "python": "python3.13"}}]
    assert [(m.file, m.kind) for m in result.mapped] == [
        (mapped_file, "pip"), ("runtime.txt", "pip.python")]


def test_project_in_binder_layout_is_not_installed(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"binder/requirements.txt": "six\n",
                                 "setup.py": SETUP_PY})
    assert plan_init(root).payload["install"] == [
        {"pip": {"requirements": "binder/requirements.txt"}}]


def test_pyproject_without_build_system(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "six\n",
                                 "pyproject.toml": "[project]\nname = 'x'\n"})
    result = plan_init(root)
    assert result.payload["install"] == [{"pip": {"requirements": "requirements.txt"}}]
    assert result.not_mapped == (NotMapped(
        "pyproject.toml", "not a Python project repo2docker installs (it needs "
        "[project] and [build-system]); for its dependencies only, add a pip step "
        "`pyproject: pyproject.toml`"),)
    (root / "requirements.txt").unlink()
    with pytest.raises(InputError, match="nothing gives the kernel an environment"):
        plan_init(root)


def test_uv_lock_with_pyproject(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"uv.lock": "version = 1\n",
                                 "pyproject.toml": PYPROJECT,
                                 "requirements.txt": "six\n"})
    result = plan_init(root)
    assert result.payload["install"] == [{"pip": {"uv_lock": "uv.lock"}},
                                         {"pip": {"project": "."}}]
    assert result.mapped[0] == Mapped(
        "uv.lock", "pip", "repo2docker does not read uv.lock; nublado-build installs "
        "the locked dependencies (uv export --frozen, hash-checked) into a venv made "
        "with the base image's python3")
    assert result.not_mapped == (NotMapped(
        "requirements.txt", "ignored: uv.lock pins the project's environment; add a "
        "pip step for it if it holds more"),)
    # a pyproject.toml that is no package: the lock only
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '1'\n")
    assert plan_init(root).payload["install"] == [{"pip": {"uv_lock": "uv.lock"}}]


def test_uv_lock_without_pyproject(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"uv.lock": "", "requirements.txt": "six\n"})
    result = plan_init(root)
    assert result.payload["install"] == [{"pip": {"requirements": "requirements.txt"}}]
    assert result.not_mapped == (NotMapped("uv.lock", "uv.lock without "
                                           "pyproject.toml: uv needs both"),)


def test_start_maps_to_the_start_hook(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"binder/requirements.txt": "six\n",
                                 "binder/start": START})
    note = "runs at lab start, before the server, as the lab user, at most 60 s; " \
        'it must end with exec "$@"'
    result = plan_init(root)
    assert result.payload["start"] == {"script": "binder/start"}
    assert list(result.payload) == ["name", "description", "install", "start",
                                    "kernel"]
    assert result.mapped[-1] == Mapped(
        "binder/start", "start", f"{note}; it is not executable in the repository: "
        "run `chmod +x binder/start` (repo2docker and nublado-build both install it "
        "executable, so it runs either way)")
    (root / "binder/start").chmod(0o755)
    result = plan_init(root)
    assert result.mapped[-1] == Mapped("binder/start", "start", note)
    assert "\nstart:\n  script: binder/start\nkernel:\n" in result.text


@pytest.mark.parametrize(("runtime", "reason"), [
    ("python-3", "'python-3' asks for Python 3 without a minor version: pip steps "
                 "use the base image's python3 already"),
    ("julia-1.9", "'julia-1.9' is not a runtime init knows (python-3.X)"),
    ("r-2024-01-01", "asks for R (r-2024-01-01), which init does not map: "
                     "install R with an apt step (r-base, r-cran-irkernel) and add an "
                     "R kernel under kernels: (see payloads/r-lab)"),
])
def test_runtime_not_mapped(tmp_path: Path, runtime: str, reason: str) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "six\n",
                                 "runtime.txt": runtime})
    result = plan_init(root)
    assert result.payload["install"] == [{"pip": {"requirements": "requirements.txt"}}]
    assert result.not_mapped == (NotMapped("runtime.txt", reason),)


def test_runtime_python_goes_on_every_pip_step(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "six\n", "setup.py": SETUP_PY,
                                 "runtime.txt": "python-3.5\n"})
    assert plan_init(root).payload["install"] == [
        {"pip": {"requirements": "requirements.txt", "python": "python3.5"}},
        {"pip": {"project": ".", "python": "python3.5"}}]
    proc = cli("init", str(root))
    assert proc.returncode == 0, proc.stderr
    # validate refuses what cannot exist: written as asked, reported at once
    assert "install[0].pip.python: python3.5 is older than Python 3.10" in proc.stdout


def test_empty_repo_says_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        plan_init(tmp_path)
    assert "(looked for binder/ or .binder/, then environment.yml, " \
        "environment.yaml, Pipfile, Pipfile.lock, requirements.txt, apt.txt, " \
        "postBuild, start, runtime.txt, Dockerfile, install.R, Project.toml, " \
        "REQUIRE, default.nix, setup.py, pyproject.toml, uv.lock, DESCRIPTION)" \
        in info.value.message


@pytest.mark.parametrize(("raw", "name"), [
    ("My_Repo.git", "my-repo-git"),
    ("--Foo  Bar--", "foo-bar"),
    ("123", "123"),
    ("a" * 70, "a" * 63),
    ("x" * 62 + "_y", "x" * 62),
    ("Ünïcode-lab", "n-code-lab"),
])
def test_derive_name(raw: str, name: str) -> None:
    assert derive_name(raw) == name


@pytest.mark.parametrize("raw", ["___", "日本", "nublado-jupyterlab-base"])
def test_derive_name_refused(raw: str) -> None:
    with pytest.raises(InputError, match="--name"):
        derive_name(raw)


def test_name_option_and_quoted_numeric_name(tmp_path: Path, no_apt: None) -> None:
    root = repo(tmp_path / "123", {"requirements.txt": "x\n"})
    result = plan_init(root)
    assert "name: '123'\n" in result.text
    write_payload(result)
    assert load_payload(root).model.name == "123"
    assert plan_init(root, "lab-x").payload["kernel"] == {
        "name": "lab-x", "display_name": "123"}
    with pytest.raises(InputError, match="--name 'Lab X' is not valid"):
        plan_init(root, "Lab X")


def test_loader_suggests_init(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {".binder/requirements.txt": "x\n"})
    assert repo2docker_files(root) == [".binder/requirements.txt"]
    proc = cli("validate", str(root))
    assert proc.returncode == 2
    assert f"no payload.yaml in {root}. Create one (see the README for an " \
        f"example). It holds repo2docker files (.binder/requirements.txt): " \
        f"`nublado-build init {root}` writes a payload.yaml from them." \
        in proc.stderr
    plain = cli("validate", str(tmp_path))
    assert plain.stderr.rstrip().endswith("(see the README for an example).")


@pytest.mark.parametrize("command", [("build",), ("render", "-o", "OUT")])
def test_build_and_render_suggest_init(tmp_path: Path, command: tuple[str, ...]
                                       ) -> None:
    root = repo(tmp_path / "r", {"Pipfile.lock": PIPFILE_LOCK, "setup.py": SETUP_PY,
                                 "start": START})
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command[1:]]
    proc = cli(command[0], str(root), *args)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"nublado-build: {root}/payload.yaml: no payload.yaml in {root}. Create one "
        "(see the README for an example). It holds repo2docker files (Pipfile.lock, "
        f"start, setup.py): `nublado-build init {root}` writes a payload.yaml from "
        "them.\n")
    assert not (tmp_path / "out").exists()


def test_cli_writes_refuses_and_forces(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "x\n", "pyproject.toml": ""})
    proc = cli("init", str(root))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"wrote {root}/payload.yaml\n"
        "mapped: requirements.txt -> pip (a venv made with the base image's "
        "python3; ipykernel is added when missing)\n"
        "not mapped: pyproject.toml: not a Python project repo2docker installs (it "
        "needs [project] and [build-system]); for its dependencies only, add a pip "
        "step `pyproject: pyproject.toml`\n")
    assert payload_of(root)["install"] == [
        {"pip": {"requirements": "requirements.txt"}}]
    again = cli("init", str(root))
    assert again.returncode == 2
    assert "payload.yaml: already exists; init does not overwrite it. Pass " \
        "--force" in again.stderr
    assert "Traceback" not in again.stderr
    (root / "payload.yaml").write_text("old\n")
    forced = cli("init", str(root), "--force", "--name", "other")
    assert forced.returncode == 0, forced.stderr
    assert payload_of(root)["name"] == "other"
    assert cli("validate", str(root)).returncode == 0


def test_cli_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "x\n"})
    proc = cli("init", str(root), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert not (root / "payload.yaml").exists()
    assert yaml.safe_load(proc.stdout)["install"] == [
        {"pip": {"requirements": "requirements.txt"}}]
    assert proc.stderr.startswith("mapped: requirements.txt -> pip")
    (root / "payload.yaml").write_text("old\n")
    assert cli("init", str(root), "--dry-run").returncode == 0  # no --force needed
    assert (root / "payload.yaml").read_text() == "old\n"


def test_cli_json(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"environment.yml": "dependencies: [numpy]\n",
                                 "start": "#!/bin/sh\nexec \"$@\"\n"})
    proc = cli("init", str(root), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] is True and data["written"] is True
    assert data["config_dir"] == ""
    assert data["mapped"] == [
        {"file": "environment.yml", "kind": "conda",
         "note": "the environment's own Python runs the kernel; list python and "
                 "ipykernel in it"},
        {"file": "start", "kind": "start",
         "note": "runs at lab start, before the server, as the lab user, at most "
                 '60 s; it must end with exec "$@"; it is not executable in the '
                 "repository: run `chmod +x start` (repo2docker and nublado-build "
                 "both install it executable, so it runs either way)"}]
    assert data["not_mapped"] == []
    assert data["payload"]["install"] == [
        {"conda": {"environment": "environment.yml"}}]
    assert data["payload"]["start"] == {"script": "start"}
    # repo2docker adds python and ipykernel itself; nublado-build needs them listed
    assert [p.split(": ", 2)[-1] for p in data["problems"]] == [
        "'environment.yml' does not list python, which the kernel runs; add it to "
        "dependencies",
        "'environment.yml' lacks ipykernel, which the kernel needs; add it to "
        "dependencies"]
    dry = json.loads(cli("init", str(root), "--json", "--dry-run", "--force").stdout)
    assert dry["written"] is False and dry["yaml"].startswith("# Made by")


def test_cli_errors_exit_2(tmp_path: Path) -> None:
    empty = cli("init", str(tmp_path), "--json")
    assert empty.returncode == 2
    assert json.loads(empty.stdout)["ok"] is False
    assert "nothing gives the kernel an environment" in empty.stderr
    missing = cli("init", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "directory does not exist" in missing.stderr
    bad = cli("init", str(repo(tmp_path / "r", {"requirements.txt": "x\n"})),
              "--name", "Bad_Name")
    assert bad.returncode == 2
    assert "--name 'Bad_Name' is not valid" in bad.stderr
    for proc in (empty, missing, bad):
        assert "Traceback" not in proc.stderr


def test_apt_payload_loads_with_the_real_apt_kind(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"binder/requirements.txt": "numpy\n",
                                 "binder/apt.txt": "curl\n# a comment\n"})
    write_payload(plan_init(root))
    loaded = load_payload(root)
    assert [s.kind for s in loaded.model.steps()] == ["apt", "pip"]


@pytest.mark.parametrize(("files", "kinds"), [
    ({"requirements.txt": "six\n", "setup.py": SETUP_PY, "apt.txt": "curl\n",
      "postBuild": POSTBUILD, "start": START, "runtime.txt": "python-3.13"},
     ["apt", "pip", "pip", "script"]),
    ({"Pipfile.lock": PIPFILE_LOCK, "Pipfile": PIPFILE}, ["pip"]),
    ({"binder/Pipfile": PIPFILE, "binder/start": START}, ["pip"]),
    ({"pyproject.toml": PYPROJECT}, ["pip"]),
    ({"uv.lock": (UVLOCK / "uv.lock").read_text(),
      "pyproject.toml": (UVLOCK / "pyproject.toml").read_text()}, ["pip"]),
])
def test_written_payloads_load(tmp_path: Path, files: dict[str, str],
                               kinds: list[str]) -> None:
    """What init writes for each source the loader accepts as it is."""
    root = repo(tmp_path / "r", files)
    write_payload(plan_init(root))
    assert check_written(root) == []
    loaded = load_payload(root)
    assert [s.kind for s in loaded.model.steps()] == kinds
    start = [f for f in files if f.endswith("start")]
    assert loaded.start_script == (files[start[0]].encode() if start else None)
