"""Schema errors and rendering of the conda, script, dockerfile, transplant kinds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nubladobuild.errors import PayloadInvalid
from nubladobuild.loader import load_payload
from tests.unit.helpers import dockerfile_of, files_of, plan_of

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ("conda-demo", "script-demo", "fragment-demo", "transplant-demo")


def write_payload(tmp_path: Path, install: str, files: dict[str, str] | None = None,
                  kernel: str = "kernel: {name: k, display_name: K}\n") -> Path:
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (tmp_path / "payload.yaml").write_text(f"name: demo\ninstall:\n{install}{kernel}")
    return tmp_path


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(directory)
    return [p.render() for p in info.value.problems]


ENV_OK = "dependencies: [python=3.11, ipykernel]\n"


@pytest.mark.parametrize(("install", "files", "needle"), [
    ("  - script: {path: install.sh}\n", {"install.sh": ""},
     "install[0].script.prefix: required field is missing"),
    ("  - script: {path: install.sh, prefix: /usr/local/share/jupyterlab/x, "
     "python: /x/bin/python}\n", {"install.sh": ""}, "is the JupyterLab tree"),
    ("  - script: {path: install.sh, prefix: /opt/x, env: {1BAD: x}, "
     "python: /x/bin/python}\n", {"install.sh": ""}, "install[0].script.env"),
    ("  - script: {path: install.sh, prefix: /opt/x}\n", {"install.sh": ""},
     "kernel.python cannot be derived"),
    ("  - script: {path: nope.sh, prefix: /opt/x, python: /x/bin/python}\n", {},
     "file 'nope.sh' does not exist"),
    ("  - transplant: {image: 'Bad Image', paths: [/opt/x], python: /x/bin/p}\n",
     {}, "install[0].transplant.image"),
    ("  - transplant: {image: reg/img:1, paths: [], python: /x/bin/p}\n", {},
     "install[0].transplant.paths"),
    ("  - transplant: {image: reg/img:1, paths: [/usr], python: /x/bin/p}\n", {},
     "is a system directory"),
    ("  - dockerfile: {path: /abs/fragment}\n", {}, "install[0].dockerfile.path"),
    ("  - conda: {environment: env.yml}\n", {"env.yml": "dependencies: [numpy]\n"},
     "does not list python"),
    ("  - conda: {environment: env.yml}\n", {"env.yml": "dependencies: [python]\n"},
     "lacks ipykernel"),
    ("  - conda: {environment: env.yml}\n", {"env.yml": "dependencies: python\n"},
     "'dependencies' must be a list"),
    ("  - conda: {environment: env.yml, lock: lock.yml}\n",
     {"env.yml": ENV_OK, "lock.yml": "not: a lock\n"},
     "install[0].conda.lock"),
    ("  - conda: {environment: env.yml, prefix: /opt}\n", {"env.yml": ENV_OK},
     "is a system directory"),
    ("  - conda: {environment: env.yml, bogus: 1}\n", {"env.yml": ENV_OK},
     "unknown field 'bogus'"),
])
def test_schema_and_file_errors(tmp_path: Path, install: str,
                                files: dict[str, str], needle: str) -> None:
    found = problems_of(write_payload(tmp_path, install, files))
    assert any(needle in p for p in found), found
    assert all("payload.yaml" in p for p in found)


def test_pip_only_in_environment_pip_section_satisfies_kernel(tmp_path: Path) -> None:
    env = "dependencies:\n  - python=3.11\n  - pip:\n    - ipykernel==7.0\n"
    load_payload(write_payload(tmp_path, "  - conda: {environment: env.yml}\n",
                               {"env.yml": env}))


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_render_deterministically(name: str, tmp_path: Path) -> None:
    first = files_of(plan_of(REPO / "payloads" / name))
    copy = tmp_path / name
    shutil.copytree(REPO / "payloads" / name, copy)
    second = files_of(plan_of(copy))
    assert first == second
    assert "# syntax" not in first["Dockerfile"][0].decode()


def dockerfile(directory: Path) -> str:
    return dockerfile_of(plan_of(directory))


def test_conda_render(tmp_path: Path) -> None:
    shutil.copytree(REPO / "payloads" / "conda-demo", tmp_path / "p")
    plan = plan_of(tmp_path / "p")
    text = dockerfile_of(plan)
    stage, final = text.split("\nFROM ${BASE_IMAGE} AS nublado-payload\n")
    assert "FROM ${BASE_IMAGE} AS conda-0" in stage
    assert "py-rattler==0.28.0" in stage
    assert "--mount=type=secret,id=ca" in stage
    assert "source=steps/00-conda/pkgs,target=/tmp/nb-conda-pkgs" in stage
    assert "--prefix /opt/conda/envs/demo" in stage
    assert 'COPY --from=conda-0 ["/opt/conda/envs/demo", "/opt/conda/envs/demo"]' \
        in final
    assert "rattler" not in final.replace("conda-0", "")
    # The kernel activates the env like `conda activate` would: variables
    # and PATH in the kernelspec, activate.d scripts in the wrapper.
    assert plan.kernel.wrapper is not None
    assert "/opt/conda/envs/demo/etc/conda/activate.d/*.sh" in plan.kernel.wrapper
    env = json.loads(plan.kernel.kernel_json)["env"]
    assert env == {"CONDA_PREFIX": "/opt/conda/envs/demo", "CONDA_DEFAULT_ENV": "demo",
                   "PATH": "/opt/conda/envs/demo/bin:${HOME}/.local/bin:${PATH}"}
    files = files_of(plan)
    assert "steps/00-conda/pkgs/README" in files
    assert "steps/00-conda/environment.yml" in files


def test_script_render_quotes_env_and_ships_payload_files(tmp_path: Path) -> None:
    directory = write_payload(
        tmp_path,
        "  - script:\n      path: bin/install.sh\n      prefix: /opt/s\n"
        "      python: /opt/s/bin/python\n"
        "      env: {B: \"x'; rm -rf / #\", A: \"$HOME\"}\n",
        {"bin/install.sh": "#!/bin/sh\n", "data/d.txt": "d", "tests/test_x.py": "",
         ".hidden": "h"},
        kernel="kernel: {name: k, display_name: K}\ntests: tests\n")
    (directory / "bin/install.sh").chmod(0o755)
    plan = plan_of(directory)
    text = dockerfile_of(plan)
    assert "run-install-script \\\n    'install[0].script' /tmp/nb-payload " \
        "bin/install.sh /opt/s \\\n    /opt/s/bin '' \\\n" \
        "    'A=$HOME' \\\n    'B=x'\"'\"'; rm -rf / #'\n" in text
    assert "target=/tmp/nb-payload,rw" in text
    files = files_of(plan)
    assert files["payload/bin/install.sh"][1] == 0o755
    assert files["payload/data/d.txt"][1] == 0o644
    assert not any("payload.yaml" in f or "tests/" in f or ".hidden" in f
                   for f in files if f.startswith("steps/"))


def test_dockerfile_render_resets_user_and_workdir(tmp_path: Path) -> None:
    directory = write_payload(
        tmp_path,
        "  - pip: {requirements: r.txt}\n  - dockerfile: {path: frag}\n"
        "  - script: {path: s.sh, prefix: /opt/s}\n",
        {"r.txt": "six\n", "frag": "WORKDIR /opt/w\nCOPY a.txt ./\nRUN ls\n",
         "s.sh": "true\n", "a.txt": "a"})
    text = dockerfile(directory)
    fragment = text.split("# install[1]: dockerfile\n")[1].split("# install[2]")[0]
    assert 'COPY ["steps/01-dockerfile/src/a.txt", "./"]' in fragment
    assert fragment.rstrip().endswith("USER root\nWORKDIR /tmp")
    # RUN lines get the read-only mounts of the lab tree before their command.
    run = fragment[fragment.index("RUN "):fragment.index("    ls\n") + 7]
    assert "from=nublado-base,source=/usr/local/share/jupyterlab/venv" in run
    assert fragment.index("WORKDIR /opt/w") < fragment.index("    ls\n")


def test_transplant_render(tmp_path: Path) -> None:
    directory = write_payload(
        tmp_path,
        "  - transplant: {image: registry.example.org/stack:w_2025_01, "
        "paths: [/opt/lsst/software/stack, /opt/extra], "
        "python: /opt/lsst/software/stack/bin/python}\n")
    text = dockerfile(directory)
    assert "FROM registry.example.org/stack:w_2025_01 AS transplant-0\n" in text
    assert ('COPY --from=transplant-0 ["/opt/lsst/software/stack", '
            '"/opt/lsst/software/stack"]') in text
    assert "build/scan-elf /opt/lsst/software/stack /opt/extra\n" in text
    assert "io.nublado.payload.python=\"/opt/lsst/software/stack/bin/python\"" in text
