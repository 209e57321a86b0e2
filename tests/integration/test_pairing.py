"""The pairing check in real builds: a payload whose kernel package lacks
its lab frontend fails the build, untagged; with ``lab.pairing: warn`` it
builds and warns; ``nublado-build test`` finds the same drift on any image.

The payload (``tests/payloads/widgets-drift``) installs ipywidgets; it is
built on the ``minimal`` base profile (jupyterlab and jupyterhub, no
jupyterlab_widgets). On the default ``standard`` profile the same kind of
payload pairs (scipy-lab, ``test_foundation``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import TEST_TAG
from tests.integration.conftest import CliResult, docker, image_id, run_cli

pytestmark = pytest.mark.integration
PAYLOAD = Path(__file__).resolve().parents[1] / "payloads" / "widgets-drift"
CHECK = "test_lab_frontends_pair_with_payload"
CHECK_ID = f"payload/test_payload.py::{CHECK}"
#: A check that passes on the image too: `nublado-build test` wants one pass.
MANIFEST_ID = "payload/test_payload.py::test_payload_manifest"
SELECT = f"{CHECK} or test_payload_manifest"
#: The message for any ipywidgets 8 on a lab without jupyterlab_widgets.
MISSING = re.compile(
    r"payload has ipywidgets (8\.\d+\.\d+), which needs jupyterlab_widgets>=3,<4 "
    r"in the lab; the lab has none: add `jupyterlab_widgets>=3,<4` to "
    r"lab.extensions in payload.yaml, or build on the standard base profile")



def lab_has_no_widgets(base_image: str) -> None:
    """The premise: the test base's lab venv lacks jupyterlab_widgets."""
    manifest = docker("run", "--rm", "--entrypoint", "cat", base_image,
                      "/usr/local/share/jupyterlab/versions-installed/"
                      "jupyterlab.txt").stdout
    assert re.search(r"^jupyterlab==", manifest, re.M), manifest
    assert not re.search(r"^jupyterlab[-_]widgets==", manifest, re.M | re.I)


def build_on(base: str, payload_dir: Path, tag: str, check: bool = True
             ) -> CliResult:
    """Build a payload on ``base`` (the minimal profile here)."""
    return run_cli("build", str(payload_dir), "--base", base, "--tag", tag,
                   "--json", check=check)


def test_widgets_without_frontend_fail_the_build_untagged(
        minimal_base_image: str) -> None:
    lab_has_no_widgets(minimal_base_image)
    tag = f"widgets-drift:{TEST_TAG}"
    docker("rmi", tag, check=False)  # this test's own tag, from an earlier run
    result = build_on(minimal_base_image, PAYLOAD, tag, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    error = result.json["error"]
    match = MISSING.search(error)
    assert match, error
    assert error == (
        "payload widgets-drift: 1 lab frontend does not pair with the payload's "
        f"kernel packages:\n  - {match.group(0)}\nNo image was tagged; existing "
        "tags are unchanged. To build anyway, set `lab: {pairing: warn}` in "
        "payload.yaml.")
    assert result.json["exit_code"] == 1
    assert f"nublado-build: {error}" in result.stderr
    assert image_id(tag) is None


def test_pairing_warn_builds_warns_and_the_contract_finds_it(
        minimal_base_image: str, tmp_path: Path) -> None:
    payload = shutil.copytree(PAYLOAD, tmp_path / "widgets-drift")
    with (payload / "payload.yaml").open("a") as f:
        f.write("lab: {pairing: warn}\n")
    tag = f"widgets-drift-warn:{TEST_TAG}"
    result = build_on(minimal_base_image, payload, tag)
    (warning,) = result.json["pairing"]["warnings"]
    assert MISSING.fullmatch(warning), warning
    assert result.json["pairing"]["mode"] == "warn"
    assert f"nublado-build: warning: payload widgets-drift: {warning}\n" \
        in result.stderr
    print(f"pairing check: {result.json['pairing']['seconds']} s of a "
          f"{result.json['seconds']} s build")
    assert image_id(tag) == result.json["image_id"]

    # The contract, on the image built with `warn`: a known failure (xfail).
    junit = tmp_path / "warn.xml"
    summary = run_cli("test", tag, "-k", SELECT, "--json", "--junit-xml",
                      str(junit)).json
    assert (summary["passed_tests"], summary["failed"],
            summary["xfailed_tests"]) == ([MANIFEST_ID], 0, [CHECK_ID])
    (skipped,) = ET.parse(junit).getroot().iter("skipped")
    assert skipped.get("message") == (
        "lab.pairing: warn: payload widgets-drift: 1 lab frontend does not pair "
        f"with the payload's kernel packages:\n  - {warning}")

    # The same image as an old payload would be, without `warn`: it fails.
    drifted = f"widgets-drift-strict:{TEST_TAG}"
    subprocess.run(["docker", "build", "-q", "-t", drifted, "-"], check=True,
                   capture_output=True, text=True,
                   input=f"FROM {tag}\nLABEL io.nublado.payload.lab-pairing=fail\n")
    junit = tmp_path / "fail.xml"
    failed = run_cli("test", drifted, "-k", SELECT, "--json", "--junit-xml",
                     str(junit), check=False)
    assert failed.returncode == 1
    assert (failed.json["passed_tests"], failed.json["failures"]) == (
        [MANIFEST_ID], [CHECK_ID])
    (failure,) = ET.parse(junit).getroot().iter("failure")
    assert failure.get("message") == (  # pytest.fail's own prefix, then ours
        "Failed: payload widgets-drift: 1 lab frontend does not pair with the "
        f"payload's kernel packages:\n  - {warning}")
