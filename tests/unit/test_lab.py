"""The guarded lab section: validation, the lock file, the lab stage's render."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nubladobuild.errors import EXIT_INPUT, PayloadInvalid
from nubladobuild.lab import (
    LABEL,
    LOCK_FILE,
    conflicts,
    freeze_digest,
    inputs_digest,
    lock_text,
    parse_compiled,
    parse_lock,
    pip_errors,
)
from nubladobuild.loader import load_payload
from nubladobuild.plan import build_plan
from tests.unit.helpers import files_of

HEAD = """\
name: demo
install:
  - pip: {requirements: requirements.txt}
kernel:
  name: demo
  display_name: Demo
"""
HASH_A, HASH_B = "a" * 64, "b" * 64
FREEZE = {"jupyterlab": "4.6.6", "jupyter-server": "2.21.1", "tornado": "6.6.1"}
RESOLVED = {"jupyterlab-spellchecker": ("0.9.0", [HASH_B, HASH_A]),
            "jupyterlab": ("4.6.6", [HASH_A]),
            "jupyter-server": ("2.21.1", [HASH_A])}


def write(tmp: Path, lab: str, lock: str | None = None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "payload.yaml").write_text(HEAD + lab)
    (tmp / "requirements.txt").write_text("six\n")
    if lock is not None:
        (tmp / LOCK_FILE).write_text(lock)
    return tmp


def problems(tmp: Path, lab: str) -> list[str]:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(write(tmp, lab))
    assert info.value.exit_code == EXIT_INPUT
    return [p.render() for p in info.value.problems]


def plan_problems(tmp: Path, lab: str, lock: str | None) -> list[str]:
    loaded = load_payload(write(tmp, lab, lock))
    with pytest.raises(PayloadInvalid) as info:
        build_plan(loaded)
    assert info.value.exit_code == EXIT_INPUT
    return [p.render() for p in info.value.problems]


def good_lock(extensions: list[str]) -> str:
    return lock_text("demo", "payloads/demo", extensions, FREEZE, RESOLVED)


def test_defaults_and_pairing(tmp_path: Path) -> None:
    model = load_payload(write(tmp_path, "")).model
    assert model.lab.extensions == []
    assert model.lab.pairing == "fail"
    assert not model.lab.has_stage
    model = load_payload(write(tmp_path, "lab: {pairing: warn}\n")).model
    assert model.lab.pairing == "warn"
    assert not model.lab.has_stage


def test_unknown_keys_are_refused_with_lines(tmp_path: Path) -> None:
    found = problems(tmp_path, "lab:\n  extension: [x]\n  settings:\n"
                     "    page_config: {}\n  pairing: maybe\n")
    assert found == [
        f"{tmp_path}/payload.yaml:8: lab.extension: unknown field 'extension'; "
        "remove it or check its spelling",
        f"{tmp_path}/payload.yaml:10: lab.settings.page_config: unknown field "
        "'page_config'; remove it or check its spelling",
        f"{tmp_path}/payload.yaml:11: lab.pairing: Input should be 'fail' or "
        "'warn'",
    ]


@pytest.mark.parametrize(("entry", "says"), [
    ("'jupyterlab-spellchecker @ https://example.org/x.whl'", "is a path or URL"),
    ("'foo @ git+https://example.org/foo'", "is a path or URL"),
    ("./wheels/x.whl", "is a path or URL"),
    ("/tmp/x.whl", "is a path or URL"),
    ("'--index-url=https://example.org/simple'", "is a pip option"),
    ("'-e foo'", "is a pip option"),
    ("'foo[bar'", "is not a valid requirement"),
    ("'foo; python_version > \"3\"'", "has an environment marker"),
    ('"foo\\x1b[31m"', "contains the control character U+001B"),
    ('"foo\\nbar"', "contains the control character U+000A"),
    ("''", "an extension must name a package"),
])
def test_bad_requirements_are_refused(tmp_path: Path, entry: str, says: str) -> None:
    found = problems(tmp_path, f"lab:\n  extensions:\n    - {entry}\n")
    assert len(found) == 1, found
    assert found[0].startswith(f"{tmp_path}/payload.yaml:9: lab.extensions[0]: ")
    assert says in found[0]


def test_duplicate_extension_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "lab:\n  extensions: [Foo_Bar, foo-bar>=1]\n")
    assert found == [f"{tmp_path}/payload.yaml:8: lab.extensions: 'foo-bar' is "
                     "named twice; give it once, with all its specifiers"]


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
lab:
  settings:
    overrides:
      not-a-plugin-id: {a: 1}
    disabled_extensions: ["Bad Name", "@jupyterlab/apputils-extension:announcements"]
""")
    assert len(found) == 2, found
    assert "lab.settings.overrides: Value error, " not in found[0]
    assert "'not-a-plugin-id' is not a JupyterLab plugin id" in found[0]
    assert "lab.settings.disabled_extensions[0]: 'Bad Name' is not a JupyterLab " \
        "extension or plugin name" in found[1]


