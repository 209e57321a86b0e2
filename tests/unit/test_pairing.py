"""The pairing table (data) and its matcher: every row, every outcome."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from nubladobuild import pairing
from nubladobuild.engine import files_in_archive
from nubladobuild.errors import EXIT_FAILED, BuildFailed, PayloadInvalid
from nubladobuild.loader import load_payload
from nubladobuild.pairing import (
    PAIRING_LABEL,
    TABLE_PATH,
    Mismatch,
    TableInvalid,
    load_table,
    match,
    parse_manifest,
    parse_table,
    report,
    verify_build,
)
from tests.unit.helpers import dockerfile_of, plan_of

REPO = Path(__file__).resolve().parents[2]

#: Every row of the shipped table: (kernel, kernel version, lab, a lab
#: version that pairs, one out of range, the range the message names).
ROWS = [
    ("ipywidgets", "8.1.5", "jupyterlab_widgets", "3.0.13", "1.1.11", ">=3,<4"),
    ("ipywidgets", "7.8.5", "jupyterlab_widgets", "1.1.11", "3.0.13", ">=1,<2"),
    ("ipympl", "0.9.4", "ipympl", "0.9.7", "0.10.0", "==0.9.*"),
    ("bokeh", "3.6.2", "jupyter_bokeh", "4.0.5", "3.0.7", ">=4,<5"),
    ("plotly", "5.24.1", "plotly", "5.9.0", "6.0.1", "==5.*"),
    ("panel", "1.5.4", "pyviz_comms", "3.0.6", "2.3.2", ">=3,<4"),
    ("holoviews", "1.20.0", "pyviz_comms", "3.0.6", "2.3.2", ">=3,<4"),
    ("bqplot", "0.12.43", "bqplot", "0.12.45", "0.13.1", "==0.12.*"),
    ("ipyleaflet", "0.19.2", "jupyter_leaflet", "0.19.2", "0.20.0", "==0.19.*"),
    ("ipyleaflet", "0.17.4", "ipyleaflet", "0.17.0", "0.19.2", "==0.17.*"),
    ("pythreejs", "2.4.2", "pythreejs", "2.4.1", "2.3.0", "==2.4.*"),
    ("ipydatawidgets", "4.3.5", "ipydatawidgets", "4.3.2", "4.2.0", "==4.3.*"),
]
ROW_IDS = [f"{k}-{v}-{lab}" for k, v, lab, *_ in ROWS]


def test_table_loads_and_validates() -> None:
    table = parse_table(TABLE_PATH.read_text(), str(TABLE_PATH))
    assert table.version == 1
    assert [(p.kernel, p.kernel_versions, p.lab) for p in table.pairs] == [
        ("ipywidgets", ">=8,<9", "jupyterlab_widgets"),
        ("ipywidgets", ">=7,<8", "jupyterlab_widgets"),
        ("ipympl", "", "ipympl"),
        ("bokeh", ">=3,<4", "jupyter_bokeh"),
        ("plotly", "", "plotly"),
        ("panel", ">=1", "pyviz_comms"),
        ("holoviews", "", "pyviz_comms"),
        ("bqplot", "", "bqplot"),
        ("ipyleaflet", ">=0.18", "jupyter_leaflet"),
        ("ipyleaflet", "<0.18", "ipyleaflet"),
        ("pythreejs", "", "pythreejs"),
        ("ipydatawidgets", "", "ipydatawidgets"),
    ]
    assert load_table() == table
    assert [p.kernel for p in table.pairs] == [k for k, *_ in ROWS]


def test_table_is_package_data(tmp_path: Path) -> None:
    """The wheel carries the table where the code looks for it."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("nubladobuild-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("nubladobuild/data/pairing.yaml") == \
            TABLE_PATH.read_bytes()


GOOD_ROW = ("version: 1\npairs:\n  - {kernel: a, lab: b, lab_versions: '>=1', "
            "why: x}\n")


@pytest.mark.parametrize(("text", "problem"), [
    ("version: 1\npairs:\n  - {kernel: a, lab: b, why: x}\n",
     "pairs.0: Value error, give exactly one of lab_versions"),
    ("version: 1\npairs:\n  - {kernel: a, lab: b, lab_versions: '>=1', "
     "same: minor, why: x}\n", "pairs.0: Value error, give exactly one"),
    ("version: 1\npairs:\n  - {kernel: a, lab: b, lab_versions: '3.x', why: x}\n",
     "pairs.0.lab_versions: Value error, '3.x' is not a PEP 440 version specifier"),
    ("version: 1\npairs:\n  - {kernel: a, kernel_versions: '~=1', lab: b, "
     "same: major, why: x}\n", "pairs.0.kernel_versions: Value error, '~=1'"),
    ("version: 1\npairs:\n  - {kernel: 'a b', lab: b, same: major, why: x}\n",
     "pairs.0.kernel: Value error, 'a b' is not a valid distribution name"),
    ("version: 1\npairs:\n  - {kernel: a, lab: b, same: patch, why: x}\n",
     "pairs.0.same: Input should be 'major' or 'minor'"),
    ("version: 1\npairs:\n  - {kernel: a, lab: b, same: major, why: x, "
     "extra: 1}\n", "pairs.0.extra: Extra inputs are not permitted"),
    ("version: 1\npairs:\n  - {kernel: a, lab: b, same: major}\n",
     "pairs.0.why: Field required"),
    (GOOD_ROW.replace("version: 1", "version: 2"), "version: Input should be 1"),
    ("version: 1\npairs: []\n", "pairs: List should have at least 1 item"),
    (GOOD_ROW + "  - {kernel: A, lab: B, lab_versions: '>=2', why: y}\n",
     "(top): Value error, two rows for A (all versions) -> B"),
    ("version: 1\npairs: [\n", "not valid YAML"),
])
def test_bad_tables_are_refused(text: str, problem: str) -> None:
    with pytest.raises(TableInvalid) as info:
        parse_table(text, "t.yaml")
    assert info.value.message.startswith("t.yaml: ")
    assert problem in info.value.message, info.value.message


