"""Base contract, image level: what nublado-jupyterlab-base guarantees.

Runs on the base image alone and, inherited, on every payload image built on
it (a payload must not break any of it). Each test gets a fresh container.
"""

from __future__ import annotations

import json
from typing import Any

from nubladobuild.contract.plugin import (
    ARBITRARY_UID,
    LAB_PYTHON,
    LAB_ROOT,
    Container,
    ImageInfo,
)
from nubladobuild.profiles import (
    IMAGE_LOCK_NAME,
    IMAGE_NAME_FILE,
    IMAGE_PROFILE_DIR,
    PROFILE_LABEL,
    parse_lock,
)
from nubladobuild.requirements import canonical

SENTINEL = {"RUNNING_INSIDE_JUPYTERLAB": "TRUE"}
SHELL_HOOK = "/etc/profile.d/zz-nublado-payload.sh"
#: A shell.d file the hook tests add (as root, in their own container).
PROBE_SHELL_FILE = f"{LAB_ROOT}/shell.d/99-contract-probe.sh"
#: Paths the lab user must not be able to change.
LAB_TREE = (f"{LAB_ROOT}/venv", f"{LAB_ROOT}/venv/bin", f"{LAB_ROOT}/venv/lib",
            f"{LAB_ROOT}/runlab", f"{LAB_ROOT}/build", f"{LAB_ROOT}/shell.d",
            IMAGE_PROFILE_DIR, f"{IMAGE_PROFILE_DIR}/{IMAGE_LOCK_NAME}",
            "/usr/local/etc/jupyter", "/usr/local/share/jupyter/kernels",
            SHELL_HOOK)


def test_runs_as_non_root_by_default(image_info: ImageInfo, host: Any) -> None:
    """The image's user, and so the lab's, is not root."""
    assert image_info.user not in ("", "0", "root", "0:0", "root:root")
    assert host.user().uid != 0


def test_lab_venv_and_runlab_present(host: Any) -> None:
    """The lab venv, runlab and the server config are in place."""
    assert host.file(LAB_PYTHON).exists
    runlab = host.file(f"{LAB_ROOT}/runlab")
    assert runlab.is_file and runlab.mode & 0o111
    assert runlab.user == "root"
    assert host.file("/usr/local/etc/jupyter/jupyter_server_config.py").is_file
    assert host.run(f"{LAB_PYTHON} -c 'import jupyterlab, jupyter_server'").rc == 0


def test_lab_tree_not_writable_by_lab_user(host: Any) -> None:
    """The lab user cannot change the lab tree."""
    for path in LAB_TREE:
        assert host.file(path).user == "root", path
        assert host.run(f"test -w {path}").rc != 0, f"{path} is writable"


def test_lab_tree_not_writable_by_arbitrary_uid(ro_container: Container) -> None:
    """Nor can an arbitrary UID (the controller's way)."""
    for path in LAB_TREE:
        proc = ro_container.exec("test", "-w", path)
        assert proc.returncode != 0, f"{path} writable as uid {ARBITRARY_UID}"


def test_lab_tree_matches_isolation_record(host: Any) -> None:
    """The lab tree is what the base recorded (no payload wrote into it)."""
    record = host.file(f"{LAB_ROOT}/base-checksums.txt")
    assert record.is_file and record.size > 0
    result = host.run(f"bash -c 'diff {LAB_ROOT}/base-checksums.txt "
                      f"<({LAB_ROOT}/build/isolation-manifest)'")
    assert result.rc == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_versions_installed_manifests(host: Any) -> None:
    """The manifests list what the base installed."""
    manifests = f"{LAB_ROOT}/versions-installed"
    lab = host.file(f"{manifests}/jupyterlab.txt")
    assert lab.is_file and "jupyterlab==" in lab.content_string
    assert "jupyter_server==" in lab.content_string.replace("-", "_")
    python = host.file(f"{manifests}/base-python.txt")
    assert python.is_file and python.content_string.startswith("Python 3.")


