"""Tests for nubladobuild.conda (and base/build/conda-install)."""

from __future__ import annotations

import hashlib
import json
import pathlib
import textwrap

import pytest
from rattler import Channel, RepoData, RepoDataRecord

from nubladobuild import conda
from tests.fixtures.conda_meta import MetaPackage, metadata_channel

REPO = pathlib.Path(__file__).resolve().parents[2]
CONDA_INSTALL = REPO / "base" / "build" / "conda-install"


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------------------
# load_environment


def test_load_environment(tmp_path: pathlib.Path) -> None:
    env = conda.load_environment(
        write(
            tmp_path / "environment.yml",
            """\
        name: demo
        channels:
          - conda-forge
          - nodefaults
        dependencies:
          - python=3.11
          - numpy >=1.26,<2
          - pip:
              - idna==3.10
              - --index-url https://example.org/simple
        """,
        )
    )
    assert env == conda.CondaEnvironment(
        name="demo",
        channels=["conda-forge"],
        dependencies=["python=3.11", "numpy >=1.26,<2", "pip"],
        pip=["idna==3.10", "--index-url https://example.org/simple"],
    )


def test_load_environment_keeps_explicit_pip(tmp_path: pathlib.Path) -> None:
    env = conda.load_environment(
        write(
            tmp_path / "e.yml",
            """\
        dependencies:
          - conda-forge::pip=24
          - pip: [six]
        """,
        )
    )
    assert env.name is None
    assert env.channels == []
    assert env.dependencies == ["conda-forge::pip=24"]
    assert env.pip == ["six"]


def test_load_environment_without_pip(tmp_path: pathlib.Path) -> None:
    env = conda.load_environment(write(tmp_path / "e.yml", "dependencies: [python]\n"))
    assert env.dependencies == ["python"]
    assert env.pip == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("dependencies: python\n", "'dependencies' must be a list"),
        ("dependencies: [{conda: [x]}]\n", "dependencies[0]"),
        ("dependencies: [{pip: x}]\n", "dependencies[0].pip"),
        ("channels: [1]\n", "'channels'"),
        ("name: [x]\n", "'name'"),
        ("dependencies: [\n", "cannot read"),
    ],
)
def test_load_environment_errors(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    with pytest.raises(
        conda.CondaError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        conda.load_environment(write(tmp_path / "e.yml", text))


def test_load_environment_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(conda.CondaError, match="cannot read"):
        conda.load_environment(tmp_path / "nope.yml")


# ---------------------------------------------------------------------------
# lock files and fetching, with records made from a hand-written repodata


def fake_channel(root: pathlib.Path) -> list[RepoDataRecord]:
    """A channel of two metadata-only archives (not usable, but real)."""
    url = metadata_channel(
        root,
        [
            MetaPackage("six", "1.17.0", "noarch", ("python",), "pyh_0", "python"),
            MetaPackage("python", "3.11.7", "linux-64", ("__glibc >=2.17",), "h_0"),
        ],
    )
    records: list[RepoDataRecord] = []
    for subdir in ("noarch", "linux-64"):
        records += RepoData.from_path(root / subdir / "repodata.json").into_repo_data(
            Channel(url)
        )
    return records


def test_lock_round_trip(tmp_path: pathlib.Path) -> None:
    records = fake_channel(tmp_path / "channel")
    env = conda.CondaEnvironment(channels=[(tmp_path / "channel").as_uri()])
    conda.write_lock({"linux-64": records}, env, tmp_path / "a.lock")
    conda.write_lock({"linux-64": list(reversed(records))}, env, tmp_path / "b.lock")
    assert (tmp_path / "a.lock").read_bytes() == (tmp_path / "b.lock").read_bytes()

    back = conda.read_lock(tmp_path / "a.lock")
    assert [r.file_name for r in back] == [
        "python-3.11.7-h_0.conda",
        "six-1.17.0-pyh_0.conda",
    ]
    by_name = {r.name.normalized: r for r in records}
    for r in back:
        orig = by_name[r.name.normalized]
        assert r.sha256 == orig.sha256
        assert r.md5 == orig.md5
        assert r.url == orig.url
        assert r.depends == orig.depends
        assert r.subdir == orig.subdir
        assert str(r.build) == str(orig.build)
        assert r.noarch == orig.noarch


def test_read_lock_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(conda.CondaError, match="cannot read lock file"):
        conda.read_lock(write(tmp_path / "bad.lock", "not: [a lock\n"))
    records = fake_channel(tmp_path / "channel")
    conda.write_lock({"linux-64": records}, conda.CondaEnvironment(),
                     tmp_path / "ok.lock")
    with pytest.raises(
        conda.CondaError, match="no conda packages for platform osx-arm64"
    ):
        conda.read_lock(tmp_path / "ok.lock", platform="osx-arm64")


def test_fetch_packages(tmp_path: pathlib.Path) -> None:
    records = fake_channel(tmp_path / "channel")
    dest = tmp_path / "pkgs"
    dest.mkdir()
    (dest / "stale-1.0-0.conda").write_text("old")
    conda.fetch_packages(records, dest, ["idna==3.10"])
    assert sorted(p.name for p in dest.iterdir()) == [
        "pip-requirements.txt",
        "python-3.11.7-h_0.conda",
        "records.json",
        "six-1.17.0-pyh_0.conda",
    ]
    doc = json.loads((dest / "records.json").read_text())
    assert doc["version"] == conda.RECORDS_FORMAT_VERSION
    assert [p["fn"] for p in doc["packages"]] == [
        "python-3.11.7-h_0.conda",
        "six-1.17.0-pyh_0.conda",
    ]
    for entry in doc["packages"]:
        assert (
            hashlib.sha256((dest / entry["fn"]).read_bytes()).hexdigest()
            == entry["sha256"]
        )
    assert (dest / "pip-requirements.txt").read_text() == "idna==3.10\n"

    # idempotent, and the pip file goes away when there are no pip requirements
    before = (dest / "records.json").read_bytes()
    conda.fetch_packages(records, dest)
    assert (dest / "records.json").read_bytes() == before
    assert not (dest / "pip-requirements.txt").exists()


def test_fetch_packages_sha_mismatch(tmp_path: pathlib.Path) -> None:
    records = fake_channel(tmp_path / "channel")
    (tmp_path / "channel" / "noarch" / "six-1.17.0-pyh_0.conda").write_bytes(
        b"tampered"
    )
    with pytest.raises(conda.CondaError, match="sha256 mismatch"):
        conda.fetch_packages(records, tmp_path / "pkgs")
    assert not (tmp_path / "pkgs" / "six-1.17.0-pyh_0.conda").exists()


def test_solve_needs_channels() -> None:
    with pytest.raises(conda.CondaError, match="no channels"):
        conda.solve(conda.CondaEnvironment(dependencies=["python"]))
