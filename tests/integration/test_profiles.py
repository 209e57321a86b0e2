"""Base profiles in real images: the label, the recorded lock, what is installed.

Uses the run's default base (``standard``) and the one ``minimal`` base.
"""

from __future__ import annotations

import json

import pytest

from nubladobuild.profiles import (
    IMAGE_LOCK_NAME,
    IMAGE_NAME_FILE,
    IMAGE_PROFILE_DIR,
    PROFILE_LABEL,
    parse_lock,
)
from nubladobuild.requirements import canonical
from tests.integration.conftest import REPO, docker

pytestmark = pytest.mark.integration
PROFILES = REPO / "base" / "profiles"
LAB = "/usr/local/share/jupyterlab"


def _check_profile_image(image: str, profile: str) -> dict[str, str]:
    """Assert the image records ``profile``; return the lab venv's packages."""
    attrs = json.loads(docker("image", "inspect", image).stdout)[0]
    assert attrs["Config"]["Labels"][PROFILE_LABEL] == profile
    listing = docker("run", "--rm", image, "bash", "-c",
                     f"cd {IMAGE_PROFILE_DIR} && stat -c '%n %a %U' * "
                     f"&& cat {IMAGE_NAME_FILE}").stdout.splitlines()
    assert listing == [f"{IMAGE_NAME_FILE} 644 root", f"{IMAGE_LOCK_NAME} 644 root",
                       profile]
    lock = docker("run", "--rm", image, "cat",
                  f"{IMAGE_PROFILE_DIR}/{IMAGE_LOCK_NAME}").stdout
    assert lock == (PROFILES / f"{profile}-hub6.txt").read_text()
    installed = docker("run", "--rm", image, "cat",
                       f"{LAB}/versions-installed/jupyterlab.txt").stdout
    packages = {canonical(line.split("==")[0]): line.split("==")[1]
                for line in installed.split()}
    # Exactly the lock, nothing more (pip was removed after the install).
    assert packages == parse_lock(lock)
    return packages


def test_default_base_is_standard(base_image: str) -> None:
    packages = _check_profile_image(base_image, "standard")
    for name in ("jupyterlab-widgets", "ipympl", "jupyter-bokeh", "plotly",
                 "jupyter-server-proxy", "jupyter-resource-usage", "nbdime",
                 "jupyterlab-execute-time"):
        assert name in packages, name
    # The frontends are where the lab looks for prebuilt extensions.
    out = docker("run", "--rm", base_image, "ls",
                 f"{LAB}/venv/share/jupyter/labextensions").stdout.split()
    assert {"@jupyter-widgets", "jupyter-matplotlib", "jupyterlab-plotly",
            "@bokeh", "@jupyter-server"} <= set(out), out


def test_minimal_profile(minimal_base_image: str) -> None:
    packages = _check_profile_image(minimal_base_image, "minimal")
    assert "jupyterlab-widgets" not in packages
    assert "ipympl" not in packages
    assert {"jupyterlab", "jupyterhub"} <= packages.keys()
