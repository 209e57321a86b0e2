"""Rendering: deterministic contexts, kernel specs, wrappers and shell setup."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from tests.unit.helpers import files_of, plan_of, render_to

REPO = Path(__file__).resolve().parents[2]
SCIPY = REPO / "payloads" / "scipy-lab"


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            + oct(p.stat().st_mode) for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_is_deterministic(tmp_path: Path) -> None:
    one = render_to(plan_of(SCIPY), tmp_path / "one")
    two = render_to(plan_of(SCIPY), tmp_path / "two")
    assert tree_digest(one) == tree_digest(two)
    assert (one / "kernel/launch").stat().st_mode & 0o111


def test_dockerfile_shape() -> None:
    files = files_of(plan_of(SCIPY, "example/base:1"))
    dockerfile = files["Dockerfile"][0].decode()
    assert "# syntax" not in dockerfile
    assert "ARG BASE_IMAGE=example/base:1" in dockerfile
    assert "--mount=type=secret,id=ca" in dockerfile
    assert dockerfile.index("install-pip") < dockerfile.index("AS nublado-guard")
    # The user, entrypoint and command are literal values, last.
    assert dockerfile.rstrip().endswith('ENTRYPOINT ["tini", "--"]\n'
                                        'CMD ["/usr/local/share/jupyterlab/runlab"]\n'
                                        "USER 1000:100")
    assert "LAB_USER" not in dockerfile
    # Requirements lacking ipykernel get it added for the kernel.
    reqs = files["steps/00-pip/requirements.txt"][0].decode().split()
    assert "ipykernel" in reqs and "numpy" in reqs


def test_kernel_spec_uses_wrapper_when_setup_or_env() -> None:
    plan = plan_of(SCIPY)
    spec = json.loads(plan.kernel.kernel_json)
    assert spec["argv"] == ["/usr/local/share/jupyterlab/kernels/scipy/launch",
                            "{connection_file}"]
    assert spec["display_name"] == "Scientific Python"
    assert plan.kernel.wrapper is not None
    lines = [ln for ln in plan.kernel.wrapper.splitlines() if ln.strip()]
    assert lines[0] == "#!/bin/bash"
    assert lines[-1] == ('exec /opt/payload/venv/bin/python -m ipykernel_launcher '
                         '-f "$1"')
    assert "export OMP_NUM_THREADS=1" in lines


def test_kernel_spec_direct_without_setup(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("ipykernel\n")
    (tmp_path / "payload.yaml").write_text(
        "name: plain\ninstall:\n  - pip: {requirements: requirements.txt, "
        "prefix: /opt/plain}\nkernel: {name: plain, display_name: Plain}\n")
    plan = plan_of(tmp_path)
    assert plan.kernel.wrapper is None
    assert json.loads(plan.kernel.kernel_json)["argv"] == [
        "/opt/plain/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    reqs = files_of(plan)["steps/00-pip/requirements.txt"][0].decode()
    assert reqs.count("ipykernel") == 1


def test_shell_setup_default_puts_payload_first() -> None:
    setup = plan_of(SCIPY).shell_setup
    assert 'export PATH=/opt/payload/venv/bin:"$PATH"' in setup
    assert "export VIRTUAL_ENV=/opt/payload/venv" in setup
    assert setup.rstrip().endswith("export NUBLADO_PAYLOAD=scipy-lab")
    result = subprocess.run(["bash", "-n"], input=setup, text=True, check=False)
    assert result.returncode == 0


def test_wrapper_env_values_stay_literal(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("ipykernel\n")
    (tmp_path / "payload.yaml").write_text(
        "name: odd\ninstall:\n  - pip: {requirements: requirements.txt}\n"
        "kernel:\n  name: odd\n  display_name: 'It''s \"odd\" $HOME `id`'\n"
        "  env: {TRICKY: '$(touch /tmp/pwned) `id` \"q\" ''s'}\n")
    plan = plan_of(tmp_path)
    assert plan.kernel.wrapper is not None
    script = plan.kernel.wrapper.replace(
        'exec /opt/payload/venv/bin/python -m ipykernel_launcher -f "$1"',
        'printf "%s" "$TRICKY"')
    out = subprocess.run(["bash", "-c", script, "launch"], capture_output=True,
                         text=True, check=True)
    assert out.stdout == "$(touch /tmp/pwned) `id` \"q\" 's"
    assert json.loads(plan.kernel.kernel_json)["display_name"] == \
        "It's \"odd\" $HOME `id`"
