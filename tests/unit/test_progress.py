"""Progress display: the BuildKit line parser, step names, both renderers.

The logs in data/buildkit are real ``docker build --progress=plain``
output of Debian's 20.10 engine: a payload build (payload-ok.log, from
the log builder.py writes) and a tiny Dockerfile with 11 steps in one
stage, all cached, then a failing RUN (cached-fail.log).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from nubladobuild.progress import (
    Line,
    LiveProgress,
    PlainProgress,
    parse_line,
    step_name,
)
from nubladobuild.progress import for_stream as progress_for

DATA = Path(__file__).parent / "data" / "buildkit"
GUARD = ("nublado-build: isolation guard: JupyterLab environment unchanged "
         "(37136 entries compared).")


@pytest.mark.parametrize(("line", "expected"), [
    ("#1 [internal] load build definition from Dockerfile",
     Line("text", 1, "[internal] load build definition from Dockerfile")),
    ("#4 [first  1/11] FROM docker.io/nublado-build/python:3.13-slim-trixie",
     Line("text", 4, "[first  1/11] FROM docker.io/nublado-build/python:3.13-slim-"
          "trixie")),
    ("#1 sha256:6643812345a866aa9dae77d65a387c5fb5aebf43c1ffcfa26a729cc9420a1890",
     Line("digest", 1,
          "sha256:6643812345a866aa9dae77d65a387c5fb5aebf43c1ffcfa26a729cc9420a1890")),
    ("#1 transferring dockerfile: 271B done",
     Line("text", 1, "transferring dockerfile: 271B done")),
    ("#6 DONE 1.3s", Line("done", 6, seconds=1.3)),
    ("#13 DONE 17s", Line("done", 13, seconds=17.0)),
    ("#4 CACHED", Line("cached", 4)),
    ("#9 CANCELED", Line("canceled", 9)),
    ("#15 ERROR: executor failed running [/bin/sh -c echo broken >&2 && exit 3]: "
     "exit code: 3",
     Line("error", 15, "executor failed running [/bin/sh -c echo broken >&2 && "
          "exit 3]: exit code: 3")),
    ("#6 2.127 Collecting six (from -r /tmp/nb-step/requirements.txt (line 1))",
     Line("output", 6, "Collecting six (from -r /tmp/nb-step/requirements.txt "
          "(line 1))")),
    ("#6 6.426 ", Line("output", 6, "")),
    ("#6 6.426", Line("output", 6, "")),
    (f"#10 1.669 {GUARD}", Line("output", 10, GUARD)),
    ("#13 exporting layers 0.9s done", Line("text", 13, "exporting layers 0.9s done")),
    ("------", Line("other", None, "------")),
    (" > [stage-1 1/1] RUN echo broken >&2 && exit 3:",
     Line("other", None, " > [stage-1 1/1] RUN echo broken >&2 && exit 3:")),
    ("(Reading database ... 45%", Line("other", None, "(Reading database ... 45%")),
    ("", Line("other", None, "")),
])
def test_parse_line(line: str, expected: Line) -> None:
    assert parse_line(line) == expected


PIP_RUN = (
    "[nublado-payload 2/5] RUN --mount=type=cache,id=nublado-pip,target=/root/.cache/"
    "pip     --mount=type=bind,from=nublado-base,source=/usr/local/share/jupyterlab/"
    "venv,target=/usr/local/share/jupyterlab/venv     --mount=type=secret,id=ca     "
    "--mount=type=bind,source=steps/00-pip,target=/tmp/nb-step     /usr/local/share/"
    "jupyterlab/build/with-build-secrets /usr/local/share/jupyterlab/build/install-pip"
    "     python3 /opt/payload/venv /tmp/nb-step/requirements.txt     pip nohashes")


@pytest.mark.parametrize(("title", "name"), [
    ("[internal] load build definition from Dockerfile", None),
    ("[internal] load metadata for docker.io/library/nublado-jupyterlab-base:test",
     None),
    (PIP_RUN, "install[0].pip"),
    # Script steps share the payload files: run-install-script's first
    # argument names the step.
    ("[nublado-payload 3/9] RUN --mount=type=cache,id=nublado-pip,target=/root/.cache"
     "/pip     --mount=type=bind,source=payload,target=/tmp/nb-payload,rw    "
     " /usr/local/share/jupyterlab/build/with-build-secrets /usr/local/share/"
     "jupyterlab/build/run-install-script     'install[12].script' /tmp/nb-payload "
     "setup.sh /opt/x     /opt/x/bin ''",
     "install[12].script"),
    ("[conda-1 2/3] RUN --mount=type=cache,id=nublado-pip,target=/root/.cache/pip "
     "/usr/local/share/jupyterlab/build/with-build-secrets python3 -m venv "
     "/tmp/rattler  && /usr/local/share/jupyterlab/build/with-build-secrets "
     "/tmp/rattler/bin/python -m pip install --no-input     py-rattler==0.28.0",
     "install[1].conda (setup)"),
    ("[conda-1 3/3] RUN --mount=type=bind,source=steps/01-conda/packages,target=/tmp/"
     "nb-conda-pkgs     /usr/local/share/jupyterlab/build/with-build-secrets "
     "/tmp/rattler/bin/python /usr/local/share/jupyterlab/build/conda-install "
     "--packages /tmp/nb-conda-pkgs --prefix /opt/conda/envs/x",
     "install[1].conda"),
    ("[nublado-payload 2/7] COPY --from=conda-1 [/opt/conda/envs/x, /opt/conda/envs/"
     "x]", "install[1].conda (copy)"),
    ("[transplant-2 1/1] FROM docker.io/library/busybox:1.36",
     "install[2].transplant (pull)"),
    ("[nublado-payload 4/7] COPY --from=transplant-2 [/bin/busybox, /bin/busybox]",
     "install[2].transplant (copy)"),
    ("[nublado-lab 2/2] RUN --mount=type=bind,source=lab,target=/tmp/nb-lab     "
     "/usr/local/share/jupyterlab/build/with-build-secrets /usr/local/share/"
     "jupyterlab/venv/bin/python3 -I     /tmp/nb-lab/install-lab-extensions demo "
     "/tmp/nb-lab", "lab.extensions"),
    ("[nublado-guard 2/2] RUN --mount=type=bind,from=nublado-payload,source=/,target="
     "/mnt/nublado-payload     --mount=type=bind,source=guard,target=/tmp/nb-guard    "
     " /usr/local/share/jupyterlab/venv/bin/python3 -I /tmp/nb-guard/guard.py",
     "isolation guard"),
    ("[nublado-payload 5/5] RUN /usr/local/share/jupyterlab/build/write-manifest "
     "secretcheck /opt/payload/venv/bin/python", "write-manifest"),
    ("[ 4/9] RUN --mount=type=bind,source=base/build,target=/tmp/nb-build     "
     "/tmp/nb-build/install-apt-packages \"${TOOLS}\" ${EXTRA_APT_PACKAGES}",
     "install-apt-packages"),
    ("[stage-0 3/7] RUN --mount=type=cache,target=/var/cache/apt,sharing=locked     "
     "--mount=type=bind,source=base/build,target=/tmp/nb-build     "
     "/tmp/nb-build/install-apt-packages \"${TOOLS}\" ${EXTRA_APT_PACKAGES}",
     "install-apt-packages"),
    ("[nublado-payload 3/5] COPY [kernel/kernel.json, /usr/local/share/jupyter/"
     "kernels/secretcheck/kernel.json]", "kernel files"),
    ("[nublado-guard 1/2] FROM docker.io/library/nublado-jupyterlab-base:test",
     "FROM docker.io/library/nublado-jupyterlab-base:test"),
    ("[first 10/11] RUN echo 9", "RUN echo 9"),
    ("[stage-3 2/2] WORKDIR /tmp", "WORKDIR /tmp"),
    ("exporting to image", "export image"),
    ("[fragment 3/4] RUN " + "x" * 100, "RUN " + "x" * 57 + "..."),
])
def test_step_name(title: str, name: str | None) -> None:
    assert step_name(title) == name


def _feed(progress: PlainProgress | LiveProgress, log: str) -> None:
    with progress.build("payload secretcheck") as sink:
        for line in (DATA / log).read_text().splitlines():
            sink(line)


def test_plain_renderer_prints_one_line_per_finished_step() -> None:
    """One line per finished step; a payload step also says when it runs."""
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.message("install[0].conda: 12 packages fetched (lock)")
    _feed(progress, "payload-ok.log")
    assert out.getvalue().splitlines() == [
        "install[0].conda: 12 packages fetched (lock)",
        "  FROM docker.io/library/nublado-jupyterlab-base:test  CACHED",
        "  install[0].pip  running",
        "  install[0].pip  6.9 s",
        "  kernel files  0.0 s",
        "  shell setup  0.0 s",
        "  write-manifest  0.3 s",
        GUARD,
        "  isolation guard  1.9 s",
        "  guard report  0.0 s",
        "  WORKDIR /tmp  0.0 s",
        "  export image  1.0 s",
    ]


def test_plain_renderer_failed_build() -> None:
    """Cached steps finish in BuildKit's order; the failing step says so, and
    nothing of BuildKit's closing summary is printed (the builder's failure
    message carries it)."""
    out = io.StringIO()
    _feed(PlainProgress(out), "cached-fail.log")
    lines = out.getvalue().splitlines()
    assert lines[0] == "  FROM docker.io/nublado-build/python:3.13-slim-trixie  0.0 s"
    assert sorted(lines[1:-1]) == sorted(
        [f"  RUN echo {n}  CACHED" for n in ("one", "3", "4", "5", "6", "7", "8", "9")]
        + ["  RUN echo two && sleep 1  CACHED", "  RUN echo 10 && sleep 0.3  CACHED"])
    assert lines[-1] == "  RUN echo broken >&2 && exit 3  failed"


def test_plain_phase_lines() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    with progress.phase("debootstrap Debian trixie"):
        pass
    with progress.phase("check python3") as phase:
        phase.result = "python3 3.13.5"
    with progress.phase("pushing a:1 to r/a:1") as phase:
        phase.failed = True
    with pytest.raises(RuntimeError), progress.phase("import x"):
        raise RuntimeError
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  debootstrap Debian trixie  0.")
    assert lines[0].endswith(" s")
    assert lines[1].startswith("  python3 3.13.5  0.")
    assert lines[2:] == ["  pushing a:1 to r/a:1  failed", "  import x  failed"]


def _terminal() -> tuple[io.StringIO, LiveProgress]:
    out = io.StringIO()
    return out, LiveProgress(Console(file=out, force_terminal=True, width=120,
                                     color_system=None))


def test_live_renderer_shows_steps_and_times() -> None:
    out, progress = _terminal()
    _feed(progress, "payload-ok.log")
    text = out.getvalue()
    final = text[text.rindex("payload secretcheck"):]  # the last frame
    for name, seconds in (("install[0].pip", "6.9 s"), ("isolation guard", "1.9 s"),
                          ("write-manifest", "0.3 s"), ("export image", "1.0 s")):
        row = next(ln for ln in final.splitlines() if name in ln)
        assert row.rstrip().endswith(seconds), row
    assert "CACHED" in final
    assert "[internal]" not in text
    assert "Collecting six" not in final  # a running step's last line, gone
    assert GUARD in text  # image-side messages are printed above the display


def test_live_renderer_running_step_spinner_and_last_line() -> None:
    out, progress = _terminal()
    with progress.build("payload demo") as sink:
        sink("#6 [nublado-payload 2/5] RUN --mount=type=bind,source=steps/00-pip,"
             "target=/tmp/nb-step install-pip")
        sink("#6 2.127 Collecting six")
        assert progress._live is not None
        progress._live.refresh()
        frame = out.getvalue()
        assert "install[0].pip" in frame and "Collecting six" in frame
        sink("#6 ERROR: executor failed running [/bin/sh -c x]: exit code: 1")
    assert "failed" in out.getvalue()[out.getvalue().rindex("payload demo"):]


def test_live_phase() -> None:
    out, progress = _terminal()
    with progress.phase("pushing a:1 to localhost:5000/a:1") as phase:
        phase.result = "pushed localhost:5000/a:1 (sha256:abc)"
    assert "pushed localhost:5000/a:1 (sha256:abc)" in out.getvalue()


def test_for_stream_picks_plain_off_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not progress_for(io.StringIO(), {}).live
    assert progress_for(Tty(), {"TERM": "xterm"}).live
    assert not progress_for(Tty(), {"TERM": "dumb"}).live
    live = progress_for(Tty(), {"TERM": "xterm", "NO_COLOR": "1"})
    assert isinstance(live, LiveProgress) and live.console.no_color