def test_lab_venv_is_its_profile_lock(host: Any, image_info: ImageInfo) -> None:
    """The base records its profile, and the lab venv holds what it locked.

    Every package of the recorded lock is installed at the locked version
    (a payload's sanctioned lab additions may come on top, never change one).
    """
    profile = host.file(f"{IMAGE_PROFILE_DIR}/{IMAGE_NAME_FILE}").content_string.strip()
    assert profile, f"{IMAGE_PROFILE_DIR}/{IMAGE_NAME_FILE} is missing or empty"
    assert image_info.labels.get(PROFILE_LABEL) == profile, image_info.labels
    lock_file = host.file(f"{IMAGE_PROFILE_DIR}/{IMAGE_LOCK_NAME}")
    lock = parse_lock(lock_file.content_string)
    assert {"jupyterlab", "jupyterhub"} <= lock.keys(), sorted(lock)
    listing = host.check_output(f"{LAB_ROOT}/build/list-packages {LAB_PYTHON}")
    installed = {canonical(name): version for name, version in
                 (line.split("==", 1) for line in listing.splitlines())}
    differ = {name: (version, installed.get(name)) for name, version in lock.items()
              if installed.get(name) != version}
    assert differ == {}, f"lock version, installed version: {differ}"


def _kernelspecs(host: Any) -> dict[str, Any]:
    out = host.check_output(f"{LAB_ROOT}/venv/bin/jupyter kernelspec list --json")
    specs: dict[str, Any] = json.loads(out)["kernelspecs"]
    return specs


def test_no_kernelspec_from_lab_venv(host: Any, image_info: ImageInfo) -> None:
    """The lab sees exactly the payload's kernels; none runs the lab's Python."""
    specs = _kernelspecs(host)
    assert set(image_info.kernels) <= set(specs), sorted(specs)
    if not image_info.is_payload_image:
        assert specs == {}, f"the base image offers kernels: {sorted(specs)}"
    for name, info in specs.items():
        assert not info["resource_dir"].startswith(f"{LAB_ROOT}/venv"), name
        argv0 = info["spec"]["argv"][0]
        assert not argv0.startswith(f"{LAB_ROOT}/venv"), (name, argv0)


def _add_probe_shell_file(box: Container) -> None:
    box.exec("sh", "-c", f"echo 'export NUBLADO_CONTRACT_PROBE=sourced' > "
             f"{PROBE_SHELL_FILE}", user="0", check=True)


def _probe(box: Container, flags: str, env: dict[str, str] | None) -> str:
    proc = box.exec("bash", flags, 'echo "probe=${NUBLADO_CONTRACT_PROBE:-}"',
                    env=env, check=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("probe=")]
    assert len(lines) == 1, proc.stdout
    return lines[0].removeprefix("probe=")


def test_terminal_sentinel_hook_present(host: Any) -> None:
    """The shell hook tests the sentinel; bash.bashrc sources it."""
    hook = host.file(SHELL_HOOK)
    assert hook.is_file and "RUNNING_INSIDE_JUPYTERLAB" in hook.content_string
    assert SHELL_HOOK in host.file("/etc/bash.bashrc").content_string
    assert host.file(f"{LAB_ROOT}/shell.d").is_directory


def test_terminal_hook_runs_shell_setup_with_sentinel(container: Container) -> None:
    """Login and interactive shells source shell.d when the sentinel is set."""
    _add_probe_shell_file(container)
    assert _probe(container, "-lc", SENTINEL) == "sourced"
    assert _probe(container, "-ic", SENTINEL) == "sourced"


def test_terminal_hook_silent_without_sentinel(container: Container) -> None:
    """Outside the lab (no sentinel) shells do not run the shell setup."""
    _add_probe_shell_file(container)
    assert _probe(container, "-lc", None) == ""
    assert _probe(container, "-ic", None) == ""
