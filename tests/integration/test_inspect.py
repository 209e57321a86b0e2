"""nublado-build inspect and diff on real images: labels, manifests, changes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nubladobuild import __version__
from nubladobuild.inspect import label_problems
from nubladobuild.loader import load_payload
from nubladobuild.resolve import clean_source_url, inputs_sha256
from tests.conftest import TEST_TAG
from tests.integration.conftest import REPO, CliResult, docker, run_cli

pytestmark = pytest.mark.integration
SCIPY = REPO / "payloads" / "scipy-lab"
SCIPY_TAG = f"scipy-lab:{TEST_TAG}"
#: The copy of scipy-lab with one requirement added (removed at the end).
ATTRS_TAG = f"nublado-inspect-attrs:{TEST_TAG}"
EMPTY: dict[str, list[dict[str, str]]] = {
    "added": [], "removed": [], "upgraded": [], "downgraded": []}


def _git(*args: str) -> str | None:
    proc = subprocess.run(["git", "-C", str(SCIPY), *args], capture_output=True,
                          text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() \
        else None


@pytest.fixture(scope="module")
def scipy_image(build_payload: Callable[..., CliResult]) -> str:
    build_payload(SCIPY, SCIPY_TAG)
    return SCIPY_TAG


def test_inspect_shows_provenance_labels(scipy_image: str, base_image: str) -> None:
    started = datetime.now(UTC)
    doc = run_cli("inspect", scipy_image, "--json").json
    labels = doc["labels"]
    base_id = json.loads(docker("image", "inspect", base_image).stdout)[0]["Id"]
    expected = {
        "io.nublado.base.profile": "standard",
        "io.nublado.base.digest": base_id,
        "io.nublado.inputs.sha256": inputs_sha256(load_payload(SCIPY), "standard"),
        "io.nublado.build.version": __version__,
        "io.nublado.payload.name": "scipy-lab",
        "io.nublado.payload.kernels": "scipy",
        "io.nublado.payload.python": "/opt/payload/venv/bin/python",
        "io.nublado.payload.lab-pairing": "fail",
        "org.opencontainers.image.title": "scipy-lab",
        "org.opencontainers.image.description":
            "Scientific Python (numpy, pandas, matplotlib, widgets) in its own venv",
        "org.opencontainers.image.version": TEST_TAG,
    }
    # The payload is in this checkout: its HEAD, and the remote when it has one.
    revision, remote = _git("rev-parse", "HEAD"), _git("config", "remote.origin.url")
    assert revision is not None, "the repository is a git checkout"
    expected["org.opencontainers.image.revision"] = revision
    if remote is not None:
        source = clean_source_url(remote)
        assert source is not None
        expected["org.opencontainers.image.source"] = source
    created = labels.pop("org.opencontainers.image.created")
    assert labels == expected
    assert label_problems({**labels, "org.opencontainers.image.created": created}) \
        == []
    when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert started - timedelta(hours=2) < when <= started + timedelta(seconds=5)
    assert doc["profile"] == "standard"
    assert doc["id"].startswith("sha256:")
    envs = doc["environments"]
    assert sorted(envs) == ["debian", "lab", "payload:scipy-lab"]
    assert "jupyterlab" in envs["lab"] and "ipympl" in envs["lab"]
    assert {"numpy", "pandas", "ipykernel"} <= set(envs["payload:scipy-lab"])
    assert envs["debian"]["bash"] and "python3" not in envs["payload:scipy-lab"]
    assert "/usr/local/share/jupyterlab/versions-installed/payload-scipy-lab.txt" \
        in doc["files"]
    text = run_cli("inspect", scipy_image).stdout
    assert "base profile: standard\n" in text
    assert f"  io.nublado.inputs.sha256={expected['io.nublado.inputs.sha256']}\n" \
        in text


def test_inspect_missing_image_exits_2(engine: None) -> None:
    for args in (("inspect", "nublado-no-such-image:never"),
                 ("diff", "nublado-no-such-image:never", "nublado-no-such-image:x")):
        result = run_cli(*args, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1
        assert "no such image" in result.stderr
        assert "Traceback" not in result.stderr


def test_diff_names_the_added_requirement(scipy_image: str, tmp_path: Path,
                                          build_payload: Callable[..., CliResult]
                                          ) -> None:
    before = run_cli("inspect", scipy_image, "--json").json["environments"]
    payload = tmp_path / "scipy-lab"
    shutil.copytree(SCIPY, payload)
    # Pinned to what scipy-lab has, plus attrs: the one change.
    pins = [f"{name}=={version}" for name, version
            in before["payload:scipy-lab"].items() if name != "pip"]
    (payload / "requirements.txt").write_text("\n".join([*pins, "attrs", ""]))
    try:
        build_payload(payload, ATTRS_TAG)
        after = run_cli("inspect", ATTRS_TAG, "--json").json
        attrs = after["environments"]["payload:scipy-lab"]["attrs"]
        # Outside a git checkout: no revision, no source.
        assert "org.opencontainers.image.revision" not in after["labels"]
        assert "org.opencontainers.image.source" not in after["labels"]
        assert after["labels"]["io.nublado.inputs.sha256"] != inputs_sha256(
            load_payload(SCIPY), "standard")
        doc = run_cli("diff", scipy_image, ATTRS_TAG, "--json").json
        assert doc["changed"] is True
        assert doc["environments"] == {
            "lab": EMPTY,
            "payload:scipy-lab": {**EMPTY,
                                  "added": [{"name": "attrs", "version": attrs}]},
            "debian": EMPTY}
        text = run_cli("diff", scipy_image, ATTRS_TAG).stdout
        assert text.splitlines()[1:] == [
            "lab: unchanged", "payload:scipy-lab: 1 added", f"  + attrs {attrs}",
            "debian: unchanged"]
        reverse = run_cli("diff", ATTRS_TAG, scipy_image, "--json").json
        assert reverse["environments"]["payload:scipy-lab"] == {
            **EMPTY, "removed": [{"name": "attrs", "version": attrs}]}
        same = run_cli("diff", scipy_image, scipy_image, "--json").json
        assert same["changed"] is False
    finally:
        docker("rmi", ATTRS_TAG, check=False)
