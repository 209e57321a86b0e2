"""The payload boundary, at plan and render time: secrets by grant, literal
start-up values, masking, bounds and the render directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nubladobuild.errors import InputError, PayloadInvalid
from nubladobuild.loader import load_payload
from nubladobuild.plan import check_grants
from nubladobuild.render import BUILD_LABELS, MARKER
from nubladobuild.secrets import BuildSecrets, mask_secrets, mask_url
from tests.unit.helpers import dockerfile_of, plan_of, render_to

REPO = Path(__file__).resolve().parents[2]
SCRIPT_DEMO = REPO / "payloads" / "script-demo"


def script_payload(tmp_path: Path, secrets: str = "") -> Path:
    (tmp_path / "install.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "payload.yaml").write_text(
        "name: grant\ninstall:\n  - script: {path: install.sh, prefix: /opt/g, "
        f"python: /opt/g/bin/python{secrets}}}\n"
        "kernel: {name: g, display_name: G}\n")
    return tmp_path


def script_run(dockerfile: str) -> str:
    start = dockerfile.index("# install[0]: script")
    return dockerfile[start:dockerfile.index("\n\n", start + 30)]


def test_script_without_secrets_mounts_none(tmp_path: Path) -> None:
    run = script_run(dockerfile_of(plan_of(script_payload(tmp_path))))
    assert "type=secret" not in run
    check_grants(plan_of(tmp_path), [])  # nothing asked, nothing needed


def test_script_secrets_need_the_operators_grant(tmp_path: Path) -> None:
    plan = plan_of(script_payload(tmp_path, ", secrets: [index]"))
    with pytest.raises(InputError) as info:
        check_grants(plan, ["ca"])
    assert info.value.exit_code == 2
    assert "install[0].script.secrets asks for index" in info.value.message
    assert "--allow-secret index" in info.value.message
    check_grants(plan, ["index"])
    run = script_run(dockerfile_of(plan))
    assert re.findall(r"type=secret,id=(\w+)", run) == ["pip_index_url",
                                                        "pip_extra_index_url"]


def test_example_script_payload_asks_for_both(tmp_path: Path) -> None:
    plan = plan_of(SCRIPT_DEMO)
    with pytest.raises(InputError):
        check_grants(plan, [])
    check_grants(plan, ["ca", "index"])


def test_pip_steps_always_get_the_secrets() -> None:
    dockerfile = dockerfile_of(plan_of(REPO / "payloads" / "scipy-lab"))
    run = dockerfile[dockerfile.index("install-pip") - 400:dockerfile.index(
        "install-pip")]
    assert set(re.findall(r"type=secret,id=(\w+)", run)) == {
        "ca", "pip_index_url", "pip_extra_index_url"}


@pytest.mark.parametrize("name", ["PIP_INDEX_URL", "pip_extra_index_url", "UV_INDEX",
                                  "SSL_CERT_FILE", "BASH_ENV", "LD_PRELOAD",
                                  "NUBLADO_DEFAULT_KERNEL", "LAB_USER"])
def test_script_env_may_not_redirect_index_or_secrets(tmp_path: Path,
                                                      name: str) -> None:
    (tmp_path / "install.sh").write_text("true\n")
    (tmp_path / "payload.yaml").write_text(
        "name: env\ninstall:\n  - script: {path: install.sh, prefix: /opt/e, "
        f"python: /opt/e/bin/python, env: {{{name}: x}}}}\n"
        "kernel: {name: e, display_name: E}\n")
    with pytest.raises(PayloadInvalid) as info:
        load_payload(tmp_path)
    assert f"install[0].script.env.{name}" in info.value.problems[0].location


def test_user_entrypoint_cmd_and_labels_are_last_and_literal() -> None:
    dockerfile = dockerfile_of(plan_of(REPO / "payloads" / "fragment-demo"))
    tail = dockerfile[dockerfile.rindex("FROM nublado-payload"):]
    lines = [ln for ln in tail.splitlines() if ln and not ln.startswith("#")]
    assert lines[-4:] == ["WORKDIR /tmp", 'ENTRYPOINT ["tini", "--"]',
                          'CMD ["/usr/local/share/jupyterlab/runlab"]',
                          "USER 1000:100"]
    # The only substitutions: the build-time labels (creation time, tag),
    # from build arguments the stage declares itself (no payload step runs
    # in this stage, and nublado-build alone passes them).
    allowed = {f'{name}="${{{arg}}}"' for name, arg in BUILD_LABELS}
    words = " ".join(lines).replace("\\", " ").split()
    assert [w for w in words if "${" in w and w not in allowed] == []
    assert [ln for ln in lines if ln.startswith("ARG ")] == [
        f"ARG {arg}=" for _, arg in BUILD_LABELS]


def test_guard_runs_in_its_own_stage_from_the_base() -> None:
    dockerfile = dockerfile_of(plan_of(REPO / "payloads" / "scipy-lab"))
    guard = dockerfile[dockerfile.index("AS nublado-guard"):
                       dockerfile.index("FROM nublado-payload")]
    assert "FROM ${BASE_IMAGE} AS nublado-guard" in dockerfile
    assert "from=nublado-payload,source=/,target=/mnt/nublado-payload" in guard
    assert "/usr/local/share/jupyterlab/venv/bin/python3 -I" in guard
    assert "COPY --from=nublado-guard" in dockerfile


@pytest.mark.parametrize(("text", "masked"), [
    ("https://user:pass@index.example/simple", "https://***@index.example/simple"),
    ("see http://tok@h/x and https://a:b@c/d", "see http://***@h/x and "
     "https://***@c/d"),
    ("no credentials https://h/x", "no credentials https://h/x"),
])
def test_credentials_are_masked(text: str, masked: str) -> None:
    assert mask_url(text) == masked


def test_exact_secret_values_are_masked() -> None:
    secrets = BuildSecrets(index_url="https://alice:s3cret@pypi.example/simple")
    line = "pip: Looking in indexes: https://alice:s3cret@pypi.example/simple"
    assert "s3cret" not in mask_secrets(line, secrets)


def test_render_refuses_foreign_directory_and_file(tmp_path: Path) -> None:
    plan = plan_of(REPO / "payloads" / "scipy-lab")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("key")
    with pytest.raises(InputError, match="not a context rendered by nublado-build"):
        render_to(plan, home)
    assert (home / ".ssh" / "id_rsa").read_text() == "key"
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        render_to(plan, afile)
    out = render_to(plan, tmp_path / "ctx")
    assert (out / MARKER).is_file()
    render_to(plan, out)  # a previous render is replaced


def test_reserved_payload_names(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("six\n")
    (tmp_path / "payload.yaml").write_text(
        "name: nublado-jupyterlab-base\ninstall:\n  - pip: {requirements: r.txt}\n"
        "kernel: {name: k, display_name: K}\n")
    with pytest.raises(PayloadInvalid) as info:
        load_payload(tmp_path)
    assert "reserved" in info.value.problems[0].message


def test_generated_paths_are_all_the_guard_allows() -> None:
    plan = plan_of(REPO / "payloads" / "scipy-lab")
    assert plan.generated == (
        "/usr/local/share/jupyter/kernels/scipy/",
        "/usr/local/share/jupyterlab/kernels/scipy/",
        "/usr/local/share/jupyterlab/shell.d/50-scipy-lab.sh",
        "/usr/local/share/jupyterlab/versions-installed/payload-scipy-lab.txt")
    spec = json.loads(plan.kernel.kernel_json)
    assert spec["env"]["PATH"].startswith("/opt/payload/venv/bin:${HOME}/.local/bin")