@pytest.mark.parametrize(("kernel", "version", "lab", "good", "bad", "needs"), ROWS,
                         ids=ROW_IDS)
def test_every_row_matches_misses_and_ranges(kernel: str, version: str, lab: str,
                                             good: str, bad: str,
                                             needs: str) -> None:
    payload = {kernel: version, "numpy": "2.1.0"}
    lab_base = {"jupyterlab": "4.4.0"}
    assert match({**lab_base, lab: good}, payload) == []
    missing = match(lab_base, payload)
    assert missing == [Mismatch(kernel, version, lab, needs, None,
                                missing[0].profile)]
    out_of_range = match({**lab_base, lab: bad}, payload)
    assert out_of_range == [Mismatch(kernel, version, lab, needs, bad,
                                     missing[0].profile)]


def test_rows_without_their_kernel_package_do_not_apply() -> None:
    assert match({"jupyterlab": "4.4.0"}, {"numpy": "2.1.0", "ipywidgets": "6.0.0",
                                          "bokeh": "2.4.3"}) == []


def test_names_compare_canonicalised() -> None:
    lab = {"JupyterLab-Widgets": "3.0.13"}
    assert match(lab, {"IPyWidgets": "8.1.5"}) == []
    assert match({"jupyterlab.widgets": "3.0.13"}, {"ipywidgets": "8.1.5"}) == []
    (mismatch,) = match({"Jupyter-Bokeh": "3.0.7"}, {"Bokeh": "3.6.2"})
    assert (mismatch.kernel, mismatch.lab, mismatch.lab_version) == (
        "bokeh", "jupyter_bokeh", "3.0.7")


def test_prereleases_in_range_pair() -> None:
    assert match({"jupyterlab_widgets": "3.0.1rc1"}, {"ipywidgets": "8.0.0"}) == []
    # 3.0.0rc1 comes before 3.0.0 (PEP 440), so it is below >=3.
    assert len(match({"jupyterlab_widgets": "3.0.0rc1"}, {"ipywidgets": "8.0.0"})) == 1


def test_unparseable_versions_are_not_in_range() -> None:
    assert match({}, {"ipywidgets": "not-a-version"}) == []
    (mismatch,) = match({"jupyterlab_widgets": "weird"}, {"ipywidgets": "8.1.5"})
    assert mismatch.lab_version == "weird"


def test_messages_name_both_packages_versions_and_the_fix() -> None:
    (missing,) = match({}, {"ipywidgets": "8.1.5"})
    assert missing.message == (
        "payload has ipywidgets 8.1.5, which needs jupyterlab_widgets>=3,<4 in "
        "the lab; the lab has none: add `jupyterlab_widgets>=3,<4` to "
        "lab.extensions in payload.yaml, or build on the standard base profile")
    (no_profile,) = match({}, {"bqplot": "0.12.43"})
    assert no_profile.message == (
        "payload has bqplot 0.12.43, which needs bqplot==0.12.* in the lab; the "
        "lab has none: add `bqplot==0.12.*` to lab.extensions in payload.yaml")
    (drifted,) = match({"jupyterlab_widgets": "1.1.11"}, {"ipywidgets": "8.1.5"})
    assert drifted.message == (
        "payload has ipywidgets 8.1.5, which needs jupyterlab_widgets>=3,<4 in "
        "the lab; the lab has jupyterlab_widgets 1.1.11, out of range: build on "
        "a base whose lab has `jupyterlab_widgets>=3,<4`, or pin the payload's "
        "ipywidgets to a release that pairs with jupyterlab_widgets 1.1.11")
    assert report([missing, drifted], "demo") == (
        "payload demo: 2 lab frontends do not pair with the payload's kernel "
        f"packages:\n  - {missing.message}\n  - {drifted.message}")
    assert report([missing], "demo").startswith(
        "payload demo: 1 lab frontend does not pair")


