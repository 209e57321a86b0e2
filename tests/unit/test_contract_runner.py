"""The contract runner's bookkeeping, without an engine.

Suite selection from labels, the server-log rule, and the collector: stable
test ids, skips by name, xfails apart, and a failure at teardown (a lab
server that logged an error) turning the test into a failure.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nubladobuild.contract.plugin import NO_SUCH_KERNEL_LOG, server_log_errors, timed
from nubladobuild.contract.runner import Selection, Summary, _Collector, select_suites
from nubladobuild.resources import contract_dir

PAYLOAD_LABELS = {"io.nublado.payload.name": "demo",
                  "io.nublado.payload.kernels": "demo"}


def test_base_image_runs_the_base_suite_only(tmp_path: Path) -> None:
    selection = select_suites({}, tmp_path)
    assert selection.image_kind == "base"
    assert selection.suites == ("base",)
    assert selection.paths["base"] == contract_dir() / "base"


def test_payload_image_runs_base_then_payload() -> None:
    selection = select_suites(PAYLOAD_LABELS, None)
    assert selection.image_kind == "payload"
    assert selection.suites == ("base", "payload")


def test_compat_label_and_payload_tests_add_suites(tmp_path: Path) -> None:
    labels = {**PAYLOAD_LABELS, "io.nublado.compat": "nublado-legacy"}
    selection = select_suites(labels, tmp_path)
    assert selection.suites == ("base", "payload", "compat", "payload-tests")
    assert selection.paths["payload-tests"] == tmp_path


def test_every_suite_directory_ships_tests() -> None:
    for suite in ("base", "payload", "compat"):
        assert list((contract_dir() / suite).glob("test_*.py")), suite
    assert not list(contract_dir().glob("test_*.py")), "tests outside a suite"


def test_server_log_errors() -> None:
    log = textwrap.dedent("""\
        [I 2026-11-24 18:35:45.185 ServerApp] jupyter_lsp | extension linked
        [W 2026-11-24 18:35:45.186 ServerApp] a warning is fine
        [E 2026-11-24 18:35:45.187 ServerApp] Uncaught exception GET /api
        ERROR: something else broke
        an ERRORS word is not a match
        """)
    assert server_log_errors(log) == [
        "[E 2026-11-24 18:35:45.187 ServerApp] Uncaught exception GET /api",
        "ERROR: something else broke"]
    assert server_log_errors("[I 1] all fine\n") == []


def test_a_test_may_allow_the_errors_it_provokes() -> None:
    log = textwrap.dedent("""\
        [E 2026-11-24 19:52:48.830 ServerApp] No such kernel named python3
        [E 2026-11-24 19:52:48.835 ServerApp] Uncaught exception POST /api/kernels (1)
        [E 2026-11-24 19:52:48.840 ServerApp] {
        [E 2026-11-24 19:52:48.841 ServerApp] 500 POST /api/kernels (a@b) 18.79ms
        [E 2026-11-24 19:52:48.842 ServerApp] 500 GET /api/contents (a@b) 1.00ms
        """)
    assert server_log_errors(log, NO_SUCH_KERNEL_LOG) == [
        "[E 2026-11-24 19:52:48.842 ServerApp] 500 GET /api/contents (a@b) 1.00ms"]


def test_timed_bounds_a_command_inside_the_container() -> None:
    assert timed(["bash", "-lc", "true"], 30) == ["timeout", "-k", "5", "30", "bash",
                                                  "-lc", "true"]


SUITE = '''
import pytest

@pytest.fixture
def server():
    yield
    raise AssertionError("the lab server logged 1 error line")

def test_ok():
    pass

def test_server_logged_error(server):
    pass

@pytest.mark.parametrize("wrapper", [pytest.param(
    None, id="no-wrapper", marks=pytest.mark.skip(reason="no kernel has a wrapper"))])
def test_wrappers(wrapper):
    pass

@pytest.mark.xfail(strict=True, reason="known")
def test_known_bug():
    assert False
'''


def test_collector_counts_by_name(tmp_path: Path) -> None:
    suite = tmp_path / "base"
    suite.mkdir()
    (suite / "test_demo.py").write_text(SUITE)
    selection = Selection("base", ("base",), {"base": suite})
    summary = Summary(image="demo")
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        "-o", "addopts=", str(suite)],
                       plugins=[_Collector(summary, selection)])
    assert code == pytest.ExitCode.TESTS_FAILED
    assert summary.passed_tests == ["base/test_demo.py::test_ok"]
    assert summary.passed == 1
    assert summary.failed == 1
    assert summary.failures == ["base/test_demo.py::test_server_logged_error "
                                "(at teardown)"]
    assert summary.skipped_tests == ["base/test_demo.py::test_wrappers[no-wrapper]"]
    assert summary.skips == ["base/test_demo.py::test_wrappers[no-wrapper]: "
                             "no kernel has a wrapper"]
    assert summary.xfailed_tests == ["base/test_demo.py::test_known_bug"]
    assert summary.by_suite == {"base": {"passed": 1, "failed": 1, "skipped": 1,
                                         "xfailed": 1, "errors": 0}}
    assert not summary.ok
