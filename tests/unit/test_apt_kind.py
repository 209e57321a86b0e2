"""The apt install kind: schema, apt.txt parsing, order, rendering, registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from nubladobuild.errors import PayloadInvalid
from nubladobuild.kinds import KINDS
from nubladobuild.kinds.apt import MAX_PACKAGES, package_problem, parse_apt_txt
from nubladobuild.schema import INSTALL_KINDS
from tests.unit.helpers import dockerfile_of, files_of, plan_of
from tests.unit.test_kinds import problems_of, write_payload

PIP = "  - pip: {requirements: requirements.txt}\n"
REQ = {"requirements.txt": ""}


def test_registry_has_apt() -> None:
    assert "apt" in KINDS and "apt" in INSTALL_KINDS
    kind = KINDS["apt"]
    assert kind.template == "steps/apt.j2" and kind.stage_template is None
    assert kind.files == ("file",)


@pytest.mark.parametrize("spec", [
    "bc", "g++", "libhdf5-dev", "python3.13", "lib32z1", "bc=1.07.1-4",
    "libc6=2.41-12", "libfoo=1:2.3~rc1-4+b1", "0ad"])
def test_package_names_accepted(spec: str) -> None:
    assert package_problem(spec) is None


@pytest.mark.parametrize(("spec", "needle"), [
    ("a", "lowercase letters"),
    ("Bc", "lowercase letters"),
    ("lib_x", "lowercase letters"),
    ("-o", "options are not allowed"),
    ("--allow-unauthenticated", "options are not allowed"),
    ("http://x.example/a.deb", "URLs and local .deb files"),
    ("./local.deb", "URLs and local .deb files"),
    ("/tmp/x.deb", "URLs and local .deb files"),
    ("bc=", "must be a Debian version"),
    ("bc=latest", "must be a Debian version"),
    ("bc:amd64", "lowercase letters"),
    ("bc\nrm", "U+000A"),
    ("bc\x1b[2K", "U+001B"),
    ("bc rm", "lowercase letters"),
    ("b" * 201, "longer than 200"),
])
def test_package_names_refused(spec: str, needle: str) -> None:
    problem = package_problem(spec)
    assert problem is not None and needle in problem, problem


def test_apt_txt_comments_blank_lines_crlf_duplicates() -> None:
    text = ("# tools\r\n\r\nbc   # calculator\r\n\tunits  \nbc\n"
            "libfoo=1:2.3-4\n# end")
    assert parse_apt_txt(text) == (["bc", "units", "libfoo=1:2.3-4"], [])


def test_apt_txt_problems_name_the_line() -> None:
    text = "bc\n-o\nfoo bar\nx\x01y\nBad\nok\n"
    packages, problems = parse_apt_txt(text)
    assert packages == ["bc", "ok"]
    assert [n for n, _ in problems] == [2, 3, 4, 5]
    assert "options are not allowed" in problems[0][1]
    assert "one package a line" in problems[1][1]
    assert "U+0001" in problems[2][1]


def test_apt_txt_too_many() -> None:
    text = "".join(f"pkg{i}\n" for i in range(MAX_PACKAGES + 1))
    _, problems = parse_apt_txt(text)
    assert problems == [(0, f"{MAX_PACKAGES + 1} packages; at most {MAX_PACKAGES}")]


@pytest.mark.parametrize(("install", "files", "needle"), [
    ("  - apt: {}\n", {}, "install[0].apt: give exactly one of packages"),
    ("  - apt: {packages: [bc], file: apt.txt}\n", {"apt.txt": "bc\n"},
     "install[0].apt: give exactly one of packages"),
    ("  - apt: {packages: []}\n", {}, "install[0].apt.packages"),
    ("  - apt: {packages: [bc, '-o']}\n", {}, "install[0].apt.packages[1]: '-o'"),
    ("  - apt: {packages: bc}\n", {}, "install[0].apt.packages"),
    ("  - apt: {packages: [bc], options: [-y]}\n", {}, "unknown field 'options'"),
    ("  - apt: {file: apt.txt}\n", {}, "file 'apt.txt' does not exist"),
    ("  - apt: {file: /etc/apt.txt}\n", {}, "install[0].apt.file"),
    ("  - apt: {file: apt.txt}\n", {"apt.txt": "bc\n\n-o\n"},
     "install[0].apt.file: apt.txt:3: '-o' is not a Debian package name"),
    ("  - apt: {file: apt.txt}\n", {"apt.txt": "# nothing\n\n"},
     "names no package"),
])
def test_schema_and_file_errors(tmp_path: Path, install: str,
                                files: dict[str, str], needle: str) -> None:
    found = problems_of(write_payload(tmp_path, install + PIP, {**REQ, **files}))
    assert any(needle in p for p in found), found
    assert all(f"{tmp_path}/payload.yaml:3:" in p for p in found), found


def test_packages_over_the_limit(tmp_path: Path) -> None:
    names = ", ".join(f"pkg{i}" for i in range(MAX_PACKAGES + 1))
    found = problems_of(write_payload(tmp_path, f"  - apt: {{packages: [{names}]}}\n"
                                      + PIP, REQ))
    assert any("install[0].apt.packages" in p for p in found), found


def test_apt_txt_not_utf8(tmp_path: Path) -> None:
    directory = write_payload(tmp_path, "  - apt: {file: apt.txt}\n" + PIP, REQ)
    (directory / "apt.txt").write_bytes(b"bc\n\xff\n")
    assert any("is not UTF-8 text" in p for p in problems_of(directory))


def test_apt_after_another_kind_is_refused(tmp_path: Path) -> None:
    directory = write_payload(tmp_path, PIP + "  - apt: {packages: [bc]}\n", REQ)
    with pytest.raises(PayloadInvalid) as info:
        plan_of(directory)
    [problem] = [p.render() for p in info.value.problems]
    assert problem.startswith(f"{directory}/payload.yaml:4: install[1].apt: "
                              "apt steps come first in install"), problem
    assert "move it before install[0] (pip)" in problem


def test_render(tmp_path: Path) -> None:
    directory = write_payload(
        tmp_path, "  - apt: {file: apt.txt}\n  - apt: {packages: [gfortran, bc]}\n"
        + PIP, {**REQ, "apt.txt": "# tools\nbc\nunits=2.24-1\nbc\n"})
    plan = plan_of(directory)
    assert [s.kind for s in plan.steps] == ["apt", "apt", "pip"]
    assert plan.environment.prefix == "/opt/payload/venv"
    files = files_of(plan)
    assert files["steps/00-apt/packages.txt"] == (b"bc\nunits=2.24-1\n", 0o644)
    assert files["steps/01-apt/packages.txt"] == (b"gfortran\nbc\n", 0o644)
    dockerfile = dockerfile_of(plan)
    first = dockerfile.index("# install[0]: apt")
    step = dockerfile[first:dockerfile.index("# install[1]: apt")]
    build = "/usr/local/share/jupyterlab/build"
    assert step.splitlines()[1:] == [
        "# Debian packages (2, listed in steps/00-apt/packages.txt), as root.",
        "RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\",
        "    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \\",
        "    --mount=type=bind,from=nublado-base,source=/usr/local/share/jupyterlab/"
        "venv,target=/usr/local/share/jupyterlab/venv \\",
        f"    --mount=type=bind,from=nublado-base,source={build},target={build} \\",
        "    --mount=type=bind,from=nublado-base,source=/usr/local/etc/jupyter,"
        "target=/usr/local/etc/jupyter \\",
        "    --mount=type=secret,id=ca \\",
        "    --mount=type=bind,source=steps/00-apt,target=/tmp/nb-step \\",
        f"    {build}/with-build-secrets {build}/install-payload-apt \\",
        "    /tmp/nb-step/packages.txt",
        "",
    ]
    # Apt steps run before the pip step, as root in the payload stage.
    assert first < dockerfile.index("# install[2]: pip")
    assert dockerfile.index("AS nublado-payload\nUSER root") < first


def test_helper_script_ships_in_base_build() -> None:
    helper = Path(__file__).resolve().parents[2] / "base/build/install-payload-apt"
    text = helper.read_text()
    assert helper.stat().st_mode & 0o111
    assert "apt-get" in text and "--no-install-recommends" in text
    assert "unknown Debian package(s)" in text
