"""Dockerfile fragments: parsing, every refusal, splicing, validate's report."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nubladobuild.cli import cli
from nubladobuild.errors import PayloadInvalid
from nubladobuild.fragment import (
    ALLOWED,
    check_fragment,
    parse_fragment,
    splice,
)
from nubladobuild.loader import load_payload


def fragment(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> Path:
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    path = tmp_path / "Dockerfile.fragment"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, files: dict[str, str] | None = None
             ) -> list[tuple[int, str]]:
    frag = check_fragment(fragment(tmp_path, text, files), tmp_path)
    return [(p.line, p.message) for p in frag.problems]


def test_parse_continuations_and_comments() -> None:
    text = ("# leading comment\n\nRUN a \\\n    # inside\n\n    && b\n"
            "env X=1 \\\n  Y=2\nLABEL a=b\n")
    instructions, probs = parse_fragment(text)
    assert probs == []
    assert [(i.line, i.keyword) for i in instructions] == [
        (3, "RUN"), (7, "ENV"), (9, "LABEL")]
    assert instructions[0].args == "a && b"
    assert instructions[0].lines == ("RUN a \\", "    && b")
    assert instructions[1].args == "X=1 Y=2"


def test_continuation_at_end_of_file(tmp_path: Path) -> None:
    assert problems(tmp_path, "RUN true \\\n") == [
        (1, "the instruction ends with a line continuation ('\\') at the end "
            "of the file")]


def test_allowed_instructions_pass(tmp_path: Path) -> None:
    text = ("ARG V=1\nLABEL x=y\nENV A=b\nWORKDIR /opt/x\n"
            "RUN --mount=type=cache,target=/root/.cache/pip echo hi\n"
            "RUN --mount=type=secret,id=ca cat /run/secrets/ca >/dev/null\n"
            "COPY --chown=1000:100 data/a.txt /opt/x/\n"
            'COPY ["data/a.txt", "/opt/y/"]\n')
    frag = check_fragment(fragment(tmp_path, text, {"data/a.txt": "a"}), tmp_path)
    assert frag.problems == ()
    assert frag.files == ("data/a.txt",)
    assert frag.sets_workdir
    assert {i.keyword for i in frag.instructions} == set(ALLOWED)


@pytest.mark.parametrize(("line", "needle"), [
    ("FROM python:3.12", "FROM starts a new build stage"),
    ("from python:3.12", "FROM starts a new build stage"),
    ("USER root", "USER is refused"),
    ("ENTRYPOINT [\"bash\"]", "ENTRYPOINT is refused"),
    ("CMD bash", "CMD is refused"),
    ("ONBUILD RUN true", "ONBUILD is refused"),
    ("HEALTHCHECK CMD true", "HEALTHCHECK is refused"),
    ("ADD data/a.txt /opt/", "ADD is refused: it can download URLs and silently "
                             "unpack archives"),
    ("ADD https://example.org/x.tgz /opt/", "ADD is refused"),
    ("COPY --from=python:3.12 /usr/bin/x /opt/", "COPY --from is refused"),
    ("COPY --from=0 /x /opt/", "COPY --from is refused"),
    ("COPY --link data/a.txt /opt/", "COPY --link is refused"),
    ("COPY ../secret /opt/", "escapes the payload directory"),
    ("COPY data/../../secret /opt/", "escapes the payload directory"),
    ("COPY /etc/passwd /opt/", "is absolute"),
    ("COPY $HOME/x /opt/", "uses a variable"),
    ("COPY missing.txt /opt/", "does not exist"),
    ("COPY data/*.csv /opt/", "matches no file"),
    ("COPY data/a.txt", "at least one source and a destination"),
    ("COPY [\"data/a.txt\", 3]", "valid JSON array of strings"),
    ("EXPOSE 8080", "EXPOSE is not allowed in a payload fragment"),
    ("VOLUME /data", "VOLUME is not allowed"),
    ("SHELL [\"/bin/sh\"]", "SHELL is not allowed"),
    ("STOPSIGNAL SIGINT", "STOPSIGNAL is not allowed"),
    ("MAINTAINER me", "MAINTAINER is not allowed"),
    ("FETCH http://x", "unknown instruction 'FETCH'"),
    ("RUN --mount=type=bind,source=.,target=/x true", "type=bind is refused"),
    ("RUN --mount=type=cache,from=img,target=/x true", "from= is refused"),
    ("RUN --network=host curl x", "RUN --network is refused"),
    ("RUN <<EOF", "here-document"),
    ("RUN", "RUN needs a command"),
    ("ENV", "ENV needs arguments"),
    ("# syntax=docker/dockerfile:1.7", "parser directives"),
])
def test_refused(tmp_path: Path, line: str, needle: str) -> None:
    found = problems(tmp_path, f"RUN true\n{line}\n", {"data/a.txt": "a"})
    assert len(found) == 1, found
    assert found[0][0] == 2
    assert needle in found[0][1]


def test_copy_source_symlink_outside_is_refused(tmp_path: Path) -> None:
    payload = tmp_path / "p"
    payload.mkdir()
    (tmp_path / "secret").write_text("s")
    (payload / "link").symlink_to(tmp_path / "secret")
    frag = check_fragment(fragment(payload, "COPY link /opt/\n"), payload)
    assert "outside the payload directory" in frag.problems[0].message


def test_continued_refused_instruction_reports_first_line(tmp_path: Path) -> None:
    assert problems(tmp_path, "RUN a\n\nUSER \\\n  root\n")[0][0] == 3


def test_every_problem_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, "FROM x\nRUN ok\nUSER 0\nCMD x\n")
    assert [line for line, _ in found] == [1, 3, 4]


def test_empty_fragment(tmp_path: Path) -> None:
    assert "no instructions" in problems(tmp_path, "# only a comment\n")[0][1]


def test_splice_rewrites_copy_sources(tmp_path: Path) -> None:
    text = ("COPY --chown=1:2 data /opt/d/\nRUN a \\\n  # c\n  && b\n"
            'COPY ["data/a.txt", "bin/x", "/opt/e/"]\n')
    frag = check_fragment(fragment(tmp_path, text, {"data/a.txt": "a",
                                                    "bin/x": "x"}), tmp_path)
    assert frag.problems == ()
    spliced = splice(frag, "steps/01-dockerfile/src")
    assert spliced[0].copy_flags == ("--chown=1:2",)
    assert spliced[0].copy_args == ("steps/01-dockerfile/src/data", "/opt/d/")
    assert spliced[1].lines == ("RUN a \\", "  && b")
    assert spliced[2].copy_args == ("steps/01-dockerfile/src/data/a.txt",
                                    "steps/01-dockerfile/src/bin/x", "/opt/e/")
    assert frag.files == ("bin/x", "data/a.txt")


def _payload(tmp_path: Path, fragment_text: str) -> Path:
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "Dockerfile.fragment").write_text(fragment_text)
    (tmp_path / "payload.yaml").write_text(
        "name: frag\ninstall:\n  - pip: {requirements: requirements.txt}\n"
        "  - dockerfile: {path: Dockerfile.fragment}\n"
        "kernel: {name: frag, display_name: Frag}\n")
    return tmp_path


def test_loader_reports_fragment_problems_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(_payload(tmp_path, "RUN true\nUSER root\nADD x /y\n"))
    rendered = [p.render() for p in info.value.problems]
    fragment_path = tmp_path / "Dockerfile.fragment"
    assert len(rendered) == 2
    assert f"payload.yaml:4: install[1].dockerfile.path: {fragment_path}:2: USER" \
        in rendered[0]
    assert f"{fragment_path}:3: ADD is refused" in rendered[1]


def test_validate_lists_fragment_problems_exit_2(tmp_path: Path) -> None:
    _payload(tmp_path, "FROM python\nCOPY --from=x /a /b\n")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)],
                                standalone_mode=False, catch_exceptions=True)
    assert isinstance(result.exception, PayloadInvalid)
    assert result.exception.exit_code == 2
    message = result.exception.message
    assert "2 problems" in message
    assert "Dockerfile.fragment:1: FROM" in message
    assert "Dockerfile.fragment:2: COPY --from is refused" in message
