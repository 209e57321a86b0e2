"""Tag policies: rsp (SQR-059), semver and calver; the build's --tag check."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nubladobuild.errors import InputError, TagError
from nubladobuild.loader import load_payload
from nubladobuild.tags import (
    DOCKER_TAG,
    EXPECTED,
    NUBLADO_TYPES,
    Tag,
    architecture_tags,
    check_build_tags,
    check_reference,
    nublado_view,
    parse_tag,
    rebuild_tag,
    sort_tags,
    spawner_view,
    split_reference,
    tags_by_type,
)

DATA = Path(__file__).parent / "data" / "tags"
PARSE = yaml.safe_load((DATA / "parse.yaml").read_text())
ORDER = yaml.safe_load((DATA / "order.yaml").read_text())
SPAWNER = yaml.safe_load((DATA / "spawner.yaml").read_text())
ROOT = Path(__file__).resolve().parents[2]


def _fields(tag: Tag) -> dict[str, Any]:
    """The controller's fields of a tag, in parse.yaml's layout."""
    return {"tag": tag.text, "type": tag.nublado_type,
            "display_name": tag.display_name, "base": tag.base,
            "version": list(tag.version) if tag.version else None,
            "cycle": tag.cycle, "cycle_build": tag.cycle_build, "build": tag.build,
            "architecture": tag.architecture, "extra": tag.extra,
            "date": tag.date.isoformat() if tag.date else None}


@pytest.mark.parametrize(("tag", "kind"), [
    ("w_2025_30", "weekly"),
    ("w_2025_01_c0047.001", "weekly"),
    ("w_2025_30_rsp2", "weekly"),
    ("d_2025_07_21", "daily"),
    ("r27_0_0", "release"),
    ("r28_1_12_c0048.002_rsp3", "release"),
    ("r27_0_0_rc1", "candidate"),
    ("exp_w_2025_30_newlab", "experimental"),
    ("recommended", "alias"),
    ("latest", "alias"),
])
def test_rsp_kinds(tag: str, kind: str) -> None:
    assert parse_tag(tag, "rsp").kind == kind


@pytest.mark.parametrize(("tag", "reason"), [
    ("w_2025_54", "week 54 is not 01..53"),
    ("w_2025_00", "week 0 is not 01..53"),
    ("d_2025_02_30", "2025-02-30 is not a date"),
    ("d_2025_7_1", "not an rsp tag"),
    ("w_25_30", "not an rsp tag"),
    ("r27_0", "not an rsp tag"),
    ("v1.0.0", "not an rsp tag"),
    ("exp_", "not an rsp tag"),
    ("w_2025_30_", "not an rsp tag"),
    ("test", "not an rsp tag"),
    ("w_2025_30-foo", "architecture 'foo' is not one of amd64, arm64"),
    ("-bad", "not a valid Docker tag"),
    ("x" * 129, "not a valid Docker tag"),
])
def test_rsp_problems_keep_the_tag(tag: str, reason: str) -> None:
    # Parsing never fails: the tag is kept and says why a build refuses it.
    parsed = parse_tag(tag, "rsp")
    assert parsed.problem is not None and reason in parsed.problem
    assert parsed.text == tag
    if DOCKER_TAG.match(tag):  # otherwise not even an image reference
        with pytest.raises(TagError, match=re.escape(reason)):
            check_reference(f"x:{tag}", "rsp")


def test_rsp_week_53_of_52_week_year_still_builds() -> None:
    # Builds accepted w_2025_53 before; the controller lists it as Unknown.
    parsed = check_reference("x:w_2025_53_rsp1", "rsp")
    assert (parsed.kind, parsed.nublado_type, parsed.display_name) == (
        "unknown", "Unknown", "w_2025_53_rsp1")
    assert parse_tag("w_2026_53", "rsp").nublado_type == "Weekly"
    for refused in ("w_2025_53_", "w_2025_53-foo", "w_25_53"):
        assert parse_tag(refused, "rsp").problem is not None


def test_rsp_sort_order() -> None:
    # Newest first is the controller's order: type by type, newest first.
    tags = ["r27_0_0", "w_2025_30", "d_2025_07_21", "r27_0_0_rc1", "exp_foo",
            "w_2024_52", "r26_0_2", "w_2025_30_rsp2", "r28_0_0_rc2", "d_2024_12_31",
            "r9_0_0", "r170", "w_2025_30-amd64", "recommended", "test", "1.2.3"]
    newest = ["recommended", "r27_0_0", "r26_0_2", "r170", "r9_0_0",
              "w_2025_30_rsp2", "w_2025_30", "w_2025_30-amd64", "w_2024_52",
              "d_2025_07_21", "d_2024_12_31", "r28_0_0_rc2", "r27_0_0_rc1",
              "exp_foo", "test", "1.2.3"]
    assert sort_tags(tags, "rsp", newest_first=True) == newest
    assert sort_tags(tags, "rsp") == newest[::-1]


def test_semver_precedence() -> None:
    # The precedence example from semver.org, shuffled.
    tags = ["1.0.0", "1.0.0-rc.1", "1.0.0-beta.11", "1.0.0-alpha", "1.0.0-beta",
            "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-alpha.1", "v0.9.10", "0.9.9"]
    assert sort_tags(tags, "semver") == [
        "0.9.9", "v0.9.10", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
        "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    # Build metadata is semver but '+' is not allowed in a Docker tag.
    assert parse_tag("2.0.0+build.5", "semver").problem == (
        "'2.0.0+build.5' is not a valid Docker tag (letters, digits, '_', '.', "
        "'-', at most 128, not starting with '.' or '-')")
    assert parse_tag("2.0.0-rc.1", "semver").kind == "prerelease"


@pytest.mark.parametrize("tag", ["1.0", "01.0.0", "1.0.0-", "1.0.0-01", "w_2025_30"])
def test_semver_rejects(tag: str) -> None:
    parsed = parse_tag(tag, "semver")
    assert parsed.kind == "unknown"
    expected = EXPECTED["semver"]
    assert parsed.problem == f"{tag!r} is not a semver tag; expected {expected}"
    with pytest.raises(TagError, match="semver"):
        check_reference(f"x:{tag}", "semver")


@pytest.mark.parametrize(("tag", "display_name", "architecture"), [
    ("1.4.2", "1.4.2", None),
    ("v2.0.0-rc.1", "v2.0.0-rc.1", None),
    ("1.0.0-alpha", "1.0.0 [alpha]", "alpha"),
    ("2025.07", "2025.07", None),
    ("2025.07.2-rc1", "2025.07.2 [rc1]", "rc1"),
])
def test_controller_sees_semver_and_calver_as_unknown(
        tag: str, display_name: str, architecture: str | None) -> None:
    # A "-word" pre-release reads as an architecture suffix to the controller,
    # which then hides the tag from the menu and the dropdown.
    parsed = parse_tag(tag, "calver" if tag.startswith("2025") else "semver")
    assert parsed.problem is None
    assert (parsed.nublado_type, parsed.display_name, parsed.architecture) == (
        "Unknown", display_name, architecture)
    listed = [t.text for t in spawner_view([tag], pin=[tag]).dropdown]
    assert listed == ([] if architecture else [tag])


def test_calver() -> None:
    assert sort_tags(["2025.7.1", "2025.07", "2025.07.1-rc1", "2024.12.3"],
                     "calver") == ["2024.12.3", "2025.07", "2025.07.1-rc1", "2025.7.1"]
    assert parse_tag("2025.13", "calver").problem == "'2025.13': month 13 is not 1..12"
    assert sort_tags(["2025.07", "25.07", "latest"], "calver") == [
        "25.07", "latest", "2025.07"]
    with pytest.raises(TagError, match="calver"):
        check_reference("x:25.07", "calver")


def test_unknown_policy() -> None:
    with pytest.raises(TagError, match="unknown tag policy"):
        parse_tag("1.0.0", "pep440")


def test_references() -> None:
    assert split_reference("ghcr.io:443/lsst/sciplat-lab:w_2025_30") == (
        "ghcr.io:443/lsst/sciplat-lab", "w_2025_30")
    assert split_reference("localhost:5000/sciplat-lab") == (
        "localhost:5000/sciplat-lab", "latest")
    assert check_reference("sciplat-lab:r27_0_0", "rsp").kind == "release"
    with pytest.raises(TagError, match="--tag sciplat-lab:w_25_30"):
        check_reference("sciplat-lab:w_25_30", "rsp")


def _payload(tmp_path: Path, tags: str) -> Path:
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "payload.yaml").write_text(
        "name: tagged\ninstall: [{pip: {requirements: requirements.txt}}]\n"
        f"kernel: {{name: t, display_name: T}}\n{tags}")
    return tmp_path


def test_build_tags_follow_declared_policy(tmp_path: Path) -> None:
    loaded = load_payload(_payload(tmp_path, "tags: {policy: semver}\n"))
    parsed = check_build_tags(loaded.model, loaded.yaml_path, ["x:1.2.3", "x:latest"])
    assert [t.kind for t in parsed] == ["release", "alias"]
    with pytest.raises(InputError) as info:
        check_build_tags(loaded.model, loaded.yaml_path, ["x:1.2.3", "x:w_2025_30"])
    assert "--tag x:w_2025_30" in info.value.message
    assert "tags.policy is semver" in info.value.message
    assert info.value.exit_code == 2


def test_build_tags_free_without_policy(tmp_path: Path) -> None:
    loaded = load_payload(_payload(tmp_path, ""))
    assert check_build_tags(loaded.model, loaded.yaml_path, ["x:test"]) == []
    with pytest.raises(InputError, match="not a valid image reference"):
        check_build_tags(loaded.model, loaded.yaml_path, ["x:.bad"])


def test_cli_refuses_bad_tag_before_building(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nubladobuild.cli import cli

    payload = _payload(tmp_path, "tags: {policy: rsp}\n")
    result = CliRunner().invoke(cli, ["build", str(payload), "--tag", "tagged:v1"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert "'v1' is not an rsp tag" in result.exception.message


# --- Parity with the Nublado controller (tables in tests/unit/data/tags/) ---

@pytest.mark.parametrize("row", PARSE["controller"] + PARSE["controller_inline"]
                         + PARSE["pipeline"], ids=lambda r: r["tag"] or "empty")
def test_parse_like_controller(row: dict[str, Any]) -> None:
    # from_str: no tag is an alias unless the controller is told so.
    assert _fields(nublado_view(row["tag"], aliases=())) == {
        **row, "tag": row["tag"] or "latest"}


@pytest.mark.parametrize("row", PARSE["aliases"], ids=lambda r: r["tag"])
def test_alias_like_controller(row: dict[str, Any]) -> None:
    assert _fields(nublado_view(row["tag"], aliases={row["tag"]})) == row


_VARIANT_BASES = [
    r for r in PARSE["controller"]
    if r["tag"] in ("d_2021_05_27", "w_2021_22", "r22_0_0_rc1", "r21_0_1")]


@pytest.mark.parametrize(("base", "experimental", "cycle", "build", "extra", "arch"),
                         list(itertools.product(
                             _VARIANT_BASES, [False, True], [None, ("0020", "001")],
                             [None, 19], [None, "20210527", "random"],
                             [None, "amd64"])))
def test_parse_variants_like_controller(
        base: dict[str, Any], experimental: bool, cycle: tuple[str, str] | None,
        build: int | None, extra: str | None, arch: str | None) -> None:
    # The controller's test_from_str_varient: every optional part on every
    # versioned form, with the display name growing in the same order.
    expected, tag = dict(base), base["tag"]
    if experimental:
        tag = "exp_" + tag
        expected.update(type="Experimental",
                        display_name="Experimental " + expected["display_name"])
    if cycle:
        tag += f"_c{cycle[0]}.{cycle[1]}"
        expected.update(cycle=int(cycle[0]), cycle_build=int(cycle[1]))
        expected["display_name"] += f" (SAL Cycle {cycle[0]}, Build {cycle[1]})"
    if build:
        tag += f"_rsp{build}"
        expected["build"] = build
        expected["display_name"] += f" (RSP Build {build})"
    if extra:
        tag += f"_{extra}"
        expected["extra"] = extra
        expected["display_name"] += f" [{extra}]"
    if arch:
        tag += f"-{arch}"
        expected["architecture"] = arch
        expected["display_name"] += f" [{arch}]"
    expected["tag"] = tag
    assert _fields(nublado_view(tag, aliases=())) == expected


@pytest.mark.parametrize("ascending", ORDER["ascending"], ids=lambda a: a[-1])
def test_order_within_type_like_controller(ascending: list[str]) -> None:
    parsed = [nublado_view(t, aliases=()) for t in ascending]
    assert len({t.nublado_type for t in parsed}) == 1
    assert [t.text for t in sorted(reversed(parsed))] == ascending
    assert sort_tags(ascending[::-1], "rsp") == ascending


def test_collection_order_like_controller() -> None:
    expected = ORDER["collection"]
    for shuffled in (expected[::-1], expected[1::2] + expected[::2]):
        grouped = tags_by_type(shuffled, aliases=())
        assert list(grouped) == list(NUBLADO_TYPES)
        assert [t.text for g in grouped.values() for t in g] == expected
        # sort_tags knows `recommended` as an alias: it moves to the front.
        assert sort_tags(shuffled, "rsp", newest_first=True) == [
            "recommended", *(t for t in expected if t != "recommended")]
    # The Unknown group keeps every tag, aliases-to-be and architectures too.
    assert [t.text for t in tags_by_type(expected, aliases=())["Unknown"]] == [
        "recommended_c0027", "recommended", "latest_c0027-arm64", "latest-arm64"]


def test_cycle_filter_like_controller() -> None:
    view = spawner_view(ORDER["collection"], aliases=(), cycle=27,
                        recommended="none", releases=0, weeklies=0, dailies=0)
    assert [t.text for t in view.dropdown] == ORDER["cycle_27"]


def test_subset_like_controller() -> None:
    case = ORDER["subset"]
    view = spawner_view(ORDER["collection"], aliases=case["aliases"],
                        releases=case["releases"], weeklies=case["weeklies"],
                        dailies=case["dailies"])
    assert [t.text for t in view.prepull] == case["expected"]
    # With both recommended tags as aliases, the one with a cycle lists first.
    assert view.dropdown[0].text == "recommended_c0027"


@pytest.mark.parametrize("case", SPAWNER["cases"], ids=lambda c: c["name"])
def test_spawner_menu_and_prepull(case: dict[str, Any]) -> None:
    view = spawner_view(SPAWNER["tags"], **case["options"])
    assert [t.text for t in view.prepull] == case["prepull"]
    assert [t.text for t in view.menu] == case["menu"]
    if "dropdown" in case:
        assert [t.text for t in view.dropdown] == case["dropdown"]


def test_spawner_view_defaults_and_counts() -> None:
    view = spawner_view(SPAWNER["tags"])
    assert view.menu[0].display_name == "Recommended"
    assert [t.display_name for t in view.menu[1:]] == [
        "Release r29.1.1", "Weekly 2025_30", "Weekly 2025_29 (RSP Build 1)",
        "Daily 2025_07_24", "Daily 2025_07_23", "Daily 2025_07_22"]
    assert [t.text for t in view.tags["Weekly"]] == [
        "w_2025_30", "w_2025_30-arm64", "w_2025_30-amd64", "w_2025_29_rsp1",
        "w_2025_29", "w_2025_28"]
    with pytest.raises(InputError, match="--weeklies must be 0 or more, got -1"):
        spawner_view(SPAWNER["tags"], weeklies=-1)


def test_weekly_dates_are_thursdays() -> None:
    assert [str(nublado_view(t).date) for t in
            ("w_2025_01", "w_2025_30", "w_2026_53", "w_2021_22")] == [
        "2025-01-02", "2025-07-24", "2026-12-31", "2021-06-03"]


def test_unknown_tags_are_kept() -> None:
    tags = ["w_2025_54", "not_a_normal_format", "MiXeD", "1.2.3", "w_2025_30"]
    assert sort_tags(tags, "rsp", newest_first=True) == [
        "w_2025_30", "w_2025_54", "not_a_normal_format", "MiXeD", "1.2.3"]
    assert [t.text for t in tags_by_type(tags)["Unknown"]] == [
        "w_2025_54", "not_a_normal_format", "MiXeD", "1.2.3"]
    # Any string at all parses, as the controller's from_str does.
    assert nublado_view("a\nb").nublado_type == "Unknown"


# --- Builds: what `nublado-build build --tag` accepts under rsp ---

@pytest.mark.parametrize(("tag", "kind"), [
    ("w_2025_30-amd64", "weekly"),
    ("w_2025_30-arm64", "weekly"),
    ("r170", "release"),
    ("w_2025_30_c0047.001_rsp2_extra-arm64", "weekly"),
    ("d_2025_07_21_rsp1_nosudo", "daily"),
    ("r29_0_0_rc1-amd64", "candidate"),
    ("exp_random", "experimental"),
    ("exp_foo-bar", "experimental"),
    ("latest_release", "alias"),
    ("latest-amd64", "unknown"),
    ("recommended_c0027", "unknown"),
])
def test_rsp_build_accepts_new_forms(tag: str, kind: str) -> None:
    assert check_reference(f"sciplat-lab:{tag}", "rsp").kind == kind


# --- Publishing: maintenance rebuilds and per-architecture tags ---

@pytest.mark.parametrize(("tag", "rebuilt"), [
    ("w_2025_30", "w_2025_30_rsp1"),
    ("w_2025_30_rsp1", "w_2025_30_rsp2"),
    ("w_2025_30_rsp9", "w_2025_30_rsp10"),
    ("d_2025_07_21", "d_2025_07_21_rsp1"),
    ("r29_1_0", "r29_1_0_rsp1"),
    ("r29_1_0_rc2", "r29_1_0_rc2_rsp1"),
    ("w_2025_30_c0047.001", "w_2025_30_c0047.001_rsp1"),
    ("r29_0_0_c0047.001_extra-amd64", "r29_0_0_c0047.001_rsp1_extra-amd64"),
    ("w_2025_30_rsp3_nosudo-arm64", "w_2025_30_rsp4_nosudo-arm64"),
    ("exp_w_2025_30_rsp1_newlab", "exp_w_2025_30_rsp2_newlab"),
])
def test_rebuild_tag(tag: str, rebuilt: str) -> None:
    assert rebuild_tag(tag) == rebuilt
    before, after = nublado_view(tag), nublado_view(rebuilt)
    assert after.nublado_type == before.nublado_type
    assert after.build == (before.build or 0) + 1
    assert (after.version, after.cycle, after.extra, after.architecture) == (
        before.version, before.cycle, before.extra, before.architecture)


@pytest.mark.parametrize("tag", ["recommended", "r170", "exp_random", "w_2025_54",
                                 "1.2.3"])
def test_rebuild_tag_refuses(tag: str) -> None:
    with pytest.raises(TagError, match=f"'{re.escape(tag)}' has no _rspN build number"):
        rebuild_tag(tag)


def test_architecture_tags() -> None:
    assert architecture_tags("w_2025_30_rsp1") == ["w_2025_30_rsp1-amd64",
                                                   "w_2025_30_rsp1-arm64"]
    assert architecture_tags("recommended", ["arm64"]) == ["recommended-arm64"]
    assert [nublado_view(t).architecture for t in architecture_tags("r29_0_0")] == [
        "amd64", "arm64"]
    with pytest.raises(TagError, match="already names architecture 'amd64'"):
        architecture_tags("w_2025_30-amd64")
    with pytest.raises(TagError, match="'ARM' is not lower-case"):
        architecture_tags("w_2025_30", ["ARM"])
    with pytest.raises(TagError, match="not a valid Docker tag"):
        architecture_tags("w" * 126)


# --- The `nublado-build tags` command ---

def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nubladobuild", "tags", *args],
                          capture_output=True, text=True, cwd=ROOT, check=False)


def test_cli_tags_json() -> None:
    result = _run(*SPAWNER["tags"], "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["counts"] == {"releases": 1, "weeklies": 2, "dailies": 3}
    assert [m["tag"] for m in data["menu"]] == SPAWNER["cases"][0]["menu"]
    assert [m["tag"] for m in data["prepull"]] == SPAWNER["cases"][0]["prepull"]
    rows = {r["tag"]: r for r in data["tags"]}
    assert len(rows) == len(SPAWNER["tags"])
    assert (rows["w_2025_30-amd64"]["type"], rows["w_2025_30-amd64"]["display_name"],
            rows["w_2025_30-amd64"]["accepted"]) == ("Weekly",
                                                     "Weekly 2025_30 [amd64]", True)
    assert (rows["r170"]["type"], rows["r170"]["display_name"]) == (
        "Release", "Release r17.0.0")
    assert rows["w_2025_54"]["problem"] == "'w_2025_54': week 54 is not 01..53"


def test_cli_tags_text_and_counts() -> None:
    from click.testing import CliRunner

    from nubladobuild.cli import cli

    result = CliRunner().invoke(cli, [
        "tags", "--releases", "0", "--weeklies", "1", "--dailies", "0",
        "--policy", "semver", "w_2025_30", "w_2025_29", "1.2.3", "recommended"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "TAG          TYPE               DISPLAY NAME",
        "w_2025_30    Weekly             Weekly 2025_30  (not for build: "
        f"'w_2025_30' is not a semver tag; expected {EXPECTED['semver']})",
        "w_2025_29    Weekly             Weekly 2025_29  (not for build: "
        f"'w_2025_29' is not a semver tag; expected {EXPECTED['semver']})",
        "1.2.3        Unknown            1.2.3",
        "recommended  Alias              Recommended  (not for build: "
        f"'recommended' is not a semver tag; expected {EXPECTED['semver']})",
        "menu (recommended first, then 0 release(s), 1 weekly(ies), 0 daily(ies)):",
        "  recommended  Recommended",
        "  w_2025_30    Weekly 2025_30",
        "prepull:",
        "  recommended",
        "  w_2025_30",
    ]


@pytest.mark.parametrize(("args", "message"), [
    ((), "nublado-build: no tags given"),
    (("w_2025_30", "w\x07x"), "nublado-build: tag 'w\\x07x' contains the "
     "control character U+0007"),
    (("",), "nublado-build: an empty tag was given"),
    (("--releases", "-1", "w_2025_30"), "Error: Invalid value for '--releases'"),
    (("--policy", "pep440", "1.0"), "Error: Invalid value for '--policy'"),
])
def test_cli_tags_bad_input(args: tuple[str, ...], message: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_tags_bad_input_json() -> None:
    result = _run("--json")
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "ok": False, "exit_code": 2,
        "error": "no tags given; pass one or more tags, e.g. nublado-build tags "
                 "w_2025_30 r29_0_0 recommended"}


def test_cli_tags_publish_shows_rebuild_and_architecture_tags() -> None:
    result = _run("w_2025_30", "w_2025_30_rsp2-amd64", "recommended", "--publish",
                  "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["publish"]
    assert [(r["tag"], r["rebuild"], r["architectures"]) for r in rows] == [
        ("w_2025_30", "w_2025_30_rsp1", ["w_2025_30-amd64", "w_2025_30-arm64"]),
        ("w_2025_30_rsp2-amd64", "w_2025_30_rsp3-amd64", []),
        ("recommended", None, ["recommended-amd64", "recommended-arm64"])]
    assert rows[2]["why"].startswith("'recommended' has no _rspN build number")
    text = _run("w_2025_30", "--publish").stdout.splitlines()
    assert text[-2:] == [
        "publish (next maintenance rebuild; per-architecture tags):",
        "  w_2025_30  w_2025_30_rsp1; w_2025_30-amd64, w_2025_30-arm64"]
