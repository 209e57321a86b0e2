"""pip step locks: the lock file's record, the loader's checks, the plan, --check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nubladobuild.errors import PayloadInvalid
from nubladobuild.kinds.pip import lock_input
from nubladobuild.loader import load_payload
from nubladobuild.piplock import input_digest, lock_text, recorded_digest
from nubladobuild.requirements import parse_requirements
from tests.unit.helpers import files_of, plan_of

COMPILED = """attrs==26.1.0 \\
    --hash=sha256:c647aa4a12dfbad9333ca4e71fe62ddc36f4e63b2d260a37a8b83d2f043ac309
ipykernel==7.1.0 \\
    --hash=sha256:763b5ec6c5b7776f6a8d7ce09b267693b4e5ce75cb50ae696aaefb3c85e1ea4c
"""


def payload(tmp_path: Path, requirements: str = "attrs\n", lock: str | None = None,
            step: str = "{requirements: requirements.txt, lock: requirements.lock}"
            ) -> Path:
    (tmp_path / "requirements.txt").write_text(requirements)
    (tmp_path / "payload.yaml").write_text(
        f"name: locked\ninstall:\n  - pip: {step}\n"
        "kernel: {name: k, display_name: K}\n")
    if lock is not None:
        (tmp_path / "requirements.lock").write_text(lock)
    return tmp_path


def made_lock(requirements: str = "attrs\n") -> str:
    data = requirements.encode()
    digest = input_digest(lock_input(data, parse_requirements(requirements)))
    return lock_text(where="install[0].pip", requirements="requirements.txt",
                     python="python3", base_image="base:test", digest=digest,
                     compiled=COMPILED)


def problems(directory: Path) -> list[str]:
    with pytest.raises(PayloadInvalid) as info:
        load_payload(directory)
    return [p.render() for p in info.value.problems]


def test_lock_input_adds_ipykernel_once() -> None:
    assert lock_input(b"attrs\n", parse_requirements("attrs\n")) == (
        b"attrs\n# added by nublado-build for the kernel\nipykernel\n")
    assert lock_input(b"ipykernel==7\n", parse_requirements("ipykernel==7\n")) == \
        b"ipykernel==7\n"
    assert lock_input(b"", parse_requirements("")) == b"ipykernel\n"


def test_lock_text_records_its_input() -> None:
    text = made_lock()
    digest = input_digest(b"attrs\n# added by nublado-build for the kernel\n"
                          b"ipykernel\n")
    assert recorded_digest(text) == digest
    assert text.splitlines()[2] == f"# nublado-lock-input: sha256={digest}"
    assert recorded_digest("attrs==1\n") is None
    assert parse_requirements(text).hashed


def test_current_lock_is_what_the_step_installs(tmp_path: Path) -> None:
    plan = plan_of(payload(tmp_path, lock=made_lock()))
    files = files_of(plan)
    [(data, _)] = [v for k, v in files.items() if k.endswith("/requirements.txt")]
    assert data.decode() == made_lock()
    [step] = plan.steps
    assert step.vars["hashes"] == "hashes"


def test_missing_lock_says_to_run_lock(tmp_path: Path) -> None:
    assert problems(payload(tmp_path)) == [
        f"{tmp_path}/payload.yaml:3: install[0].pip.lock: 'requirements.lock' does "
        f"not exist yet; run `nublado-build lock {tmp_path}` and commit "
        "requirements.lock"]


def test_stale_lock_is_refused(tmp_path: Path) -> None:
    directory = payload(tmp_path, requirements="attrs\nrich\n", lock=made_lock())
    assert problems(directory) == [
        f"{tmp_path}/payload.yaml:3: install[0].pip.lock: 'requirements.lock' is "
        "stale: requirements.txt changed since it was made; run `nublado-build "
        f"lock {tmp_path}` and commit requirements.lock"]


def test_hand_written_lock_is_refused(tmp_path: Path) -> None:
    directory = payload(tmp_path, lock=COMPILED)
    [message] = problems(directory)
    assert "was not made by nublado-build lock (no input record)" in message


def test_lock_without_hashes_is_refused(tmp_path: Path) -> None:
    text = made_lock().replace(COMPILED.rstrip(), "attrs==26.1.0\nipykernel==7.1.0")
    [message] = problems(payload(tmp_path, lock=text))
    assert message.endswith("'requirements.lock' has no hashes; run `nublado-build "
                            f"lock {tmp_path}` and commit requirements.lock")


def test_lock_of_hashed_requirements_is_refused(tmp_path: Path) -> None:
    [message] = problems(payload(tmp_path, requirements=COMPILED, lock=made_lock()))
    assert message.endswith("install[0].pip.lock: 'requirements.txt' is "
                            "hash-locked already; install it as it is and drop lock")


def test_lock_loads_for_the_lock_command_even_when_stale(tmp_path: Path) -> None:
    directory = payload(tmp_path, requirements="attrs\nrich\n", lock=made_lock())
    assert load_payload(directory, locking=True).model.name == "locked"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nubladobuild", *args],
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nowhere"})


def test_check_names_a_missing_and_a_stale_lock(tmp_path: Path) -> None:
    run = _cli("lock", str(payload(tmp_path)), "--check")
    assert run.returncode == 1
    assert run.stderr == (f"nublado-build: {tmp_path}/requirements.lock: is missing. "
                          f"Run `nublado-build lock {tmp_path}` and commit the lock "
                          "files.\n")
    (tmp_path / "requirements.lock").write_text(made_lock("other\n"))
    run = _cli("lock", str(tmp_path), "--check")
    assert run.returncode == 1
    assert "was made from other requirements than requirements.txt" in run.stderr
    assert "Traceback" not in run.stderr


def test_check_of_a_current_lock_needs_no_engine(tmp_path: Path) -> None:
    run = _cli("lock", str(payload(tmp_path, lock=made_lock())), "--check", "--json")
    assert run.returncode == 0, run.stderr
    assert '"kind": "pip"' in run.stdout and '"packages": 2' in run.stdout