def test_settings_values_must_be_json(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
lab:
  settings:
    overrides:
      "@jupyterlab/notebook-extension:tracker": {when: 2024-01-01}
""")
    assert len(found) == 1
    assert "a date is not a JSON value" in found[0]


def test_lock_round_trip() -> None:
    text = good_lock(["jupyterlab-spellchecker>=0.8"])
    lock = parse_lock(text)
    assert lock.inputs == inputs_digest(["jupyterlab-spellchecker >= 0.8"])
    assert lock.base == freeze_digest(FREEZE)
    assert lock.added == (("jupyterlab-spellchecker", "0.9.0"),)
    assert lock.in_base == (("jupyter-server", "2.21.1"), ("jupyterlab", "4.6.6"))
    assert lock.label == "jupyterlab-spellchecker==0.9.0"
    # pip reads only the additions: the in-base pins are comments.
    pins = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", " "))]
    assert pins == ["jupyterlab-spellchecker==0.9.0 \\"]
    assert f"--hash=sha256:{HASH_A} \\\n    --hash=sha256:{HASH_B}\n" in text


def test_conflicts_name_both_versions() -> None:
    resolved = parse_compiled("tornado==6.4 \\\n    --hash=sha256:" + HASH_A
                              + "\nfoo==1.0 \\\n    --hash=sha256:" + HASH_B + "\n")
    assert conflicts(FREEZE, resolved) == [
        "tornado 6.6.1 (in the base's lab venv) -> 6.4"]


def test_missing_lock_is_exit_2_with_what_to_run(tmp_path: Path) -> None:
    found = plan_problems(tmp_path, "lab:\n  extensions: [jupyterlab-spellchecker]\n",
                          None)
    assert found == [f"{tmp_path}/payload.yaml:8: lab.extensions: no lock file "
                     f"{LOCK_FILE} in {tmp_path}; run `nublado-build lock "
                     f"{tmp_path}` (it resolves them on the base) and commit the "
                     "file"]


def test_stale_lock_is_exit_2(tmp_path: Path) -> None:
    found = plan_problems(tmp_path, "lab:\n  extensions: [jupyterlab-spellchecker]\n",
                          good_lock(["jupyterlab-spellchecker==0.8.4"]))
    assert found == [f"{tmp_path}/payload.yaml:8: lab.extensions: {LOCK_FILE} is "
                     "stale: it was made for other lab.extensions than "
                     f"payload.yaml lists; run `nublado-build lock {tmp_path}` (it "
                     "resolves them on the base)"]


def test_garbled_lock_is_exit_2(tmp_path: Path) -> None:
    found = plan_problems(tmp_path, "lab:\n  extensions: [jupyterlab-spellchecker]\n",
                          "jupyterlab-spellchecker\n")
    assert len(found) == 1
    assert f"lab.extensions: {LOCK_FILE} is not a lab lock file nublado-build " \
        "wrote ('jupyterlab-spellchecker' is not a pinned requirement with " \
        "sha256 hashes)" in found[0]


LAB = """\
lab:
  extensions: [jupyterlab-spellchecker]
  settings:
    overrides:
      "@jupyterlab-contrib/spellchecker:plugin": {checkComments: false}
    disabled_extensions: ["@jupyterlab/extensionmanager-extension:plugin"]
"""


def test_lab_stage_render(tmp_path: Path) -> None:
    lock = good_lock(["jupyterlab-spellchecker"])
    files = files_of(build_plan(load_payload(write(tmp_path, LAB, lock))))
    dockerfile = files["Dockerfile"][0].decode()
    assert sorted(name for name in files if name.startswith(("lab/", "guard/"))) == [
        "guard/allowed.txt", "guard/guard.py", "guard/lab-allowed.txt",
        "lab/install-lab-extensions", f"lab/{LOCK_FILE}", "lab/overrides.json",
        "lab/page_config.json"]
    assert files["lab/install-lab-extensions"][1] == 0o755
    assert files[f"lab/{LOCK_FILE}"][0].decode() == lock
    assert json.loads(files["lab/overrides.json"][0]) == {
        "@jupyterlab-contrib/spellchecker:plugin": {"checkComments": False}}
    assert json.loads(files["lab/page_config.json"][0]) == {
        "disabledExtensions": {"@jupyterlab/extensionmanager-extension:plugin": True}}
    assert files["guard/lab-allowed.txt"][0].decode() == (
        "/usr/local/share/jupyterlab/venv/\n/usr/local/share/jupyterlab/"
        "lab-checksums.txt\n/usr/local/share/jupyterlab/versions-installed/"
        "lab-extensions-demo.txt\n")
    # One lab stage, before the payload stage, which builds on it.
    assert dockerfile.count("AS nublado-lab\n") == 1
    assert dockerfile.index("AS nublado-lab\n") < dockerfile.index(
        "FROM nublado-lab AS nublado-payload\n")
    assert "FROM ${BASE_IMAGE} AS nublado-payload" not in dockerfile
    assert "/tmp/nb-lab/install-lab-extensions demo /tmp/nb-lab\n" in dockerfile
    # Payload steps see the base image's trees read-only, never a stage built
    # here: Docker 20.10's BuildKit writes through a bind mount of a stage
    # into that stage (measured), which would blind the guard.
    assert dockerfile.count("from=nublado-base,source=/usr/local/share/"
                            "jupyterlab/venv,") == 1
    assert "from=nublado-lab,source=/usr" not in dockerfile
    # The guard runs from the bare base and compares against the lab stage.
    assert "FROM ${BASE_IMAGE} AS nublado-guard" in dockerfile
    assert "--lab-root /mnt/nublado-lab --lab-allow /tmp/nb-guard/lab-allowed.txt" \
        in dockerfile
    assert f'{LABEL}="jupyterlab-spellchecker==0.9.0"' in dockerfile


def test_settings_only_has_a_lab_stage_and_no_label(tmp_path: Path) -> None:
    files = files_of(build_plan(load_payload(write(
        tmp_path, "lab:\n  settings: {disabled_extensions: [foo]}\n"))))
    dockerfile = files["Dockerfile"][0].decode()
    assert "FROM nublado-lab AS nublado-payload" in dockerfile
    assert LABEL not in dockerfile
    assert sorted(n for n in files if n.startswith("lab/")) == [
        "lab/install-lab-extensions", "lab/page_config.json"]


def test_without_lab_section_nothing_changes(tmp_path: Path) -> None:
    """No lab stage, no lab files: the Dockerfile as before the lab section."""
    plain = files_of(build_plan(load_payload(write(tmp_path / "a", ""))))
    warn = files_of(build_plan(load_payload(write(tmp_path / "b",
                                                  "lab: {pairing: warn}\n"))))
    # Only the label that records the pairing mode differs.
    assert {n: f for n, f in plain.items() if n != "Dockerfile"} == \
        {n: f for n, f in warn.items() if n != "Dockerfile"}
    dockerfile = plain["Dockerfile"][0].decode()
    label = 'io.nublado.payload.lab-pairing="{}"'
    assert warn["Dockerfile"][0].decode() == dockerfile.replace(
        label.format("fail"), label.format("warn"))
    assert label.format("fail") in dockerfile
    assert "nublado-lab" not in dockerfile
    assert "FROM ${BASE_IMAGE} AS nublado-payload" in dockerfile
    assert dockerfile.count("from=nublado-base,") == 3
    assert not [n for n in plain if n.startswith("lab/") or "lab-allowed" in n]


#: pip-compile's output for an extension that is not on the index (real,
#: shortened): a traceback around pip's own message.
NOT_FOUND = """\
Traceback (most recent call last):
  File "/tmp/nb-piptools/lib/python3.13/site-packages/piptools/resolver.py", line 677, in _do_resolve
    resolver.resolve(
    ~~~~~~~~~~~~~~~~^
        root_reqs=self.constraints
    )
    ^
  File "/tmp/nb-piptools/lib/python3.13/site-packages/pip/_internal/resolution/resolvelib/resolver.py", line 112, in resolve
    raise error from e
pip._internal.exceptions.DistributionNotFound: No matching distribution found for nublado-no-such-extension>=1
"""  # noqa: E501 (pip-compile's own lines)


def test_resolution_failure_shows_pips_words_not_a_traceback() -> None:
    assert pip_errors(NOT_FOUND) == [
        "No matching distribution found for nublado-no-such-extension>=1"]
    assert pip_errors("ERROR: Could not find a version that satisfies the "
                      "requirement foo==9 (from versions: 1.0)\n") == [
        "Could not find a version that satisfies the requirement foo==9 "
        "(from versions: 1.0)"]
    assert pip_errors("something else\nwent wrong\n") == ["something else",
                                                          "went wrong"]
