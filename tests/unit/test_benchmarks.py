"""The benchmark harness reads step times from nublado-build's own progress."""

from __future__ import annotations

from benchmarks.__main__ import step_seconds

PROGRESS = """\
  FROM docker.io/library/nublado-jupyterlab-base:lead  0.1 s
  install[0].pip  running
  install[0].pip  11.0 s
  kernel files  0.0 s
  write-manifest  0.3 s
nublado-build: isolation guard: JupyterLab environment unchanged (37139 entries).
  isolation guard  2.6 s
  export image  2.1 s
built scipy-lab:lead (sha256:b97c5ec34814) in 24 s
"""


def test_step_seconds_reads_named_steps() -> None:
    assert step_seconds(PROGRESS, "install[0].pip") == 11.0
    assert step_seconds(PROGRESS, "isolation guard") == 2.6
    assert step_seconds(PROGRESS, "export image") == 2.1


def test_step_seconds_ignores_running_lines_and_unknown_steps() -> None:
    assert step_seconds("  install[0].pip  running\n", "install[0].pip") is None
    assert step_seconds(PROGRESS, "install[1].pip") is None
