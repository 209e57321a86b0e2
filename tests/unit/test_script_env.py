"""A script step's environment (PATH, PAYLOAD_PYTHON) and failed steps' names."""

from __future__ import annotations

from pathlib import Path

import pytest

from nubladobuild.builder import PayloadSource, _failure_message
from nubladobuild.kinds import KINDS
from nubladobuild.kinds._protocol import StepInput
from nubladobuild.kinds.script import ScriptStep, payload_python, search_path
from nubladobuild.progress import install_step, step_name
from nubladobuild.schema import Payload

DATA = Path(__file__).parent / "data" / "buildkit"
KERNEL = {"name": "k", "display_name": "K"}
PIP = {"pip": {"requirements": "requirements.txt"}}
CONDA = {"conda": {"environment": "environment.yml", "prefix": "/opt/conda/envs/demo"}}
TOOLS = {"script": {"path": "post.sh", "prefix": "/opt/tools"}}
OWN = {"script": {"path": "install.sh", "prefix": "/opt/s",
                  "python": "/opt/s/venv/bin/python"}}


def _script_env(*install: dict[str, object]) -> tuple[str, str]:
    """Return the search path and PAYLOAD_PYTHON of the last (script) step."""
    payload = Payload.model_validate({"name": "demo", "install": list(install),
                                      "kernel": KERNEL})
    index = len(install) - 1
    spec = payload.steps()[index].spec
    assert isinstance(spec, ScriptStep)
    return search_path(index, spec, payload), payload_python(index, payload)


@pytest.mark.parametrize(("install", "path", "python"), [
    ((PIP, TOOLS), "/opt/tools/bin:/opt/payload/venv/bin",
     "/opt/payload/venv/bin/python"),
    ((CONDA, TOOLS), "/opt/tools/bin:/opt/conda/envs/demo/bin",
     "/opt/conda/envs/demo/bin/python"),
    ((OWN,), "/opt/s/venv/bin:/opt/s/bin", ""),
    # The latest environment leads; a script's own python counts for the
    # steps after it; every directory once.
    ((CONDA, PIP, OWN, TOOLS),
     "/opt/tools/bin:/opt/s/venv/bin:/opt/payload/venv/bin:/opt/conda/envs/demo/bin",
     "/opt/s/venv/bin/python"),
    ((PIP, {"script": {"path": "x.sh", "prefix": "/opt/payload/venv"}}),
     "/opt/payload/venv/bin", "/opt/payload/venv/bin/python"),
    (({"dockerfile": {"path": "Dockerfile.fragment"}}, OWN),
     "/opt/s/venv/bin:/opt/s/bin", ""),
], ids=["pip-then-script", "conda-then-script", "own-python", "several",
        "same-prefix", "fragment-first"])
def test_script_search_path(install: tuple[dict[str, object], ...], path: str,
                            python: str) -> None:
    assert _script_env(*install) == (path, python)


def test_plan_carries_the_environment() -> None:
    payload = Payload.model_validate({"name": "demo", "install": [PIP, TOOLS],
                                      "kernel": KERNEL})
    spec = payload.steps()[1].spec
    plan = KINDS["script"].plan(1, spec, StepInput(), payload)
    assert plan.vars == {"step": "install[1].script", "path": "post.sh",
                         "prefix": "/opt/tools",
                         "search_path": "/opt/tools/bin:/opt/payload/venv/bin",
                         "python": "/opt/payload/venv/bin/python"}


# --- failures named by the payload step ------------------------------------

def _log(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def test_real_script_failure_names_the_payload_step() -> None:
    """A captured BuildKit log of a failing script step (install[1].script)."""
    lines = _log("script-fail.log")
    source = PayloadSource("payloads/x/payload.yaml", {0: 3, 1: 4})
    message = _failure_message("Build of payload x", lines, Path("/l.log"), 1,
                               source)
    head, docker_step, *rest = message.splitlines()
    assert head == ("Build of payload x failed at step install[1].script of "
                    "payloads/x/payload.yaml:4 (exit code 3).")
    assert docker_step.startswith("  Docker step: [nublado-payload 3/6] RUN ")
    assert "run-install-script 'install[1].script' /tmp/nb-payload post.sh" \
        in docker_step
    assert "--mount" not in docker_step
    # The step's last output lines, then the rest of the message as before.
    assert "  | about to fail" in rest
    assert rest[-2].startswith("  | ") and "failed with exit code 3" in message
    assert rest[-1] == ("No image was tagged; existing tags are unchanged. "
                        "Full build log: /l.log")


def test_failure_without_payload_source_names_the_step_alone() -> None:
    message = _failure_message("Build of payload x", _log("script-fail.log"),
                               Path("/l.log"), 1)
    assert message.startswith("Build of payload x failed at step install[1].script "
                              "(exit code 3).\n  Docker step: [nublado-payload")


def test_non_payload_failure_keeps_the_docker_title() -> None:
    """A step of no install step: named by its instruction, as before."""
    message = _failure_message("Build of base image", _log("cached-fail.log"),
                               Path("/l.log"), 1,
                               PayloadSource("payloads/x/payload.yaml", {}))
    assert message.splitlines()[:2] == [
        "Build of base image failed at step [stage-1 1/1] RUN echo broken >&2 && "
        "exit 3 (exit code 3).", "  | broken"]


def test_progress_and_failure_share_the_step_names() -> None:
    """The failing step's name is progress's name of the same title."""
    lines = _log("script-fail.log")
    error = next(ln for ln in lines if " ERROR" in ln and ln.startswith("#"))
    vertex = error.split(" ", 1)[0]
    title = next(ln for ln in lines if ln.startswith(vertex + " ")).split(" ", 1)[1]
    assert step_name(title) == "install[1].script"
    assert install_step(step_name(title)) == (1, "script")
    assert install_step("install[2].conda (copy)") == (2, "conda")
    assert install_step("write-manifest") is None
    assert install_step(None) is None


def test_payload_source_without_line() -> None:
    source = PayloadSource("p/payload.yaml", {0: 3})
    assert (source.where(0), source.where(5)) == ("p/payload.yaml:3",
                                                  "p/payload.yaml")
