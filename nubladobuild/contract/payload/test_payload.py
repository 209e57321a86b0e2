"""Payload contract: what every nublado-build payload image adds to the base.

Runs after the base contract on images with ``io.nublado.payload.*`` labels.
Kernel checks are parametrized over the image's actual kernels and wrapper
scripts (see ``pytest_generate_tests`` in plugin.py): an image without
wrappers reports the wrapper check as skipped, by name. Each kernel is
listed by the lab's ``jupyter kernelspec list`` and executes code in its own
environment (see :mod:`nubladobuild.contract.payload.kernelchecks`).
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

import pytest

from nubladobuild.contract.payload.kernelchecks import PYTHON_PROBE, kernel_checks
from nubladobuild.contract.plugin import (
    ARBITRARY_UID,
    LAB_ROOT,
    Container,
    ImageInfo,
    run_kernel,
)
from nubladobuild.inspect import label_problems
from nubladobuild.pairing import (
    PAIRING_LABEL,
    ManifestMissing,
    check_image,
    report,
)

SENTINEL = {"RUNNING_INSIDE_JUPYTERLAB": "TRUE"}


def test_image_is_a_payload_image(image_info: ImageInfo) -> None:
    """The payload labels name the payload, its kernels and Python."""
    assert image_info.payload, "image lacks the io.nublado.payload.name label"
    assert image_info.kernels, "image lacks the io.nublado.payload.kernels label"
    assert image_info.python.startswith("/")


def test_provenance_labels(image_info: ImageInfo) -> None:
    """The OCI and nublado provenance labels are there, each of its shape.

    When it was built, for which tag, from which inputs and base, by which
    nublado-build (and, from a git checkout, the revision and remote).
    """
    problems = label_problems(image_info.labels)
    assert not problems, "; ".join(problems)


def test_payload_manifest(host: Any, image_info: ImageInfo) -> None:
    """The payload's manifest lists what it installed."""
    payload = host.file(f"{LAB_ROOT}/versions-installed/"
                        f"payload-{image_info.payload}.txt")
    assert payload.is_file and payload.content_string.strip()


def test_lab_frontends_pair_with_payload(image_info: ImageInfo) -> None:
    """Every kernel package with a frontend finds it in the lab, in range.

    The same check as at build time (``nubladobuild/pairing.py``), so an
    old payload rebuilt on a new base is told when it drifted. An image
    built with ``lab.pairing: warn`` reports its mismatches as xfail.
    """
    try:
        mismatches = check_image(image_info.image, image_info.payload)
    except ManifestMissing as exc:
        pytest.fail(exc.message, pytrace=False)
    if not mismatches:
        return
    message = report(mismatches, image_info.payload)
    if image_info.labels.get(PAIRING_LABEL) == "warn":
        pytest.xfail(f"lab.pairing: warn: {message}")
    pytest.fail(message, pytrace=False)


def _spec(host: Any, kernel_name: str) -> dict[str, Any]:
    spec_file = host.file(f"/usr/local/share/jupyter/kernels/{kernel_name}/"
                          "kernel.json")
    assert spec_file.is_file, f"{spec_file.path} missing"
    spec: dict[str, Any] = json.loads(spec_file.content_string)
    return spec


def test_kernelspec_valid_and_executable(host: Any, kernel_name: str) -> None:
    """Each labelled kernel has a valid kernel.json with an executable argv[0].

    And the lab's own ``jupyter kernelspec list`` lists it, from where
    nublado-build put it.
    """
    assert kernel_name, "the image names no kernel (io.nublado.payload.kernels)"
    spec = _spec(host, kernel_name)
    argv0 = spec["argv"][0]
    assert any("{connection_file}" in arg for arg in spec["argv"]), spec["argv"]
    assert spec["display_name"].strip()
    assert host.file(argv0).exists, f"{argv0} does not exist"
    assert host.run(f"test -x {argv0}").rc == 0, f"{argv0} not executable"
    listed = host.run(f"{LAB_ROOT}/venv/bin/jupyter kernelspec list --json")
    assert listed.rc == 0, listed.stderr
    specs = json.loads(listed.stdout)["kernelspecs"]
    assert kernel_name in specs, sorted(specs)
    assert specs[kernel_name]["resource_dir"] == \
        f"/usr/local/share/jupyter/kernels/{kernel_name}"


