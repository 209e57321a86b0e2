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
    NotMapped,
    derive_name,
    plan_init,
    repo2docker_files,
    write_payload,
)
from nubladobuild.kinds import KINDS
from nubladobuild.loader import load_payload

REPO = Path(__file__).resolve().parents[2]
ENV_YML = "dependencies:\n  - python=3.11\n  - ipykernel\n  - numpy\n"
POSTBUILD = "#!/bin/bash\necho built\n"
IGNORED = "ignored: repo2docker reads only binder/ when it exists"


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
    assert result.payload["install"] == [{"pip": {"requirements": "requirements.txt"}}]
    assert result.not_mapped == (
        NotMapped("apt.txt", "Debian packages (the apt kind) are not supported "
                  "by this nublado-build"),
        NotMapped("runtime.txt", "asks for Python 3.11: pip steps make the venv "
                  "with the base image's python3, so it is honoured only if that "
                  "is 3.11; for another Python use a conda environment"),
    )
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
        "binder/runtime.txt", "asks for R (r-4.3-2024-01-01): R is not supported"),)
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


def test_unsupported_files_listed(tmp_path: Path, no_apt: None) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "x\n", "setup.py": "",
                                 "pyproject.toml": "", "start": "", "Dockerfile": ""})
    result = plan_init(root)
    assert [n.file for n in result.not_mapped] == [
        "setup.py", "pyproject.toml", "start", "Dockerfile"]
    assert all(n.reason for n in result.not_mapped)
    assert "not supported yet (planned)" in result.not_mapped[0].reason
    assert "# Not mapped:\n#   - setup.py: installing the repository itself" \
        in result.text


def test_pipfile_only_is_nothing_to_map(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"Pipfile": "", "Pipfile.lock": "{}",
                                 "requirements.txt": "x\n", "postBuild": POSTBUILD})
    with pytest.raises(InputError) as info:
        plan_init(root)
    message = info.value.message
    assert "nothing gives the kernel an environment" in message
    assert "\n  not mapped: Pipfile: pipenv files are not supported yet" in message
    assert "\n  not mapped: requirements.txt: ignored: repo2docker uses Pipfile " \
           "when it exists" in message
    assert message.endswith("\n  found: postBuild (script)")


def test_empty_repo_says_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        plan_init(tmp_path)
    assert "(looked for binder/ or .binder/, then environment.yml, Pipfile, " \
        "Pipfile.lock, requirements.txt, apt.txt, postBuild, start, runtime.txt, " \
        "Dockerfile, install.R, Project.toml, default.nix, setup.py, " \
        "pyproject.toml)" in info.value.message


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


def test_cli_writes_refuses_and_forces(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"requirements.txt": "x\n", "pyproject.toml": ""})
    proc = cli("init", str(root))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"wrote {root}/payload.yaml\n"
        "mapped: requirements.txt -> pip (a venv made with the base image's "
        "python3; ipykernel is added when missing)\n"
        "not mapped: pyproject.toml: installing the repository itself (pip "
        "install .) is not supported yet (planned); run it from a script step\n")
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
    assert data["mapped"] == [{"file": "environment.yml", "kind": "conda",
                               "note": "the environment's own Python runs the "
                                       "kernel; list python and ipykernel in it"}]
    assert [n["file"] for n in data["not_mapped"]] == ["start"]
    assert data["payload"]["install"] == [
        {"conda": {"environment": "environment.yml"}}]
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


@pytest.mark.skipif("apt" not in KINDS, reason="the apt kind has not landed yet")
def test_apt_payload_loads_with_the_real_apt_kind(tmp_path: Path) -> None:
    root = repo(tmp_path / "r", {"binder/requirements.txt": "numpy\n",
                                 "binder/apt.txt": "curl\n# a comment\n"})
    write_payload(plan_init(root))
    loaded = load_payload(root)
    assert [s.kind for s in loaded.model.steps()] == ["apt", "pip"]
