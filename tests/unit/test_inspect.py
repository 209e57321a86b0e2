"""nublado-build inspect/diff: manifest parsing, version ordering, the diff."""

from __future__ import annotations

import io
import tarfile

import pytest
from packaging.utils import canonicalize_name

from nubladobuild.engine import paths_in_archive
from nubladobuild.inspect import (
    EnvDiff,
    diff_environments,
    diff_packages,
    dpkg_compare,
    environments,
    label_problems,
    parse_dpkg_status,
    python_compare,
)

MANIFESTS = "/usr/local/share/jupyterlab/versions-installed"

#: (a, b, sign of a compared with b), as ``dpkg --compare-versions``.
DPKG_ORDER = [
    ("1.0~rc1", "1.0", -1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0+b1", -1),
    ("1.0", "1.0a", -1),
    ("1.0a", "1.0+", -1),  # letters sort before other characters
    ("1.0", "1.0.1", -1),
    ("1.9", "1.10", -1),  # digit runs compare as numbers
    ("1.01", "1.1", 0),  # leading zeros do not count
    ("1:0.1", "2.0", 1),  # the epoch first
    ("0:1.0", "1.0", 0),  # no epoch is epoch 0
    ("2:1.0", "10:0.1", -1),
    ("1.0-1", "1.0-2", -1),  # the revision last
    ("1.0-10", "1.0-9", 1),
    ("1.0", "1.0-0", 0),  # no revision is revision 0
    ("1.0-1", "1.0", 1),
    ("1.2-3-4", "1.2-3-5", -1),  # the revision is after the last hyphen
    ("2.36-9+deb12u1", "2.36-9", 1),
    ("13.8+deb13u8", "13.8+deb13u10", -1),
    ("5.2.37-2+b10", "5.2.37-2+b9", 1),
    ("3.152", "3.152", 0),
    ("1.0", "1.0~", 1),
]


@pytest.mark.parametrize(("a", "b", "sign"), DPKG_ORDER)
def test_dpkg_compare(a: str, b: str, sign: int) -> None:
    assert dpkg_compare(a, b) == sign
    assert dpkg_compare(b, a) == -sign


@pytest.mark.parametrize(("a", "b", "sign"), [
    ("1.0rc1", "1.0", -1), ("1.0", "1.0.0", 0), ("2.10", "2.9", 1),
    ("1.0.post1", "1.0", 1), ("1!0.1", "2.0", 1),
    ("not-pep440", "not-pep440", 0), ("weird~1", "weird", -1)])
def test_python_compare(a: str, b: str, sign: int) -> None:
    assert python_compare(a, b) == sign


STATUS = """\
Package: adduser
Status: install ok installed
Priority: important
Version: 3.152
Description: add and remove users
 and groups, a continuation line: Version: 9.9

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.37-2+b10

Package: gone
Status: deinstall ok config-files
Version: 1.0-1

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.41-12

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.41-12
"""


def test_parse_dpkg_status() -> None:
    assert parse_dpkg_status(STATUS) == {
        "adduser": "3.152", "bash": "5.2.37-2+b10", "libc6": "2.41-12",
        "libc6:i386": "2.41-12"}
    assert parse_dpkg_status("") == {}


def test_environments_from_image_files() -> None:
    files = {
        f"{MANIFESTS}/jupyterlab.txt": b"jupyterlab==4.4.0\nipywidgets==8.1.0\n",
        f"{MANIFESTS}/lab-extensions-demo.txt": b"jupyterlab-spellchecker==0.9.0\n",
        f"{MANIFESTS}/payload-demo.txt":
            b"Python 3.13.5\nnumpy==2.5.5\nPygments==2.2\n",
        f"{MANIFESTS}/guard-demo.txt": b"isolation guard: ok\n",
        f"{MANIFESTS}/system.txt": b"bash=5.2\n",
        "/var/lib/dpkg/status": STATUS.encode(),
    }
    envs = environments(files)
    assert envs == {
        "lab": {"jupyterlab": "4.4.0", "ipywidgets": "8.1.0",
                "jupyterlab-spellchecker": "0.9.0"},
        "payload:demo": {"numpy": "2.5.5", "Pygments": "2.2"},
        "debian": parse_dpkg_status(STATUS)}


def test_diff_packages_exact() -> None:
    old = {"numpy": "2.5.5", "pandas": "3.1.1", "six": "1.17.0", "Pygments": "2.21.0",
           "zzz": "1.0"}
    new = {"numpy": "2.5.4", "pandas": "3.2.0", "attrs": "25.4.0",
           "pygments": "2.21.0", "zzz": "1.0.0"}
    diff = diff_packages(old, new, python_compare, key=canonicalize_name)
    assert diff == EnvDiff(added=(("attrs", "25.4.0"),),
                           removed=(("six", "1.17.0"),),
                           upgraded=(("pandas", "3.1.1", "3.2.0"),),
                           downgraded=(("numpy", "2.5.5", "2.5.4"),))
    assert diff.changed
    assert diff.as_dict() == {
        "added": [{"name": "attrs", "version": "25.4.0"}],
        "removed": [{"name": "six", "version": "1.17.0"}],
        "upgraded": [{"name": "pandas", "from": "3.1.1", "to": "3.2.0"}],
        "downgraded": [{"name": "numpy", "from": "2.5.5", "to": "2.5.4"}]}
    assert not diff_packages(old, old, python_compare).changed


def test_diff_environments_per_environment() -> None:
    a = {"lab": {"jupyterlab": "4.4.0"}, "payload:demo": {"numpy": "2.5.5"},
         "debian": {"bash": "5.2.37-2+b10", "tzdata": "2025b-4"}}
    b = {"lab": {"jupyterlab": "4.4.0"}, "payload:other": {"numpy": "2.5.5"},
         "debian": {"bash": "5.2.37-2+b9", "tzdata": "2025b-4+deb13u1"}}
    diffs = diff_environments(a, b)
    assert list(diffs) == ["lab", "payload:demo", "payload:other", "debian"]
    assert not diffs["lab"].changed
    assert diffs["payload:demo"] == EnvDiff(removed=(("numpy", "2.5.5"),))
    assert diffs["payload:other"] == EnvDiff(added=(("numpy", "2.5.5"),))
    assert diffs["debian"] == EnvDiff(
        upgraded=(("tzdata", "2025b-4", "2025b-4+deb13u1"),),
        downgraded=(("bash", "5.2.37-2+b10", "5.2.37-2+b9"),))


GOOD_LABELS = {
    "org.opencontainers.image.created": "2026-01-31T23:59:59Z",
    "org.opencontainers.image.version": "w_2026_05",
    "org.opencontainers.image.title": "scipy-lab",
    "org.opencontainers.image.description": "Scientific Python",
    "io.nublado.base.digest": "sha256:" + "a" * 64,
    "io.nublado.inputs.sha256": "b" * 64,
    "io.nublado.build.version": "0.1.0",
}


def test_label_problems() -> None:
    assert label_problems(GOOD_LABELS) == []
    with_git = {**GOOD_LABELS, "org.opencontainers.image.revision": "c" * 40,
                "org.opencontainers.image.source": "https://github.com/o/r.git"}
    assert label_problems(with_git) == []
    bad = {**GOOD_LABELS, "org.opencontainers.image.created": "2026-02-30T00:00:00Z",
           "org.opencontainers.image.revision": "HEAD"}
    del bad["io.nublado.inputs.sha256"]
    assert label_problems(bad) == [
        "label io.nublado.inputs.sha256 is missing",
        "label org.opencontainers.image.revision='HEAD' does not match "
        "[0-9a-f]{40}|[0-9a-f]{64}",
        "label org.opencontainers.image.created='2026-02-30T00:00:00Z' is not a "
        "date"]
    assert label_problems({**GOOD_LABELS, "org.opencontainers.image.created": ""})


def _tar(members: dict[str, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_paths_in_archive() -> None:
    directory = _tar({"versions-installed": None,
                      "versions-installed/jupyterlab.txt": b"a==1\n",
                      "versions-installed/sub": None,
                      "versions-installed/sub/deep.txt": b"x"})
    assert paths_in_archive(directory, MANIFESTS) == {
        f"{MANIFESTS}/jupyterlab.txt": b"a==1\n"}
    single = _tar({"status": b"Package: a\n"})
    assert paths_in_archive(single, "/var/lib/dpkg/status") == {
        "/var/lib/dpkg/status": b"Package: a\n"}
