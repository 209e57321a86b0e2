"""The apt install kind end to end: Debian packages on PATH, unknown ones named.

A payload with ``apt: {packages: [bc]}`` (and ``units`` from an apt.txt)
before a pip step: the commands run in the image and the isolation guard
passes (Debian packages land in /usr, outside the protected trees). A
build with an unknown package fails with exit 1 naming it, and tags
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import TEST_TAG
from tests.integration.conftest import CliResult, docker

pytestmark = pytest.mark.integration

KERNEL = "kernel: {name: apt-demo, display_name: Apt demo}\n"


def _payload(directory: Path, apt: str, name: str) -> Path:
    directory.mkdir()
    (directory / "requirements.txt").write_text("")
    (directory / "apt.txt").write_text("# repo2docker style\n\nunits  # conversions\n")
    (directory / "payload.yaml").write_text(
        f"name: {name}\ninstall:\n  - apt: {apt}\n  - apt: {{file: apt.txt}}\n"
        f"  - pip: {{requirements: requirements.txt}}\n{KERNEL}")
    return directory


def test_apt_packages_on_path(tmp_path: Path,
                              build_payload: Callable[..., CliResult]) -> None:
    tag = f"nb-apt-demo:{TEST_TAG}"
    payload = _payload(tmp_path / "apt-demo", "{packages: [bc]}", "apt-demo")
    result = build_payload(payload, tag)
    assert result.json["ok"], result.stderr[-3000:]
    try:
        run = docker("run", "--rm", "--entrypoint", "bash", tag, "-c",
                     "echo 6*7 | bc; units -t '1 mile' km; command -v bc units; "
                     "id -u; cat /usr/local/share/jupyterlab/versions-installed/"
                     "guard-apt-demo.txt")
        lines = run.stdout.splitlines()
        assert lines[0] == "42"
        assert lines[1].startswith("1.609344")
        assert lines[2:4] == ["/usr/bin/bc", "/usr/bin/units"]
        assert lines[4] == "1000"  # the lab user again after the apt step
        assert "unchanged" in lines[5]  # the isolation guard passed
        # Debian's package database records them (what `inspect` reads).
        status = docker("run", "--rm", "--entrypoint", "dpkg-query", tag, "-W",
                        "-f", "${Package} ${Status}\\n", "bc", "units").stdout
        assert status.splitlines() == ["bc install ok installed",
                                       "units install ok installed"]
    finally:
        docker("image", "rm", "-f", tag, check=False)


def test_unknown_package_fails_naming_it(
        tmp_path: Path, build_payload: Callable[..., CliResult]) -> None:
    tag = f"nb-apt-bad:{TEST_TAG}"
    docker("image", "rm", "-f", tag, check=False)
    payload = _payload(tmp_path / "apt-bad",
                       "{packages: [bc, nublado-no-such-pkg, 'units=0.0-0']}",
                       "apt-bad")
    result = build_payload(payload, tag, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "unknown Debian package(s): nublado-no-such-pkg units=0.0-0" \
        in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert docker("image", "inspect", tag, check=False).returncode != 0
