"""The payload boundary in real builds: what a hostile payload does to the
lab tree fails the build, and operator secrets reach no layer, log, label
or output unless granted.

Each payload here needs no network: the effect under test is all it does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TEST_TAG
from tests.integration.conftest import docker, image_id, run_cli

pytestmark = pytest.mark.integration
LAB = "/usr/local/share/jupyterlab"
SITE = "$(/usr/local/share/jupyterlab/venv/bin/python3 -I -c " \
    "'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"



def fragment_payload(root: Path, name: str, run: str) -> Path:
    """A payload whose only effect is one fragment RUN line."""
    root.mkdir(parents=True)
    (root / "Dockerfile.fragment").write_text(f"RUN {run}\n")
    (root / "payload.yaml").write_text(
        f"name: {name}\ninstall:\n  - dockerfile: {{path: Dockerfile.fragment}}\n"
        f"kernel: {{name: k, display_name: K, python: /usr/local/bin/python3}}\n")
    return root


@pytest.mark.parametrize(("name", "run"), [
    ("bnd-sitecustomize", f'echo "import os" > "{SITE}/sitecustomize.py"'),
    ("bnd-chmod", f"chmod -R o+w {LAB}/venv"),
    ("bnd-server-config",
     "echo 'c = 0' >> /usr/local/etc/jupyter/jupyter_server_config.py"),
])
def test_install_steps_see_the_lab_venv_and_config_read_only(
        base_image: str, tmp_path: Path, name: str, run: str) -> None:
    """A fragment RUN that writes into the lab venv or the server config
    changes nothing: the step sees the base's trees through a read-only
    mount. BuildKit in Debian's 20.10 engine gives such a mount a scratch
    layer whose writes are discarded; newer BuildKit refuses them (EROFS).
    Either way the image's trees are the base's, and the guard agrees."""
    payload = fragment_payload(tmp_path / name, name, run)
    tag = f"{name}:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     "--no-cache", check=False)  # the guard must run, not be cached
    if result.returncode != 0:
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Read-only file system" in result.stderr, result.stderr[-3000:]
        assert image_id(tag) is None
        return
    assert "isolation guard: JupyterLab environment unchanged" in result.stderr
    check = ("cd / && sha256sum usr/local/etc/jupyter/jupyter_server_config.py && "
             f"find {LAB}/venv -newer {LAB}/runlab -o -perm -o+w -type f | head -3; "
             f"ls {LAB}/venv/lib/python3*/site-packages/sitecustomize.py 2>&1; true")
    ours = docker("run", "--rm", "--entrypoint", "sh", tag, "-c", check).stdout
    base = docker("run", "--rm", "--entrypoint", "sh", base_image, "-c", check).stdout
    assert ours == base
    assert "No such file" in ours
    docker("rmi", tag, check=False)


@pytest.mark.parametrize(("name", "run", "reported"), [
    ("bnd-etc-jupyter", "mkdir -p /etc/jupyter && echo 'c = 0' > "
     "/etc/jupyter/jupyter_server_config.py", "/etc/jupyter: added (dir)"),
    ("bnd-kernelspec", "mkdir -p /usr/local/share/jupyter/kernels/python3 && "
     "echo '{}' > /usr/local/share/jupyter/kernels/python3/kernel.json",
     "/usr/local/share/jupyter/kernels/python3: added (dir)"),
    ("bnd-stdlib", "echo '# changed' >> \"$(python3 -I -c 'import os; "
     "print(os.__file__)')\"", "/os.py: content changed"),
    ("bnd-runlab", f"echo 'exec /bin/sh' >> {LAB}/runlab", f"{LAB}/runlab: content"),
    ("bnd-record", f"echo x > {LAB}/base-checksums.txt",
     f"{LAB}/base-checksums.txt: content changed"),
])
def test_guard_refuses_changes_to_the_lab_tree(base_image: str, tmp_path: Path,
                                               name: str, run: str,
                                               reported: str) -> None:
    payload = fragment_payload(tmp_path / name, name, run)
    tag = f"{name}:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "isolation guard" in result.stderr, result.stderr[-3000:]
    assert reported in result.stderr, result.stderr[-3000:]
    assert "No image was tagged" in result.stderr
    assert "Traceback" not in result.stderr
    assert image_id(tag) is None


def test_script_cannot_write_into_the_lab_venv(base_image: str,
                                               tmp_path: Path) -> None:
    """Install steps see the lab venv read-only: the write fails or vanishes."""
    payload = tmp_path / "ro"
    payload.mkdir()
    (payload / "install.sh").write_text(
        f"#!/bin/bash\nset -euo pipefail\necho evil > \"{SITE}/evil.py\"\n")
    (payload / "payload.yaml").write_text(
        "name: bnd-ro\ninstall:\n  - script: {path: install.sh, prefix: /opt/ro, "
        "python: /usr/local/bin/python3}\nkernel: {name: k, display_name: K}\n")
    tag = f"bnd-ro:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     "--no-cache", check=False)
    if result.returncode != 0:
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Read-only file system" in result.stderr
        assert image_id(tag) is None
        return
    assert "isolation guard: JupyterLab environment unchanged" in result.stderr
    found = docker("run", "--rm", "--entrypoint", "sh", tag, "-c",
                   f"ls {LAB}/venv/lib/python3*/site-packages/evil.py 2>&1; true")
    assert "No such file" in found.stdout
    docker("rmi", tag, check=False)


def test_secrets_reach_no_layer_log_label_or_output(base_image: str,
                                                    tmp_path: Path) -> None:
    """CA and index credentials: nowhere in the image, its history, labels,
    the build log or --json; an ungranted script step does not see them."""
    marker = "nbsecretmarker9c41d7"
    bundle = tmp_path / "ca.pem"
    bundle.write_text(f"# {marker}\n"
                      + Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    payload = tmp_path / "sec"
    payload.mkdir()
    (payload / "install.sh").write_text(
        "#!/bin/bash\nset -euo pipefail\nmkdir -p \"$PAYLOAD_PREFIX\"\n"
        "{ env; ls -la /run/secrets 2>&1 || true; } > \"$PAYLOAD_PREFIX/seen.txt\"\n")
    (payload / "payload.yaml").write_text(
        "name: bnd-secrets\ninstall:\n  - script: {path: install.sh, prefix: /opt/sec,"
        " python: /usr/local/bin/python3}\nkernel: {name: k, display_name: K}\n")
    tag = f"bnd-secrets:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     "--ca-bundle", str(bundle), "--index-url",
                     f"https://user:{marker}@index.invalid/simple", "--json")
    assert marker not in result.stdout and marker not in result.stderr
    seen = docker("run", "--rm", tag, "cat", "/opt/sec/seen.txt").stdout
    assert marker not in seen
    assert "PIP_INDEX_URL" not in seen and "PIP_CERT" not in seen
    saved = tmp_path / "image.tar"
    docker("save", "-o", str(saved), tag)
    assert marker.encode() not in saved.read_bytes()
    assert marker not in docker("history", "--no-trunc", tag).stdout
    labels = json.loads(docker("image", "inspect", tag).stdout)[0]["Config"]
    assert marker not in json.dumps(labels)
    log = Path(result.json["log"])
    assert "install-script" in log.read_text()  # the real build log
    assert marker not in log.read_text()
    docker("rmi", tag, check=False)
