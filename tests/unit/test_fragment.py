"""Dockerfile fragments: parsing as BuildKit does, every refusal, splicing.

The fragment cases of the corpus (``tests/corpus/fragment-*``) run here too:
the refused ones (``fragment-*``) through ``check_fragment`` for the line and
message, the accepted look-alikes (``ok-fragment-*``) through ``check_fragment``
and ``nublado-build validate`` (exit 0).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from nubladobuild.cli import cli
from nubladobuild.errors import PayloadInvalid
from nubladobuild.fragment import (
    ALLOWED,
    MAX_FRAGMENT_BYTES,
    check_fragment,
    name_problem,
    parse_fragment,
    protected_reason,
    secret_ids,
    splice,
)
from nubladobuild.loader import load_payload

#: BuildKit's parser, the reference the checker must agree with (no type stubs).
dockerfile: Any = importlib.import_module("dockerfile")

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
FRAGMENT_CASES = sorted(p.name for p in [*CORPUS.glob("fragment-*"),
                                         *CORPUS.glob("ok-fragment-*")]
                        if (p / "Dockerfile.fragment").exists())
REFUSED_CASES = [n for n in FRAGMENT_CASES if not n.startswith("ok-")]
ACCEPTED_CASES = [n for n in FRAGMENT_CASES if n.startswith("ok-")]


def fragment(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> Path:
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    path = tmp_path / "Dockerfile.fragment"
    path.write_bytes(text.encode("utf-8"))
    return path


def problems(tmp_path: Path, text: str, files: dict[str, str] | None = None,
             secrets: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    frag = check_fragment(fragment(tmp_path, text, files), tmp_path, secrets=secrets)
    return [(p.line, p.message) for p in frag.problems]


def messages(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> str:
    return "\n".join(f"{line}: {m}" for line, m in problems(tmp_path, text, files))


# --------------------------------------------------------------------------
# Reading: BuildKit's parser, in the spliced context
# --------------------------------------------------------------------------

def test_parse_continuations_and_comments() -> None:
    text = ("# leading comment\n\nRUN a \\\n    # inside\n\n    && b\n"
            "env X=1 \\\n  Y=2\nLABEL a=b\n")
    instructions, probs = parse_fragment(text)
    assert probs == []
    assert [(i.line, i.keyword) for i in instructions] == [
        (3, "RUN"), (7, "ENV"), (9, "LABEL")]
    # BuildKit joins continuation lines with nothing in between.
    assert instructions[0].args == "a     && b"
    assert instructions[0].lines == ("RUN a     && b",)
    assert instructions[0].end_line == 6
    assert instructions[1].value == ("X", "1", "Y", "2")


def test_continuation_joins_without_a_space() -> None:
    instructions, probs = parse_fragment("RUN --mo\\\nunt=type=cache,target=/x true\n")
    assert probs == []
    assert instructions[0].flags == ("--mount=type=cache,target=/x",)


@pytest.mark.parametrize("text", [
    "RUN\t--network=host curl x\n",
    "RUN --mount=type=cache,target=/x\t--network=host true\n",
    "RUN --mount=type=cache,target=/x \\\n\t--network=host true\n",
    'RUN --network="host" true\n',
    "RUN --net\\\nwork=host true\n",
])
def test_flags_are_read_as_buildkit_reads_them(tmp_path: Path, text: str) -> None:
    instructions, _ = parse_fragment(text)
    assert "--network=host" in instructions[0].flags
    assert "RUN --network is refused" in messages(tmp_path, text)


def test_the_checker_agrees_with_the_parser_on_flags() -> None:
    # Direct use of BuildKit's parser: what parse_fragment returns is its reading.
    text = 'RUN --mount="Type=bind",source=.,target=/x\ttrue\n'
    (command,) = dockerfile.parse_string(text)
    instructions, _ = parse_fragment(text)
    assert instructions[0].flags == command.flags == (
        "--mount=Type=bind,source=.,target=/x",)


def test_escape_directive_is_a_comment_once_spliced(tmp_path: Path) -> None:
    # On its own, BuildKit would honour the directive and read one RUN; in the
    # generated Dockerfile it is a comment, so USER is an instruction.
    text = "# escape=`\nRUN echo hi `\nUSER root\n"
    alone = dockerfile.parse_string(text)
    assert [c.cmd for c in alone] == ["RUN"]
    instructions, probs = parse_fragment(text)
    assert [i.keyword for i in instructions] == ["RUN", "USER"]
    assert probs[0].line == 1 and "parser directives" in probs[0].message
    found = problems(tmp_path, text)
    assert [line for line, _ in found] == [1, 3]


@pytest.mark.parametrize("line", ["# syntax=docker/dockerfile:1.7", "#ESCAPE = `",
                                  "# check=skip=all"])
def test_directives_anywhere_are_refused(tmp_path: Path, line: str) -> None:
    found = problems(tmp_path, f"RUN true\n{line}\n")
    assert found[0][0] == 2 and "parser directives" in found[0][1]


def test_lowercase_and_mixed_case_instructions(tmp_path: Path) -> None:
    assert "USER is refused" in messages(tmp_path, "uSeR root\n")
    assert problems(tmp_path, "run true\nenv A=1\nworkdir /opt/x\n") == []


def test_continuation_at_end_of_file(tmp_path: Path) -> None:
    for text in ("RUN true \\\n", "RUN true \\\n\n\n", "RUN true \\\n# c\n"):
        found = problems(tmp_path, text)
        assert found[0][0] == 1
        assert "runs past the end of the fragment" in found[0][1]


def test_escaped_backslash_at_end_of_line_is_refused(tmp_path: Path) -> None:
    # BuildKit 0.12 reads two instructions; engines before moby/buildkit#1559
    # read one. Neither reading may reach the generated Dockerfile.
    found = problems(tmp_path, "ENV A=x\\\\\nLABEL LAB_USER=0\n")
    assert found == [(1, "ENV ends with a backslash: Docker engines disagree on "
                         "whether that continues the instruction; end the line "
                         "with something else")]


def test_parse_error_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "RUN true\nENV A=1\nENV A=1 B\nRUN true\n")
    assert found[0][0] == 3
    assert found[0][1].startswith("BuildKit cannot parse the fragment: ")


@pytest.mark.parametrize(("text", "needle", "line"), [
    ("RUN true\r\nUSER root\r\n", "U+000D", 1),
    ("RUN true\x00\nUSER root\n", "U+0000", 1),
    ("RUN true\nRUN a\x0bb\n", "U+000B", 2),
    ("RUN a\u2028b\n", "U+2028", 1),
    ("RUN a\u0085b\n", "U+0085", 1),
    ("RUN --mount=type=cache,target=/x\u00a0--network=host true\n", "U+00A0", 1),
    ('RUN echo "\u202eabc"\n', "U+202E", 1),
    ("RUN echo a\u200bb\n", "U+200B", 1),
    ("\ufeffRUN true\n", "byte-order mark", 1),
    ("RUN echo \x1b[31m\n", "U+001B", 1),
])
def test_control_and_invisible_characters(tmp_path: Path, text: str, needle: str,
                                          line: int) -> None:
    found = problems(tmp_path, text)
    assert any(n == line and needle in m for n, m in found), found


def test_nul_does_not_hide_the_rest(tmp_path: Path) -> None:
    # The Go wrapper reads C strings: a NUL would end the text it sees.
    found = problems(tmp_path, "RUN true\x00\nUSER root\n")
    assert (2, found[-1][1]) == found[-1] and "USER is refused" in found[-1][1]


def test_crlf_reported_once(tmp_path: Path) -> None:
    found = problems(tmp_path, "RUN a\r\nRUN b\r\nRUN c\r\n")
    assert found == [(1, "character U+000D: save the file with LF line endings; "
                         "BuildKit and nublado-build must see the same lines "
                         "(on 2 more lines)")]


def test_long_line_is_refused_and_the_rest_still_read(tmp_path: Path) -> None:
    found = problems(tmp_path, "RUN echo " + "x" * 70000 + "\nUSER root\n")
    assert found[0][0] == 1 and "characters long" in found[0][1]
    assert found[1][0] == 2 and "USER is refused" in found[1][1]


def test_large_fragment_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "RUN true\n" * (MAX_FRAGMENT_BYTES // 9 + 1))
    assert len(found) == 1 and "bytes (at most" in found[0][1]


def test_special_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "Dockerfile.fragment"
    os.mkfifo(fifo)
    frag = check_fragment(fifo, tmp_path)
    assert frag.problems[0].message == "the fragment is not a regular file"


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile.fragment").write_bytes(b"RUN echo \xff\n")
    frag = check_fragment(tmp_path / "Dockerfile.fragment", tmp_path)
    assert "not UTF-8" in frag.problems[0].message


# --------------------------------------------------------------------------
# Instructions and flags
# --------------------------------------------------------------------------

def test_allowed_instructions_pass(tmp_path: Path) -> None:
    text = ("ARG V=1\nLABEL x=y\nENV A=b\nWORKDIR /opt/x\n"
            "RUN --mount=type=cache,target=/root/.cache/pip echo hi\n"
            "RUN --mount=type=tmpfs,target=/var/tmp/x echo hi\n"
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
    ("SHELL [\"/bin/sh\"]", "SHELL is refused"),
    ("EXPOSE 8080", "EXPOSE is not allowed in a payload fragment"),
    ("VOLUME /data", "VOLUME is not allowed"),
    ("STOPSIGNAL SIGINT", "STOPSIGNAL is not allowed"),
    ("MAINTAINER me", "MAINTAINER is not allowed"),
    ("FETCH http://x", "unknown instruction 'FETCH'"),
    ("COPY --from=python:3.12 /usr/bin/x /opt/", "COPY --from is refused"),
    ("COPY --from=0 /x /opt/", "COPY --from is refused"),
    ("COPY\t--from=0 /x /opt/", "COPY --from is refused"),
    ("COPY --link data/a.txt /opt/", "COPY --link is refused"),
    ("COPY --parents data/a.txt /opt/", "COPY --parents is refused"),
    ("COPY --chown=0:0 --chown=1:1 data/a.txt /opt/", "--chown is given twice"),
    ("COPY --chmod=u+s data/a.txt /opt/", "COPY --chmod=u+s is refused"),
    ("COPY --chmod=4755 data/a.txt /opt/", "without setuid"),
    ("COPY --chown=$EVIL data/a.txt /opt/", "COPY --chown=$EVIL is refused"),
    ("COPY --chown=${LAB_USER} data/a.txt /opt/", "no variables"),
    ("COPY ../secret /opt/", "escapes the payload directory"),
    ("COPY data/../../secret /opt/", "escapes the payload directory"),
    ("COPY /etc/passwd /opt/", "is absolute"),
    ("COPY $HOME/x /opt/", "holds '$'"),
    ("COPY data/a.txt $D", "holds '$'"),
    ("COPY \"data/a.txt\" /opt/", "without quotes"),
    ("COPY data/[a].txt /opt/", "holds '['"),
    ("COPY http://example.org/x /opt/", "is a URL"),
    ("COPY missing.txt /opt/", "does not exist"),
    ("COPY data/*.csv /opt/", "matches no file"),
    ("COPY data/a.txt", "at least one source and a destination"),
    ("COPY data/a.txt data/a.txt /opt/x", "ending in '/'"),
    ("COPY data/a.txt opt/", "is relative"),
    ("COPY [\"data/a.txt\", 3]", "BuildKit cannot parse the fragment"),
    ("RUN --mount=type=bind,source=.,target=/x true", "type=bind is refused"),
    ("RUN --mount=Type=BIND,source=.,target=/x true", "type=bind is refused"),
    ("RUN --mount=source=.,target=/x true", "type=bind is refused"),
    ("RUN --mount=type=ssh true", "type=ssh is refused"),
    ("RUN --mount=type=cache,from=img,target=/x true", "from= is refused"),
    ("RUN --mount=type=cache,FROM=img,target=/x true", "from= is refused"),
    ("RUN --mount=type=cache,source=/x,target=/x true", "option 'source' is refused"),
    ("RUN --mount=type=cache,target=x true", "must be an absolute path"),
    ("RUN --mount=type=cache true", "needs target=DIR"),
    ("RUN --mount=type=cache,target=/a,dst=/b true", "names its target twice"),
    ("RUN --mount=type=cache,target=/x,target=/y true", "gives 'target' twice"),
    ("RUN --mount=type=cache,target=/x,ro=1,bogus true",
     "option 'bogus' needs a value"),
    ("RUN --mount=type=$T,target=/x true", "no quotes, spaces or variables"),
    ("RUN --mount=type=cache,target=/x,id='a b' true", "holds spaces"),
    ("RUN --mount true", "RUN --mount needs a value"),
    ("RUN --mount=type=secret,id=ca cat /run/secrets/ca",
     "type=secret,id=ca is refused"),
    ("RUN --mount=type=secret,target=/run/secrets/pip_index_url true",
     "id=pip_index_url is refused"),
    ("RUN --mount=type=tmpfs,target=/usr/local/share/jupyterlab/venv true",
     "inside the protected tree /usr/local/share/jupyterlab"),
    ("RUN --network=host curl x", "RUN --network is refused"),
    ("RUN --network=none true", "RUN --network is refused"),
    ("RUN --security=insecure true", "RUN --security is refused"),
    ("RUN --Mount=type=cache,target=/x true", "RUN --Mount is refused"),
    ("RUN --device=/dev/fuse true", "RUN --device is refused"),
    ("RUN --=x true", "not a flag BuildKit knows"),
    ("RUN -- --network=host", "may not start with '-'"),
    ("RUN <<EOF", "here-document"),
    ("RUN", "RUN needs a command"),
    ("ENV --x=1 A=b", "ENV takes no flags"),
    ("WORKDIR --x /a", "WORKDIR takes no flags"),
])
def test_refused(tmp_path: Path, line: str, needle: str) -> None:
    found = problems(tmp_path, f"RUN true\n{line}\n", {"data/a.txt": "a"})
    assert len(found) >= 1, found
    assert found[0][0] == 2, found
    assert any(needle in m for _, m in found), found


def test_secret_mount_with_grant(tmp_path: Path) -> None:
    text = "RUN --mount=type=secret,id=ca,required cat /run/secrets/ca >/dev/null\n"
    assert "id=ca is refused" in messages(tmp_path, text)
    assert problems(tmp_path, text, secrets=("ca",)) == []
    assert "id=ca is refused" in problems(tmp_path, text, secrets=("index",))[0][1]
    index = "RUN --mount=type=secret,id=pip_extra_index_url true\n"
    assert problems(tmp_path, index, secrets=("index",)) == []
    other = "RUN --mount=type=secret,id=mytoken true\n"
    assert "id=mytoken is refused" in problems(tmp_path, other, secrets=("ca",))[0][1]
    assert secret_ids(["ca", "index", "bogus"]) == {
        "ca", "pip_index_url", "pip_extra_index_url"}


@pytest.mark.parametrize("text", [
    "RUN <<EOF\necho hi\nEOF\n",
    "RUN <<-EOF\n\techo hi\n\tEOF\n",
    "RUN python3 <<'EOF'\nprint(1)\nEOF\n",
    "RUN 3<<EOF cat /dev/fd/3\nx\nEOF\n",
    "RUN cat <<EOF\nUSER root\n",
    "COPY <<EOF /etc/jupyter/x.py\nimport os\nEOF\n",
])
def test_heredocs_are_refused(tmp_path: Path, text: str) -> None:
    found = problems(tmp_path, text)
    assert found[0][0] == 1
    assert "here-document (<<) is refused" in found[0][1]
    assert "unknown instruction" not in messages(tmp_path, text)


@pytest.mark.parametrize("text", [
    "RUN bash -c 'cat <<<hello'\n",
    "RUN echo $((1<<3))\n",
    "RUN echo 'a << b'\n",
])
def test_heredoc_lookalikes_are_accepted(tmp_path: Path, text: str) -> None:
    assert problems(tmp_path, text) == []


def test_json_run_is_accepted_and_spliced_as_json(tmp_path: Path) -> None:
    text = 'RUN ["/bin/sh", "-c", "echo \\"hi\\""]\n'
    frag = check_fragment(fragment(tmp_path, text), tmp_path)
    assert frag.problems == ()
    (item,) = splice(frag, "ctx")
    assert json.loads(item.lines[0][len("RUN "):]) == ["/bin/sh", "-c", 'echo "hi"']
    assert json.loads(item.run_command) == ["/bin/sh", "-c", 'echo "hi"']


# --------------------------------------------------------------------------
# ENV, ARG, LABEL, WORKDIR values
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "LAB_USER", "lab_user", "LAB_UID", "BASE_IMAGE", "NUBLADO_DEFAULT_KERNEL",
    "NUBLADO_ANYTHING", "RUNNING_INSIDE_JUPYTERLAB", "PYTHONPATH", "PYTHONHOME",
    "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONWARNINGS", "PYTHONBREAKPOINT",
    "BASH_ENV", "ENV", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH",
    "JUPYTER_CONFIG_DIR", "JUPYTER_PATH", "JUPYTERHUB_API_TOKEN",
    "JUPYTERLAB_CONFIG_DIR", "JUPYTERLAB_DIR", "JPY_API_TOKEN", "HOME",
    "XDG_DATA_HOME", "XDG_CONFIG_DIRS", "SHELLOPTS", "PS4", "IFS",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_FIND_LINKS",
    "PIP_CONFIG_FILE", "UV_INDEX_URL", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
    "HTTPS_PROXY", "https_proxy", "NO_PROXY", "BUILDKIT_SANDBOX_HOSTNAME",
    "RESET_USER_ENV", "DEBUG",
])
def test_reserved_names(tmp_path: Path, name: str) -> None:
    assert name_problem(name, "ENV") is not None
    assert f"ENV {name} is refused" in messages(tmp_path, f"ENV {name}=x\n")
    assert f"ARG {name} is refused" in messages(tmp_path, f"ARG {name}=x\n")
    assert f"ARG {name} is refused" in messages(tmp_path, f"ARG {name}\n")


@pytest.mark.parametrize("name", [
    "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "MY_PYTHONPATH", "LAB_USERNAME",
    "OMP_NUM_THREADS", "PIP_NO_CACHE_DIR", "CONDA_ENVS_PATH", "LSST_HOME",
    "DEBUGGER", "IPYTHONDIR", "LANG",
])
def test_names_a_payload_may_set(tmp_path: Path, name: str) -> None:
    assert name_problem(name) is None
    assert problems(tmp_path, f"ENV {name}=x\nARG {name}=y\n") == []


@pytest.mark.parametrize("text", [
    'ENV "LAB_USER"=root\n', "ENV LAB\\_USER=root\n", "ENV ${X}USER=root\n",
    "ARG 'LAB_USER'=0\n",
])
def test_names_with_quotes_escapes_or_variables(tmp_path: Path, text: str) -> None:
    assert "without quotes, escapes or variables" in messages(tmp_path, text)


def test_every_pair_of_env_is_checked(tmp_path: Path) -> None:
    found = problems(tmp_path, "ENV A=1 \\\n    LAB_USER=0 \\\n    B=2\n")
    assert found[0][0] == 1 and "ENV LAB_USER is refused" in found[0][1]
    assert "ENV LAB_USER is refused" in messages(tmp_path, "ENV LAB_USER 0:0\n")


@pytest.mark.parametrize("value", [
    "/opt/x/bin:$PATH", "/opt/x/bin:${PATH}", '"/opt/x/bin:$PATH"',
    "$PATH:/opt/x/bin", "/opt/conda/bin:/usr/local/bin:/usr/bin:/bin",
    "/usr/local/share/jupyterlab-tools/bin:$PATH",
])
def test_path_accepted(tmp_path: Path, value: str) -> None:
    assert problems(tmp_path, f"ENV PATH={value}\n") == []


@pytest.mark.parametrize(("value", "needle"), [
    ("/usr/local/share/jupyterlab/venv/bin:$PATH", "protected tree"),
    ("/usr/local/share/jupyterlab/venv/bin/../bin:$PATH", "protected tree"),
    ("/usr/local/etc/jupyter:$PATH", "protected tree"),
    (":$PATH", "current directory"),
    ("$PATH:", "current directory"),
    ("bin:$PATH", "'bin' is refused"),
    ("/tmp/x:$PATH", "anyone can write there"),
    ("$EVIL:$PATH", "no other variables"),
    ("$(evil):$PATH", "no other variables"),
    ("'/opt/x/bin:$PATH'", "no other variables"),
])
def test_path_refused(tmp_path: Path, value: str, needle: str) -> None:
    assert needle in messages(tmp_path, f"ENV PATH={value}\n")


def test_arg_path_refused(tmp_path: Path) -> None:
    assert "ARG PATH is refused" in messages(tmp_path, "ARG PATH=/x\n")


@pytest.mark.parametrize(("text", "needle"), [
    ("LABEL io.nublado.compat=nublado-legacy\n", "LABEL io.nublado.compat is refused"),
    ("LABEL IO.NUBLADO.payload.name=x\n", "is refused"),
    ("LABEL io.nublado=x\n", "is refused"),
    ("LABEL org.opencontainers.image.title=x\n", "org.opencontainers"),
    ("LABEL a=b io.nublado.build.version=0\n", "io.nublado"),
    ('LABEL "io.nublado.compat"=x\n', "without quotes"),
    ("LABEL io.nublado.$X=x\n", "without quotes"),
    ("LABEL --x a=b\n", "LABEL takes no flags"),
])
def test_labels_refused(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in messages(tmp_path, text)


def test_labels_accepted(tmp_path: Path) -> None:
    text = ('LABEL org.example.version=1 io.nubladoish=x maintainer="A B" '
            'description="$X io.nublado.compat"\n')
    assert problems(tmp_path, text) == []


@pytest.mark.parametrize(("path", "needle"), [
    ("/usr/local/share/jupyterlab/venv", "/usr/local/share/jupyterlab"),
    ("/usr/local/share/jupyterlab", "/usr/local/share/jupyterlab"),
    ("/usr/local/etc/jupyter", "/usr/local/etc/jupyter"),
    ("/etc/jupyter/nbconfig", "/etc/jupyter"),
    ("/usr/local/share/jupyter/kernels", "/usr/local/share/jupyter"),
    ("/opt/../usr/local/share/jupyter", "/usr/local/share/jupyter"),
    ("//usr/local/share/jupyter", "/usr/local/share/jupyter"),
    ("/usr/local/lib/python3.13", "standard library"),
    ("/lib/python3.13/site-packages", "standard library"),
])
def test_workdir_refused(tmp_path: Path, path: str, needle: str) -> None:
    found = messages(tmp_path, f"WORKDIR {path}\n")
    assert "WORKDIR" in found and needle in found


@pytest.mark.parametrize(("text", "needle"), [
    ("WORKDIR venv\n", "relative"),
    ("WORKDIR $D\n", "holds '$'"),
    ('WORKDIR "/etc/jupyter"\n', "holds '\"'"),
    ("WORKDIR /a b\n", "holds ' '"),
])
def test_workdir_unreadable(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in messages(tmp_path, text)


def test_workdir_lookalikes(tmp_path: Path) -> None:
    text = ("WORKDIR /usr/local/share/jupyterlab-x\nWORKDIR /opt/jupyter\n"
            "WORKDIR /etc/jupyterhub\n")
    assert problems(tmp_path, text) == []


def test_protected_reason() -> None:
    assert protected_reason("/usr/local/share/jupyterlab/venv/bin/python3")
    assert protected_reason("/usr/local/bin/python3.13")
    assert protected_reason("/usr/bin/python3")
    assert protected_reason("/bin/python3")
    assert protected_reason("/usr/local/lib/libpython3.13.so.1.0")
    assert protected_reason("/usr/lib/x86_64-linux-gnu/libpython3.13.so.1.0")
    assert protected_reason("/etc/ld.so.preload")
    assert protected_reason("/etc/ld.so.conf.d/x.conf")
    assert protected_reason("/etc/profile.d/zz-nublado-payload.sh")
    assert protected_reason("/etc/bash.bashrc")
    assert protected_reason("/opt/lsst/software/jupyterlab/runlab.sh")
    assert protected_reason("/etc/nublado/startup/env.json")
    for free in ("/opt/x", "/usr/local/bin/tool", "/usr/local/lib/libfoo.so",
                 "/etc/profile.d/payload.sh", "/usr/local/share/jupyterlab2",
                 "/opt/lsst/software/stack", "/usr/local/bin/pythonista-tool/x"):
        assert protected_reason(free) is None, free


# --------------------------------------------------------------------------
# COPY: sources and destinations
# --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "needle"), [
    ("COPY data/a.txt /usr/local/etc/jupyter/\n", "/usr/local/etc/jupyter"),
    ("COPY data/a.txt /usr/local/etc/jupyter\n", "/usr/local/etc/jupyter"),
    ("COPY data/ /usr/local/share/jupyter/kernels/x/\n", "/usr/local/share/jupyter"),
    ("COPY tree /usr/local/\n", "writes /usr/local/share/jupyterlab"),
    ("COPY tree/share /usr/local/share\n", "writes /usr/local/share/jupyterlab"),
    ("COPY data/a.txt /usr/local/lib/python3.13/sitecustomize.py\n",
     "standard library"),
    ("COPY data/a.txt /etc/ld.so.preload\n", "dynamic loader"),
    ('COPY ["data/a.txt", "/etc/jupyter/"]\n', "/etc/jupyter"),
    ("WORKDIR /usr/local/share\nCOPY data/a.txt jupyter/\n",
     "/usr/local/share/jupyter"),
])
def test_copy_into_protected_trees(tmp_path: Path, text: str, needle: str) -> None:
    files = {"data/a.txt": "a", "tree/share/jupyterlab/runlab": "x"}
    found = messages(tmp_path, text, files)
    assert "COPY" in found and needle in found, found


def test_copy_source_symlink_outside_is_refused(tmp_path: Path) -> None:
    payload = tmp_path / "p"
    payload.mkdir()
    (tmp_path / "secret").write_text("s")
    (payload / "link").symlink_to(tmp_path / "secret")
    frag = check_fragment(fragment(payload, "COPY link /opt/\n"), payload)
    assert "outside the payload directory" in frag.problems[0].message


def test_copy_directory_skips_links_outside(tmp_path: Path) -> None:
    payload = tmp_path / "p"
    (payload / "d").mkdir(parents=True)
    (payload / "d" / "ok.txt").write_text("ok")
    (tmp_path / "secret").write_text("s")
    (payload / "d" / "link").symlink_to(tmp_path / "secret")
    frag = check_fragment(fragment(payload, "COPY d /opt/d/\n"), payload)
    assert frag.problems == ()
    assert frag.files == ("d/ok.txt",)


def test_copy_glob_matches_hidden_files_like_buildkit(tmp_path: Path) -> None:
    files = {"s/a.sh": "a", "s/.b.sh": "b", "s/c.txt": "c"}
    frag = check_fragment(fragment(tmp_path, "COPY s/*.sh /opt/x/\n", files), tmp_path)
    assert frag.problems == ()
    assert frag.files == ("s/.b.sh", "s/a.sh")
    (item,) = splice(frag, "ctx")
    assert item.copy_args == ("ctx/s/.b.sh", "ctx/s/a.sh", "/opt/x/")


def test_copy_file_names_buildkit_reads_as_patterns(tmp_path: Path) -> None:
    files = {"s/a*b.sh": "a"}
    assert "rename it" in messages(tmp_path, "COPY s/*.sh /opt/x/\n", files)


def test_copy_relative_destination_after_workdir(tmp_path: Path) -> None:
    text = "WORKDIR /opt/w\nCOPY a.txt ./\n"
    assert problems(tmp_path, text, {"a.txt": "a"}) == []


# --------------------------------------------------------------------------
# Reporting and splicing
# --------------------------------------------------------------------------

def test_continued_refused_instruction_reports_first_line(tmp_path: Path) -> None:
    assert problems(tmp_path, "RUN a\n\nUSER \\\n  root\n")[0][0] == 3


def test_every_problem_reported(tmp_path: Path) -> None:
    found = problems(tmp_path, "FROM x\nRUN ok\nUSER 0\nCMD x\nENV LAB_USER=0\n")
    assert [line for line, _ in found] == [1, 3, 4, 5]


def test_empty_fragment(tmp_path: Path) -> None:
    assert "no instructions" in problems(tmp_path, "# only a comment\n")[0][1]
    assert "no instructions" in problems(tmp_path, "")[0][1]


def test_splice_rewrites_copy_sources_and_joins_lines(tmp_path: Path) -> None:
    text = ("COPY --chown=1:2 data /opt/d/\nRUN a \\\n  # c\n  && b\n"
            'COPY ["data/a.txt", "bin/x", "/opt/e/"]\n'
            "RUN --mount=\"type=cache\",target=/root/.cache/pip\\\n\t  pip --version\n"
            "ENV A=1 \\\n    B=2\n")
    frag = check_fragment(fragment(tmp_path, text, {"data/a.txt": "a",
                                                    "bin/x": "x"}), tmp_path)
    assert frag.problems == ()
    spliced = splice(frag, "steps/01-dockerfile/src")
    assert spliced[0].copy_flags == ("--chown=1:2",)
    assert spliced[0].copy_args == ("steps/01-dockerfile/src/data", "/opt/d/")
    assert spliced[1].lines == ("RUN a   && b",)
    assert spliced[2].copy_args == ("steps/01-dockerfile/src/data/a.txt",
                                    "steps/01-dockerfile/src/bin/x", "/opt/e/")
    assert spliced[3].lines == (
        "RUN --mount=type=cache,target=/root/.cache/pip pip --version",)
    assert spliced[3].run_flags == ("--mount=type=cache,target=/root/.cache/pip",)
    assert spliced[3].run_command == "pip --version"
    assert spliced[4].run_flags == () and spliced[4].run_command == ""
    assert spliced[4].lines == ("ENV A=1     B=2",)
    assert frag.files == ("bin/x", "data/a.txt")


def test_spliced_lines_read_the_same(tmp_path: Path) -> None:
    # Every spliced line, parsed alone, gives the instruction that was checked.
    text = ("run --mount=type=cache,target=/x\t\\\n  echo 'a\\\nb' \\\n  # c\n  && c\n"
            'ENV A="x y" \\\n    B=z\nLABEL org.example.a=b\nWORKDIR /opt/x\n'
            "ARG V=1\n")
    frag = check_fragment(fragment(tmp_path, text), tmp_path)
    assert frag.problems == ()
    for instr, item in zip(frag.instructions, splice(frag, "ctx"), strict=True):
        (line,) = item.lines
        assert "\n" not in line
        (again,) = dockerfile.parse_string(line)
        assert again.cmd.upper() == instr.keyword
        assert again.flags == instr.flags
        assert again.value == instr.value


def test_splice_refuses_a_fragment_with_problems(tmp_path: Path) -> None:
    frag = check_fragment(fragment(tmp_path, "USER root\n"), tmp_path)
    with pytest.raises(ValueError, match="cannot be spliced"):
        splice(frag, "ctx")


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


_FUZZ_TOKENS = (
    "RUN", "run", "COPY", "ENV", "ARG", "LABEL", "WORKDIR", "USER", "FROM", "ADD",
    "ONBUILD", "SHELL", "--mount=type=cache,target=/x", "--mount=Type=bind",
    '"type=bind"', "--network=host", "--from=x", "--chown=1:2", "--chmod=0755",
    "\\\n", "\\\\\n", "\n", "\t", " ", "#", "# escape=`", "`\n", "<<EOF", "EOF",
    "<<<", "'", '"', "$PATH", "${X}", "=", "a=b", "LAB_USER=0",
    "PATH=/opt/x/bin:$PATH", "io.nublado.x=1", "/usr/local/share/jupyterlab",
    "a.txt", "/opt/x/", "[", "]", '["a", "b"]', ",", "--", "-", "\r", "\x00",
    "\u00a0", "\u00e9", "\u2028", "true", "echo hi",
)


def test_no_input_crashes_and_accepted_fragments_splice_cleanly(
        tmp_path: Path) -> None:
    import random
    rnd = random.Random(20261124)
    (tmp_path / "a.txt").write_text("a")
    accepted = 0
    for _ in range(1500):
        text = "".join(rnd.choice(_FUZZ_TOKENS) + rnd.choice(("", " ", "\n"))
                       for _ in range(rnd.randint(1, 25)))
        path = fragment(tmp_path, text)
        frag = check_fragment(path, tmp_path)
        if frag.problems:
            continue
        accepted += 1
        for item in splice(frag, "ctx"):
            for line in item.lines:
                assert "\n" not in line and not line.rstrip().endswith("\\")
                (again,) = dockerfile.parse_string(line)
                assert again.cmd.upper() in ALLOWED, (text, line)
    assert accepted > 0


# --------------------------------------------------------------------------
# The corpus's fragment cases
# --------------------------------------------------------------------------

def test_fragment_corpus_size() -> None:
    assert len(REFUSED_CASES) >= 40
    assert len(ACCEPTED_CASES) >= 15
    assert not set(REFUSED_CASES) & set(ACCEPTED_CASES)


@pytest.mark.parametrize("name", REFUSED_CASES)
def test_corpus_fragment_refused(name: str) -> None:
    directory = CORPUS / name
    expect = yaml.safe_load((directory / "expect.yaml").read_text())
    frag = check_fragment(directory / "Dockerfile.fragment", directory)
    rendered = "\n".join(f"{directory / 'Dockerfile.fragment'}:{p.line}: {p.message}"
                         for p in frag.problems)
    assert frag.problems, name
    for needle in expect.get("contains") or []:
        if needle.startswith("Dockerfile.fragment:"):
            # the first problem is on that line
            assert rendered.startswith(f"{directory}/{needle}"), rendered
        else:
            assert needle in rendered, f"{name}: {needle!r} not in:\n{rendered}"


@pytest.mark.parametrize("name", ACCEPTED_CASES)
def test_corpus_fragment_accepted(name: str, tmp_path: Path) -> None:
    import shutil
    directory = tmp_path / name
    shutil.copytree(CORPUS / name, directory, symlinks=True)
    frag = check_fragment(directory / "Dockerfile.fragment", directory)
    assert frag.problems == (), frag.problems
    splice(frag, "ctx")
    result = CliRunner().invoke(cli, ["validate", str(directory)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
