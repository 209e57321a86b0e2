"""nubladobuild.conda against a real conda channel (tests/fixtures/conda_channel.py).

Solve, lock, fetch and install with py-rattler and base/build/conda-install,
no Docker engine needed; the channel fixture (tests/integration/conftest.py)
fails under CI=true when it cannot be built.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request

import pytest

from nubladobuild import conda

pytestmark = pytest.mark.integration
REPO = pathlib.Path(__file__).resolve().parents[2]
CONDA_INSTALL = REPO / "base" / "build" / "conda-install"


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_solve_lock_fetch_install(conda_channel: str, tmp_path: pathlib.Path) -> None:
    env = conda.load_environment(
        write(
            tmp_path / "environment.yml",
            f"""\
        name: demo
        channels: [{conda_channel}]
        dependencies: [python=3.11, ipykernel, six]
        """,
        )
    )
    records = conda.solve(env)
    names = {r.name.normalized: r for r in records}
    assert str(names["python"].version) == "3.11.7"
    assert {"ipykernel", "six", "pyzmq", "tornado", "jupyter-client"} <= set(names)
    assert names["pyzmq"].subdir == "linux-64"
    assert names["six"].subdir == "noarch"

    conda.write_lock({"linux-64": records}, env, tmp_path / "conda-lock.yml")
    locked = conda.read_lock(tmp_path / "conda-lock.yml")
    assert [(r.file_name, r.sha256) for r in locked] == [
        (r.file_name, r.sha256) for r in records
    ]

    pkgs = tmp_path / "pkgs"
    conda.fetch_packages(locked, pkgs)
    prefix = tmp_path / "env"
    proc = subprocess.run(
        [
            sys.executable,
            str(CONDA_INSTALL),
            "--packages",
            str(pkgs),
            "--prefix",
            str(prefix),
            "--no-compile",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run(
        [
            str(prefix / "bin" / "python"),
            "-c",
            "import sys, ssl, sqlite3, ipykernel, six, zmq;"
            " print(sys.prefix, sys.version_info[:2])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == [str(prefix), "(3,", "11)"]
    assert not (prefix / "CACHEDIR.TAG").exists()
    assert not list(prefix.rglob("*rattler*"))


def test_solve_unsatisfiable(conda_channel: str) -> None:
    env = conda.CondaEnvironment(channels=[conda_channel], dependencies=["python=3.12"])
    with pytest.raises(conda.CondaError, match="cannot solve"):
        conda.solve(env)


def test_solve_respects_glibc(conda_channel: str) -> None:
    env = conda.CondaEnvironment(channels=[conda_channel], dependencies=["python"])
    with pytest.raises(conda.CondaError):
        conda.solve(env, virtual=[("__glibc", "2.5", "0"), ("__unix", "0", "0")])


@pytest.mark.filterwarnings("ignore::DeprecationWarning",
                            "ignore::PendingDeprecationWarning")
def test_lock_for_two_platforms(conda_channel: str, tmp_path: pathlib.Path) -> None:
    """linux-64 from the fixture channel; linux-aarch64 twins of its binary
    packages (metadata only) in a second channel; noarch shared."""
    from conda_lock.lockfile import (  # type: ignore[import-untyped,unused-ignore]
        parse_conda_lock_file,
    )

    from tests.fixtures.conda_meta import metadata_channel, mirror_subdir

    root = pathlib.Path(urllib.request.url2pathname(
        urllib.parse.urlparse(conda_channel).path))
    twins = mirror_subdir(root, "linux-64", "linux-aarch64")
    aarch = metadata_channel(tmp_path / "aarch64", twins)
    env = conda.CondaEnvironment(channels=[conda_channel, aarch],
                                 dependencies=["python=3.11", "ipykernel", "six"])
    platforms = ("linux-64", "linux-aarch64")
    solutions = {p: conda.solve(env, platform=p) for p in platforms}
    alone = conda.solve(dataclasses.replace(env, channels=[conda_channel]))
    assert [r.file_name for r in solutions["linux-64"]] == [
        r.file_name for r in alone]
    aarch_names = {r.name.normalized: r for r in solutions["linux-aarch64"]}
    assert aarch_names["python"].subdir == "linux-aarch64"
    assert aarch_names["pyzmq"].subdir == "linux-aarch64"
    assert aarch_names["ipykernel"].subdir == "noarch"
    assert set(aarch_names) == {r.name.normalized for r in alone}

    path = tmp_path / "conda-lock.yml"
    conda.write_lock(solutions, env, path)
    parsed = parse_conda_lock_file(path)
    assert parsed.metadata.platforms == list(platforms)
    assert len(parsed.package) == sum(len(r) for r in solutions.values())
    for platform in platforms:
        assert [(r.file_name, r.sha256, r.url) for r in
                conda.read_lock(path, platform)] == [
            (r.file_name, r.sha256, r.url) for r in solutions[platform]]
