"""A script step's environment, and a failed step named as payload.yaml names it.

A script after a pip step finds the venv's ``python`` and ``jupyter`` on
PATH, runs with a throwaway HOME (not /root, not in the image) and with
pip's cache still on the cache mount; a failing script's build error
names ``install[1].script`` and the payload file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_TAG
from tests.integration.conftest import CliResult, docker

pytestmark = pytest.mark.integration

PIP_STEP = "  - pip: {requirements: requirements.txt}\n"
KERNEL = "kernel: {name: scriptenv, display_name: Script env}\n"
ENV_SCRIPT = """\
#!/bin/bash
set -euo pipefail
out="$PAYLOAD_PREFIX/env.txt"
{
    echo "jupyter=$(command -v jupyter)"
    echo "jupyter_version=$(jupyter --version | tr '\\n' ' ')"
    echo "python=$(python -c 'import sys; print(sys.prefix)')"
    echo "home=$HOME"
    echo "payload_python=$PAYLOAD_PYTHON"
    echo "path=$PATH"
    echo "pip_cache=$PIP_CACHE_DIR"
    echo "uv_cache=$UV_CACHE_DIR"
} > "$out"
touch "$HOME/written-to-home"
"""


def _payload(directory: Path, script: str) -> Path:
    directory.mkdir()
    (directory / "requirements.txt").write_text("")
    (directory / "post.sh").write_text(script)
    (directory / "payload.yaml").write_text(
        f"name: {directory.name}\ninstall:\n" + PIP_STEP
        + "  - script: {path: post.sh, prefix: /opt/scriptenv}\n" + KERNEL)
    return directory


def _run(tag: str, command: str) -> str:
    return docker("run", "--rm", "--entrypoint", "/bin/bash", tag, "-c",
                  command).stdout


def test_script_runs_with_payload_environment(
        base_image: str, tmp_path: Path,
        build_payload: Callable[..., CliResult]) -> None:
    payload = _payload(tmp_path / "scriptenv-ok", ENV_SCRIPT)
    tag = f"scriptenv-ok:{TEST_TAG}"
    try:
        build_payload(payload, tag)
        text = _run(tag, "cat /opt/scriptenv/env.txt")
        env = dict(line.split("=", 1) for line in text.splitlines())
        assert env["jupyter"] == "/opt/payload/venv/bin/jupyter"
        assert "jupyter_core" in env["jupyter_version"], env
        assert env["python"] == "/opt/payload/venv"
        assert env["payload_python"] == "/opt/payload/venv/bin/python"
        assert env["path"].startswith("/opt/scriptenv/bin:/opt/payload/venv/bin:")
        assert env["pip_cache"] == "/root/.cache/pip"
        assert env["uv_cache"] == "/root/.cache/uv"
        home = env["home"]
        assert home.startswith("/tmp/nb-home.") and home != "/root"
        # Neither the home directory nor what the script wrote there is in
        # the image.
        gone = _run(tag, f"test ! -e {home} && test ! -e /root/written-to-home"
                    " && ls -d /tmp/nb-home.* 2>/dev/null | wc -l")
        assert gone.strip() == "0"
    finally:
        docker("rmi", tag, check=False)


def test_failed_script_names_payload_step(
        base_image: str, tmp_path: Path,
        build_payload: Callable[..., CliResult]) -> None:
    payload = _payload(tmp_path / "scriptenv-fail",
                       "#!/bin/bash\necho 'about to fail'\nexit 3\n")
    tag = f"scriptenv-fail:{TEST_TAG}"
    result = build_payload(payload, tag, check=False)
    assert result.returncode == 1
    yaml = payload / "payload.yaml"
    for needle in (f"failed at step install[1].script of {yaml}:4 (exit code 3).",
                   "Docker step: [nublado-payload",
                   "run-install-script 'install[1].script'",
                   "about to fail",
                   "install script post.sh failed with exit code 3",
                   "No image was tagged"):
        assert needle in result.stderr, (needle, result.stderr[-3000:])
    assert "Traceback" not in result.stderr
