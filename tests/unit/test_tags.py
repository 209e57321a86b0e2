"""Tag policies: rsp (SQR-059), semver and calver; the build's --tag check."""

from __future__ import annotations

from pathlib import Path

import pytest

from nubladobuild.errors import InputError, TagError
from nubladobuild.loader import load_payload
from nubladobuild.tags import (
    check_build_tags,
    check_reference,
    parse_tag,
    sort_tags,
    split_reference,
)


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
    ("w_2025_54", "week 54"),
    ("w_2025_00", "week 0"),
    ("d_2025_02_30", "not a date"),
    ("d_2025_7_1", "not an rsp tag"),
    ("r27_0", "not an rsp tag"),
    ("v1.0.0", "not an rsp tag"),
    ("exp_", "not an rsp tag"),
    ("w_2025_30_", "not an rsp tag"),
    ("test", "not an rsp tag"),
    ("-bad", "not a valid Docker tag"),
    ("x" * 129, "not a valid Docker tag"),
])
def test_rsp_rejects(tag: str, reason: str) -> None:
    with pytest.raises(TagError, match=reason):
        parse_tag(tag, "rsp")


def test_rsp_sort_order() -> None:
    tags = ["r27_0_0", "w_2025_30", "d_2025_07_21", "r27_0_0_rc1", "exp_foo",
            "w_2024_52", "r26_0_2", "w_2025_30_rsp2", "r28_0_0_rc2", "d_2024_12_31",
            "r9_0_0"]
    assert sort_tags(tags, "rsp") == [
        "exp_foo", "d_2024_12_31", "d_2025_07_21", "w_2024_52", "w_2025_30",
        "w_2025_30_rsp2", "r9_0_0", "r26_0_2", "r27_0_0_rc1", "r27_0_0",
        "r28_0_0_rc2"]
    assert sort_tags(tags, "rsp", newest_first=True)[0] == "r28_0_0_rc2"


def test_semver_precedence() -> None:
    # The precedence example from semver.org, shuffled.
    tags = ["1.0.0", "1.0.0-rc.1", "1.0.0-beta.11", "1.0.0-alpha", "1.0.0-beta",
            "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-alpha.1", "v0.9.10", "0.9.9"]
    assert sort_tags(tags, "semver") == [
        "0.9.9", "v0.9.10", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
        "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]
    # Build metadata is semver but '+' is not allowed in a Docker tag.
    with pytest.raises(TagError, match="not a valid Docker tag"):
        parse_tag("2.0.0+build.5", "semver")
    assert parse_tag("2.0.0-rc.1", "semver").kind == "prerelease"


@pytest.mark.parametrize("tag", ["1.0", "01.0.0", "1.0.0-", "1.0.0-01", "w_2025_30"])
def test_semver_rejects(tag: str) -> None:
    with pytest.raises(TagError, match="semver"):
        parse_tag(tag, "semver")


def test_calver() -> None:
    assert sort_tags(["2025.7.1", "2025.07", "2025.07.1-rc1", "2024.12.3"],
                     "calver") == ["2024.12.3", "2025.07", "2025.07.1-rc1", "2025.7.1"]
    with pytest.raises(TagError, match="month 13"):
        parse_tag("2025.13", "calver")
    with pytest.raises(TagError, match="calver"):
        parse_tag("25.07", "calver")


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