def test_kernel_wrappers_exec_the_kernel(host: Any,
                                         kernel_wrapper: tuple[str, str]) -> None:
    """A wrapper ends with ``exec``, so signals reach the kernel."""
    name, path = kernel_wrapper
    text = host.file(path).content_string
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines[0].startswith("#!"), f"{name}: {path} is not a script"
    assert lines[-1].startswith("exec "), f"{name}: {path} does not end with exec"


def test_kernel_runs_in_its_environment(container: Container, image_info: ImageInfo,
                                        kernel_name: str) -> None:
    """Each kernel starts and executes code in its own environment.

    A Python kernel's ``sys.executable`` is its interpreter (the default
    kernel's is the payload's Python); a kernel with its own ``argv`` runs
    its test code (a statement of its language) and prints what it must.
    """
    assert kernel_name, "the image names no kernel (io.nublado.payload.kernels)"
    checks = kernel_checks(kernel_name, _spec(container.host, kernel_name))
    if kernel_name == image_info.kernel:
        assert [c.stdout for c in checks if c.code == PYTHON_PROBE] == \
            [image_info.python], "the default kernel must run the payload's Python"
    for check in checks:
        result = run_kernel(container, kernel_name, check.code)
        assert result["status"] == "ok", (kernel_name, check.what, result)
        assert result["stdout"].strip() == check.stdout, (kernel_name, check.what,
                                                          result)


def test_kernel_as_arbitrary_uid_read_only(ro_container: Container,
                                          image_info: ImageInfo) -> None:
    """The kernel starts as an arbitrary UID on a read-only root."""
    result = run_kernel(ro_container, image_info.kernel,
                        "import os, sys; print(os.getuid(), sys.executable)")
    assert result["status"] == "ok", result
    assert result["stdout"].split() == [ARBITRARY_UID, image_info.python]


def _login_shell(box: Container, env: dict[str, str] | None) -> dict[str, str]:
    script = ('printf "%s\\n%s\\n" "${NUBLADO_PAYLOAD:-}" '
              '"$(command -v python3 || true)"')
    proc = box.exec("bash", "-lc", script, env=env, check=True)
    payload, python = (proc.stdout.splitlines() + ["", ""])[:2]
    return {"payload": payload, "python": python}


def test_terminal_sentinel_runs_payload_setup(container: Container,
                                              image_info: ImageInfo) -> None:
    """A login shell with the sentinel runs the payload's setup."""
    inside = _login_shell(container, SENTINEL)
    assert inside["payload"] == image_info.payload


def test_terminal_without_sentinel_stays_plain(container: Container) -> None:
    """Without the sentinel a login shell stays plain."""
    outside = _login_shell(container, None)
    assert outside["payload"] == ""
    assert not outside["python"].startswith(("/opt/", "/usr/local/share/jupyterlab"))


def test_interactive_shell_hook(container: Container, image_info: ImageInfo) -> None:
    """Non-login interactive shells (bash -i) get the setup through bash.bashrc."""
    proc = container.exec("bash", "-ic", 'echo "${NUBLADO_PAYLOAD:-}"', env=SENTINEL)
    assert proc.stdout.strip().splitlines()[-1:] == [image_info.payload]


def test_terminal_payload_python_first(container: Container,
                                       image_info: ImageInfo) -> None:
    """With the default shell setup the payload's python3 comes first."""
    shell_file = container.host.file(
        f"{LAB_ROOT}/shell.d/50-{image_info.payload}.sh").content_string
    if "export PATH=" not in shell_file:
        pytest.skip("payload has its own shell setup (no default PATH line)")
    inside = _login_shell(container, SENTINEL)
    assert inside["python"] == posixpath.join(posixpath.dirname(image_info.python),
                                              "python3")
