"""Push destinations (``push --to``, ``build --push``) and ``build --test``'s gate.

The engine is replaced by a fake here; the real registry round trip is in
tests/integration/test_registry.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nubladobuild import push as push_module
from nubladobuild.cli import Output, _contract_gate
from nubladobuild.contract import runner
from nubladobuild.engine import ImageInfo, PushOutput
from nubladobuild.errors import InputError, PushFailed, TestFailed
from nubladobuild.push import Destination, check_destinations, push_image
from nubladobuild.secrets import mask_reference

REPO = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "a" * 64
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def cli(*args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nubladobuild", *args],
                          capture_output=True, text=True, cwd=REPO, check=False,
                          env={**os.environ, **(env or {})}, timeout=120)


# -- validation ---------------------------------------------------------------

def test_destinations_are_normalized_and_deduplicated() -> None:
    found = check_destinations(["localhost:5000/lsst/lab:w_2025_30",
                                "registry.example.org/x", "plain",
                                "registry.example.org/x:latest"], "--to")
    assert [d.reference for d in found] == ["localhost:5000/lsst/lab:w_2025_30",
                                            "registry.example.org/x:latest",
                                            "plain:latest"]
    assert [d.registry for d in found] == ["localhost:5000", "registry.example.org",
                                           "docker.io"]
    assert Destination("lsst/lab", "1").registry == "docker.io"


@pytest.mark.parametrize("reference, words", [
    ("", "cannot be empty"),
    ("Upper/Case:1", "not a valid image reference"),
    ("x:bad tag", "not a valid image reference"),
    ("x@" + DIGEST, "cannot carry a digest"),
    ("localhost:5000/x:1@" + DIGEST, "cannot carry a digest"),
    ("a" * 300, "longer than 255"),
])
def test_bad_destinations_are_input_errors(reference: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as info:
        check_destinations(["ok:1", reference], "--push")
    assert info.value.message.startswith("--push")
    assert info.value.exit_code == 2


@pytest.mark.parametrize("reference", [
    "user:s3cret@registry.example.org/x:1",
    "https://user:s3cret@registry.example.org/x",
    "s3cret@localhost:5000/x",
])
def test_credentials_in_destinations_are_masked(reference: str) -> None:
    with pytest.raises(InputError) as info:
        check_destinations([reference], "--to")
    assert "s3cret" not in info.value.message
    assert "***@" in info.value.message
    assert "docker login" in info.value.message


def test_mask_reference_keeps_digests_and_plain_names() -> None:
    assert mask_reference("x@" + DIGEST) == "x@" + DIGEST
    assert mask_reference("reg.example.org/x@" + DIGEST) == \
        "reg.example.org/x@" + DIGEST
    assert mask_reference("u:p@reg/x") == "***@reg/x"
    assert mask_reference("https://u:p@reg/x") == "https://***@reg/x"


def test_push_needs_a_destination() -> None:
    proc = cli("push", "x:1")
    assert proc.returncode == 2
    assert "--to" in proc.stderr and "Traceback" not in proc.stderr


def test_push_validates_before_touching_the_engine() -> None:
    # No engine answers: a bad destination is still exit 2, not 3.
    proc = cli("push", "x:1", "--to", "ok:1", "--to", "Bad:1", env=NO_ENGINE)
    assert proc.returncode == 2, proc.stderr
    assert "--to: 'Bad:1' is not a valid image reference" in proc.stderr
    proc = cli("push", "x:1", "--to", "ok:1", env=NO_ENGINE)
    assert proc.returncode == 3, proc.stderr


def test_build_push_validated_before_the_payload_is_read(tmp_path: Path) -> None:
    proc = cli("build", str(tmp_path / "no-such-payload"), "--push",
               "u:s3cret@reg.example.org/x:1", "--json", env=NO_ENGINE)
    assert proc.returncode == 2, proc.stderr
    document = json.loads(proc.stdout)
    assert document["error"].startswith("--push: ")
    assert "s3cret" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_push_destination_with_newline_is_refused() -> None:
    proc = cli("push", "x:1", "--to", "x:1\nrm", env=NO_ENGINE)
    assert proc.returncode == 2
    assert "control character" in proc.stderr or "single line" in proc.stderr


def test_build_options_are_listed() -> None:
    proc = cli("build", "--help")
    assert "--test" in proc.stdout and "--push REF" in proc.stdout


# -- push_image against a fake engine ----------------------------------------

class FakeEngine:
    """Images as a tag -> ID map; pushes answer from ``results``."""

    def __init__(self, tags: dict[str, str], results: dict[str, PushOutput]) -> None:
        self.tags = dict(tags)
        self.results = results
        self.pushed: list[str] = []

    def inspect(self, reference: str) -> ImageInfo | None:
        image_id = self.tags.get(reference, reference
                                 if reference in self.tags.values() else None)
        if image_id is None:
            return None
        names = tuple(t for t, i in self.tags.items() if i == image_id)
        return ImageInfo(id=image_id, user="", labels={}, tags=names)

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.tags[f"{repository}:{tag}"] = image_id

    def untag(self, reference: str) -> None:
        assert any(i == self.tags[reference] for t, i in self.tags.items()
                   if t != reference), "removing the last tag deletes the image"
        del self.tags[reference]

    def push(self, reference: str, timeout: float = 0) -> PushOutput:
        self.pushed.append(reference)
        outcome = self.results[reference]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    engine = FakeEngine({"lab:1": "sha256:new", "old:1": "sha256:old"}, {})
    monkeypatch.setattr(push_module, "inspect_image", engine.inspect)
    monkeypatch.setattr(push_module, "tag_image", engine.tag)
    monkeypatch.setattr(push_module, "untag_image", engine.untag)
    monkeypatch.setattr(push_module, "push_reference", engine.push)
    return engine


REFUSED = PushOutput(False, None, 'Get "http://localhost:1/v2/": dial tcp '
                     "127.0.0.1:1: connect: connection refused\n")


def test_push_to_several_destinations(fake: FakeEngine) -> None:
    fake.results = {"r.example.org/a:1": PushOutput(True, DIGEST, ""),
                    "localhost:5000/b:latest": PushOutput(True, DIGEST, "")}
    pushed = push_image("lab:1", check_destinations(
        ["r.example.org/a:1", "localhost:5000/b"], "--to"))
    assert [(p.reference, p.digest) for p in pushed] == [
        ("r.example.org/a:1", DIGEST), ("localhost:5000/b:latest", DIGEST)]
    # Like docker push: the destination tags stay after a successful push.
    assert fake.tags["r.example.org/a:1"] == fake.tags["localhost:5000/b:latest"] \
        == "sha256:new"


def test_failed_push_removes_a_new_destination_tag(fake: FakeEngine) -> None:
    fake.results = {"localhost:1/a:1": REFUSED}
    with pytest.raises(PushFailed) as info:
        push_image("lab:1", check_destinations(["localhost:1/a:1"], "--to"))
    message = info.value.message
    assert info.value.exit_code == 1
    assert "\n" not in message  # one paragraph
    assert message.startswith("push of lab:1 to localhost:1/a:1 failed; the engine "
                              "said: Get \"http://localhost:1/v2/\"")
    assert "connection refused. Check that the registry localhost:1" in message
    assert "was removed again" in message
    assert "localhost:1/a:1" not in fake.tags
    assert fake.tags == {"lab:1": "sha256:new", "old:1": "sha256:old"}


def test_failed_push_restores_a_tag_that_was_there(fake: FakeEngine) -> None:
    fake.tags["localhost:1/a:1"] = "sha256:old"
    fake.results = {"localhost:1/a:1": REFUSED}
    with pytest.raises(PushFailed, match="points at sha256:old again"):
        push_image("lab:1", [Destination("localhost:1/a", "1")])
    assert fake.tags["localhost:1/a:1"] == "sha256:old"


def test_failed_push_keeps_a_tag_already_on_the_image(fake: FakeEngine) -> None:
    fake.tags["localhost:1/a:1"] = "sha256:new"
    fake.results = {"localhost:1/a:1": REFUSED}
    with pytest.raises(PushFailed, match="was there before and stays"):
        push_image("lab:1", [Destination("localhost:1/a", "1")])
    assert fake.tags["localhost:1/a:1"] == "sha256:new"


def test_every_destination_is_tried_and_failures_reported(fake: FakeEngine) -> None:
    fake.results = {"localhost:1/a:1": REFUSED,
                    "localhost:5000/b:1": PushOutput(True, DIGEST, ""),
                    "reg.example.org/c:1": PushOutput(
                        False, None, "denied: requested access to the resource "
                        "is denied (https://u:s3cret@reg.example.org/auth)")}
    with pytest.raises(PushFailed) as info:
        push_image("lab:1", check_destinations(
            ["localhost:1/a:1", "localhost:5000/b:1", "reg.example.org/c:1"], "--to"))
    message = info.value.message
    paragraphs = message.split("\n\n")
    assert len(paragraphs) == 2
    assert "docker login reg.example.org" in paragraphs[1]
    assert "s3cret" not in message and "https://***@reg.example.org" in message
    assert message.endswith("\nPushed: localhost:5000/b:1.")
    assert fake.pushed == ["localhost:1/a:1", "localhost:5000/b:1",
                           "reg.example.org/c:1"]
    assert set(fake.tags) == {"lab:1", "old:1", "localhost:5000/b:1"}


def test_interrupted_push_undoes_the_tag(fake: FakeEngine) -> None:
    fake.results = {"localhost:1/a:1": KeyboardInterrupt()}  # type: ignore[dict-item]
    with pytest.raises(KeyboardInterrupt):
        push_image("lab:1", [Destination("localhost:1/a", "1")])
    assert "localhost:1/a:1" not in fake.tags


def test_missing_or_untagged_image_is_input_error(
        fake: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="no such image"):
        push_image("nope:1", [Destination("localhost:1/a", "1")])

    # Removing the destination tag of an image without a tag of its own
    # would delete it: refused before anything is tagged.
    def untagged(reference: str) -> ImageInfo | None:
        return ImageInfo(id="sha256:lonely", user="", labels={}, tags=())

    monkeypatch.setattr(push_module, "inspect_image", untagged)
    with pytest.raises(InputError, match="has no tag"):
        push_image("sha256:lonely", [Destination("localhost:1/a", "1")])
    assert fake.pushed == []
    assert "localhost:1/a:1" not in fake.tags


# -- build --test: the contract decides before any tag --------------------

def _summary(image: str, ok: bool) -> runner.Summary:
    summary = runner.Summary(image=image, image_kind="payload",
                             suites=["base", "payload", "payload-tests"],
                             passed=40, failed=0 if ok else 1)
    if not ok:
        summary.failures = ["payload-tests/test_x.py::test_fails"]
    return summary


def test_contract_gate_passes_and_records(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    calls: list[tuple[str, Path | None]] = []

    def fake_run(image: str, payload_dir: Path | None, **kwargs: object
                 ) -> runner.Summary:
        calls.append((image, payload_dir))
        return _summary(image, ok=True)

    monkeypatch.setattr(runner, "run_contract", fake_run)
    tested: list[dict[str, object]] = []
    _contract_gate(tmp_path, "demo", Output(True), tested)("sha256:" + "b" * 64)
    assert calls == [("sha256:" + "b" * 64, tmp_path)]
    assert tested[0]["contract_ok"] is True and tested[0]["passed"] == 40


def test_contract_gate_failure_is_test_failed(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(runner, "run_contract",
                        lambda image, payload_dir, **kw: _summary(image, ok=False))
    with pytest.raises(TestFailed) as info:
        _contract_gate(tmp_path, "demo", Output(True), [])("sha256:" + "c" * 64)
    message = info.value.message
    assert info.value.exit_code == 1
    assert "payload demo: the built image sha256:cccccccccccc fails the contract" \
        in message
    assert "payload-tests/test_x.py::test_fails" in message
    assert "No image was tagged and nothing was pushed" in message


def test_build_all_checks_push_prefixes_before_building(tmp_path: Path) -> None:
    """A bad --push prefix is exit 2 before the engine is asked anything."""
    payload = tmp_path / "p"
    payload.mkdir()
    (payload / "requirements.txt").write_text("")
    (payload / "payload.yaml").write_text(
        "name: p\ninstall:\n  - pip: {requirements: requirements.txt}\n"
        "kernel: {name: p, display_name: P}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "nubladobuild", "build-all", str(payload),
         "--push", "Bad Registry!/x"], capture_output=True, text=True,
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("nublado-build: --push: ")
    assert "Traceback" not in proc.stderr