def test_parse_manifest_reads_write_manifest_output() -> None:
    text = "Python 3.13.5\nipywidgets==8.1.5\nJupyterLab-Widgets==3.0.13\n\n"
    assert parse_manifest(text) == {"ipywidgets": "8.1.5",
                                    "JupyterLab-Widgets": "3.0.13"}


def fake_image(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> list[str]:
    """Serve manifests as if read from an image; return the images asked."""
    asked: list[str] = []

    def read(image: str, directory: str, names: object) -> dict[str, bytes]:
        assert directory == "/usr/local/share/jupyterlab/versions-installed"
        asked.append(image)
        return {name: text.encode() for name, text in files.items()}

    monkeypatch.setattr(pairing, "read_image_files", read)
    return asked


DRIFT = {"jupyterlab.txt": "jupyterlab==4.4.0\n",
         "payload-demo.txt": "Python 3.13.5\nipywidgets==8.1.5\n"}


def test_verify_build_fails_on_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_image(monkeypatch, DRIFT)
    with pytest.raises(BuildFailed) as info:
        verify_build("sha256:abc", "demo", "fail")
    assert info.value.exit_code == EXIT_FAILED
    assert info.value.message == (
        "payload demo: 1 lab frontend does not pair with the payload's kernel "
        "packages:\n  - payload has ipywidgets 8.1.5, which needs "
        "jupyterlab_widgets>=3,<4 in the lab; the lab has none: add "
        "`jupyterlab_widgets>=3,<4` to lab.extensions in payload.yaml, or build "
        "on the standard base profile\nNo image was tagged; existing tags are "
        "unchanged. To build anyway, set `lab: {pairing: warn}` in payload.yaml.")


def test_verify_build_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_image(monkeypatch, DRIFT)
    result = verify_build("sha256:abc", "demo", "warn")
    assert asked == ["sha256:abc"]
    assert result.mode == "warn"
    assert result.warnings == [
        "payload has ipywidgets 8.1.5, which needs jupyterlab_widgets>=3,<4 in "
        "the lab; the lab has none: add `jupyterlab_widgets>=3,<4` to "
        "lab.extensions in payload.yaml, or build on the standard base profile"]


def test_verify_build_passes_when_paired(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_image(monkeypatch, {**DRIFT, "jupyterlab.txt": "jupyterlab_widgets==3.0.13"})
    assert verify_build("sha256:abc", "demo", "fail").mismatches == ()


def test_verify_build_fails_without_manifest(monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    fake_image(monkeypatch, {"jupyterlab.txt": "jupyterlab==4.4.0\n"})
    with pytest.raises(BuildFailed) as info:
        verify_build("sha256:abc", "demo", "warn")
    assert info.value.message == (
        "payload demo: pairing check: sha256:abc: no "
        "/usr/local/share/jupyterlab/versions-installed/payload-demo.txt; the "
        "pairing check reads what the lab venv and the payload installed from "
        "there (nublado-build writes both). No image was tagged.")


PAYLOAD = """\
name: demo
install:
  - pip: {requirements: requirements.txt}
kernel: {name: demo, display_name: Demo}
"""


def write_payload(tmp: Path, extra: str = "") -> Path:
    (tmp / "payload.yaml").write_text(PAYLOAD + extra)
    (tmp / "requirements.txt").write_text("ipywidgets\n")
    return tmp


@pytest.mark.parametrize(("extra", "mode"), [
    ("", "fail"), ("lab: {pairing: warn}\n", "warn"), ("lab: {}\n", "fail")])
def test_lab_pairing_in_payload_and_label(tmp_path: Path, extra: str,
                                          mode: str) -> None:
    directory = write_payload(tmp_path, extra)
    assert load_payload(directory).model.lab.pairing == mode
    assert f'{PAIRING_LABEL}="{mode}"' in dockerfile_of(plan_of(directory))


def test_lab_pairing_bad_value(tmp_path: Path) -> None:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(write_payload(tmp_path, "lab: {pairing: ignore}\n"))
    (problem,) = [p.render() for p in info.value.problems]
    assert problem.startswith(f"{tmp_path}/payload.yaml:5: lab.pairing: "), problem
    assert "'fail' or 'warn'" in problem, problem


def test_files_in_archive_takes_regular_files_of_the_directory() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        def add(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
                link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname = kind, len(data), link
            archive.addfile(info, io.BytesIO(data))
        add("versions-installed", kind=tarfile.DIRTYPE)
        add("versions-installed/jupyterlab.txt", b"jupyterlab==4.4.0\n")
        add("versions-installed/payload-demo.txt", kind=tarfile.SYMTYPE,
            link="/etc/shadow")
        add("versions-installed/sub/jupyterlab.txt", b"nested\n")
        add("other/payload-demo.txt", b"elsewhere\n")
    assert files_in_archive(buffer.getvalue(),
                            "/usr/local/share/jupyterlab/versions-installed/",
                            ["jupyterlab.txt", "payload-demo.txt"]) == {
        "jupyterlab.txt": b"jupyterlab==4.4.0\n"}
