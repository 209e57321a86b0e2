"""The foundation end to end: base, the scipy-lab pip payload, the contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_TAG
from tests.integration.conftest import (
    BASE_PASSED,
    PAYLOADS,
    CliResult,
    assert_contract,
    docker,
    run_cli,
)

pytestmark = pytest.mark.integration
SCIPY = PAYLOADS / "scipy-lab"
SCIPY_TAG = f"scipy-lab:{TEST_TAG}"


@pytest.fixture(scope="module")
def scipy_image(build_payload: Callable[..., CliResult]) -> str:
    result = build_payload(SCIPY, SCIPY_TAG)
    assert result.json["kernel"] == "scipy"
    return SCIPY_TAG


def test_scipy_lab_meets_contract(scipy_image: str, tmp_path: Path,
                                  contract: Callable[..., dict[str, Any]]) -> None:
    summary = contract(scipy_image, SCIPY, tmp_path)
    # Base + payload suites (no compat label: no compat suite) + the
    # payload's five tests; the kernel has a wrapper (setup lines) and
    # ipywidgets and ipympl: nothing is skipped, the widget browser checks
    # run.
    assert_contract(summary, kernel="scipy", payload_tests=5)
    assert summary["passed"] == BASE_PASSED + 21 + 5


def test_base_image_meets_base_contract(base_image: str, tmp_path: Path,
                                        contract: Callable[..., dict[str, Any]]
                                        ) -> None:
    """``nublado-build test BASE`` runs the base suite only, and it passes."""
    summary = contract(base_image, None, tmp_path)
    assert_contract(summary, kernel=None)
    assert summary["passed"] == BASE_PASSED
    assert summary["skipped"] == 0
    assert all(t.startswith("base/") for t in summary["passed_tests"])


def test_base_image_refuses_a_payload_dir(base_image: str) -> None:
    result = run_cli("test", base_image, str(SCIPY), check=False)
    assert result.returncode == 2
    assert "it is a base image" in result.stderr
    assert "Traceback" not in result.stderr


def test_payload_shares_every_base_layer(scipy_image: str, base_image: str) -> None:
    def layers(image: str) -> list[str]:
        out = docker("image", "inspect", image).stdout
        return list(json.loads(out)[0]["RootFS"]["Layers"])

    base, payload = layers(base_image), layers(scipy_image)
    assert payload[: len(base)] == base
    assert len(payload) > len(base)


def test_base_has_no_python3_kernel_and_runs_as_non_root(base_image: str) -> None:
    attrs = json.loads(docker("image", "inspect", base_image).stdout)[0]
    assert attrs["Config"]["User"] == "1000:100"
    out = docker("run", "--rm", base_image, "/usr/local/share/jupyterlab/venv/bin/"
                 "jupyter", "kernelspec", "list", "--json").stdout
    assert json.loads(out)["kernelspecs"] == {}


def test_ca_bundle_secret_never_in_image(base_image: str, tmp_path: Path,
                                         build_payload: Callable[..., CliResult]
                                         ) -> None:
    """A CA bundle passed to the build is used by pip but lands in no layer."""
    marker = "nublado-secret-marker-7f3a9c2e51"
    bundle = tmp_path / "ca.pem"
    system = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    bundle.write_text(f"# {marker}\n{system}")
    payload = tmp_path / "secretcheck"
    payload.mkdir()
    (payload / "requirements.txt").write_text("six\n")
    (payload / "payload.yaml").write_text(
        "name: secretcheck\ninstall:\n  - pip: {requirements: requirements.txt}\n"
        "kernel: {name: secretcheck, display_name: Secret check}\n")
    build_payload(payload, f"secretcheck:{TEST_TAG}", "--ca-bundle", str(bundle),
                  "--no-cache")
    saved = tmp_path / "image.tar"
    docker("save", "-o", str(saved), f"secretcheck:{TEST_TAG}")
    data = saved.read_bytes()
    assert len(data) > 10_000_000
    assert marker.encode() not in data
    history = docker("history", "--no-trunc", f"secretcheck:{TEST_TAG}").stdout
    assert marker not in history
    docker("rmi", f"secretcheck:{TEST_TAG}", check=False)


def test_failed_install_keeps_previous_tag(base_image: str, tmp_path: Path,
                                          build_payload: Callable[..., CliResult]
                                          ) -> None:
    payload = tmp_path / "broken"
    payload.mkdir()
    (payload / "payload.yaml").write_text(
        "name: broken\ninstall:\n  - pip: {requirements: requirements.txt}\n"
        "kernel: {name: broken, display_name: Broken}\n")
    tag = f"nublado-broken:{TEST_TAG}"
    docker("tag", base_image, tag)
    before = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    (payload / "requirements.txt").write_text(
        "nublado-build-no-such-package-ever==0.0.1\n")
    result = build_payload(payload, tag, check=False)
    assert result.returncode == 1
    assert "failed at step" in result.stderr
    assert "install-pip" in result.stderr
    assert "No image was tagged" in result.stderr
    assert "Traceback" not in result.stderr
    after = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    assert after == before
    docker("rmi", tag, check=False)


def test_invalid_payload_exits_2_and_builds_nothing(engine: None,
                                                   tmp_path: Path) -> None:
    (tmp_path / "payload.yaml").write_text(
        "name: Not_A_Name\ninstall:\n  - pip: {requirements: missing.txt}\n"
        "  - snap: {}\nkernel: {name: k}\n")
    images_before = sorted(set(docker("images", "-q", "--no-trunc").stdout.split()))
    result = run_cli("build", str(tmp_path), "--tag", f"never:{TEST_TAG}", check=False)
    assert result.returncode == 2
    for needle in ("name", "install[0].pip.requirements", "install[1].snap",
                   "kernel.display_name", "payload.yaml:1", "payload.yaml:3"):
        assert needle in result.stderr, needle
    assert "Traceback" not in result.stderr
    # As a set: `docker images` orders images created in the same second freely.
    assert sorted(set(docker("images", "-q", "--no-trunc").stdout.split())) \
        == images_before


def test_contract_on_missing_image_exits_2(engine: None) -> None:
    result = run_cli("test", "nublado-no-such-image:never", check=False)
    assert result.returncode == 2
    assert "no such image" in result.stderr
    assert "Traceback" not in result.stderr
