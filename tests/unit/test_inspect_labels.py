"""Provenance labels: the inputs hash, git provenance, build-time labels."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from nubladobuild.images import build_label_args, created_timestamp
from nubladobuild.loader import load_payload
from nubladobuild.render import render_dockerfile
from nubladobuild.resolve import (
    BASE_DIGEST_LABEL,
    INPUTS_LABEL,
    REVISION_LABEL,
    SOURCE_LABEL,
    Resolved,
    clean_source_url,
    git_provenance,
    inputs_sha256,
    provenance_labels,
)
from tests.unit.helpers import RESOLVED, plan_of
from tests.unit.test_render import SCIPY


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "scipy-lab"
    shutil.copytree(SCIPY, target)
    return target


def test_inputs_hash_follows_content_not_mtime(tmp_path: Path) -> None:
    payload = _copy(tmp_path)
    first = inputs_sha256(load_payload(payload), "standard")
    assert len(first) == 64
    assert inputs_sha256(load_payload(payload), "standard") == first
    # Touching a file (mtime only) changes nothing; so does copying it elsewhere.
    os.utime(payload / "requirements.txt", (1, 1))
    os.utime(payload / "payload.yaml", (2, 2))
    assert inputs_sha256(load_payload(payload), "standard") == first
    assert inputs_sha256(load_payload(SCIPY), "standard") == first
    # The base profile counts.
    assert inputs_sha256(load_payload(payload), "minimal") != first
    # A changed requirements file changes it.
    reqs = payload / "requirements.txt"
    reqs.write_text(reqs.read_text() + "attrs\n")
    bumped = inputs_sha256(load_payload(payload), "standard")
    assert bumped != first
    # So does payload.yaml itself (a comment is a byte too).
    yaml = payload / "payload.yaml"
    yaml.write_text(yaml.read_text() + "# note\n")
    assert inputs_sha256(load_payload(payload), "standard") not in (first, bumped)


def test_inputs_hash_counts_every_file_the_loader_read(tmp_path: Path) -> None:
    payload = tmp_path / "p"
    (payload / "scripts").mkdir(parents=True)
    (payload / "requirements.txt").write_text("ipykernel\n")
    (payload / "scripts" / "setup.sh").write_text("#!/bin/bash\necho one\n")
    (payload / "payload.yaml").write_text(
        "name: p\ninstall:\n  - pip: {requirements: requirements.txt}\n"
        "  - script: {path: scripts/setup.sh, prefix: /opt/payload/venv}\n"
        "kernel: {name: p, display_name: P}\n")
    first = inputs_sha256(load_payload(payload), "standard")
    (payload / "scripts" / "setup.sh").write_text("#!/bin/bash\necho two\n")
    assert inputs_sha256(load_payload(payload), "standard") != first


def _git(directory: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(directory), *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_git_provenance(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_provenance(outside) == ()
    repo = tmp_path / "repo"
    payload = repo / "payloads" / "p"
    payload.mkdir(parents=True)
    _git(repo, "init", "-q")
    assert git_provenance(payload) == ()  # no commit, no remote
    (payload / "x").write_text("x")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_provenance(payload) == ((REVISION_LABEL, head),)
    _git(repo, "remote", "add", "origin",
         "https://someone:s3cr3t@github.com/lsst-sqre/nubladobuild.git")
    assert git_provenance(payload) == (
        (REVISION_LABEL, head),
        (SOURCE_LABEL, "https://github.com/lsst-sqre/nubladobuild.git"))


def test_clean_source_url() -> None:
    assert clean_source_url("https://tok@github.com/o/r") == "https://github.com/o/r"
    assert clean_source_url("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert clean_source_url("ssh://git@host/o/r") == "ssh://host/o/r"
    assert clean_source_url("https://host/o/r\x1b[31m") is None
    assert clean_source_url("https://host/a b") is None
    assert clean_source_url("https://host/" + "a" * 2000) is None


def test_rendered_labels_and_build_args(tmp_path: Path) -> None:
    plan = plan_of(SCIPY)
    labels = provenance_labels(plan.loaded, "sha256:" + "1" * 64, "standard",
                               ((REVISION_LABEL, "2" * 40),))
    assert [k for k, _ in labels] == [BASE_DIGEST_LABEL, INPUTS_LABEL, REVISION_LABEL]
    resolved = Resolved(**{**RESOLVED.__dict__, "labels": labels})
    dockerfile = render_dockerfile(plan, resolved)
    assert f'{BASE_DIGEST_LABEL}="sha256:{"1" * 64}"' in dockerfile
    assert f'{INPUTS_LABEL}="{inputs_sha256(plan.loaded, "standard")}"' in dockerfile
    assert f'{REVISION_LABEL}="{"2" * 40}"' in dockerfile
    # The time and the tag are build arguments, declared after every step.
    tail = dockerfile[dockerfile.rindex("FROM "):]
    assert "ARG NUBLADO_CREATED=\nARG NUBLADO_IMAGE_VERSION=\n" \
        'LABEL org.opencontainers.image.created="${NUBLADO_CREATED}" \\\n' \
        '      org.opencontainers.image.version="${NUBLADO_IMAGE_VERSION}"\n' in tail
    assert "RUN" not in tail[tail.index("ARG NUBLADO_CREATED"):]
    # The same plan and resolution give the same Dockerfile, whatever the time.
    assert render_dockerfile(plan, resolved) == dockerfile
    assert build_label_args("scipy-lab", ["ghcr.io/o/scipy-lab:w_2026_05",
                                          "scipy-lab:latest"]
                            )["NUBLADO_IMAGE_VERSION"] == "w_2026_05"
    assert build_label_args("scipy-lab", [])["NUBLADO_IMAGE_VERSION"] == "latest"


def test_created_timestamp() -> None:
    assert created_timestamp({"SOURCE_DATE_EPOCH": "1700000000"}) \
        == "2023-11-14T22:13:20Z"
    now = created_timestamp({})
    assert len(now) == 20 and now.endswith("Z") and now[10] == "T"
    assert created_timestamp({"SOURCE_DATE_EPOCH": "-5"}) != "1969-12-31T23:59:55Z"
    assert created_timestamp({"SOURCE_DATE_EPOCH": "9" * 30}).startswith("20")
