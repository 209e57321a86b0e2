"""How the conda channel fixture finds its source CPython (no hard-coded path)."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from tests.fixtures.conda_channel import SOURCE_VERSION, find_source_python


def test_env_override_must_be_a_shared_cpython(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUBLADO_FIXTURE_PYTHON", str(tmp_path))
    source, why = find_source_python()
    assert source is None
    assert why.startswith("NUBLADO_FIXTURE_PYTHON: ")
    assert "bin/python3.11" in why


def test_nothing_found_says_what_was_tried(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUBLADO_FIXTURE_PYTHON", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "version_info", (3, 99, 0))
    source, why = find_source_python()
    assert source is None
    assert why.startswith("no source CPython 3.11 with a shared libpython")


@pytest.mark.skipif(sys.version_info[:2] != SOURCE_VERSION
                    or not sysconfig.get_config_var("Py_ENABLE_SHARED"),
                    reason="the running Python is not a shared CPython 3.11")
def test_running_interpreter_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUBLADO_FIXTURE_PYTHON", raising=False)
    source, why = find_source_python()
    assert (source, why) == (Path(sys.base_prefix).resolve(), "")
