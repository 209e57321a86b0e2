"""Pushing to a real registry, and testing an image before it is tagged.

A Docker registry (Debian's ``docker-registry``, distribution 2.x) runs on
``127.0.0.1`` at a free port for this module, with its storage in a
temporary directory; the engine reaches it as ``localhost:PORT``, an
insecure registry by default (dockerd allows plain HTTP to 127.0.0.0/8).
Under CI=true a missing ``docker-registry`` fails the tests.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_TAG, require
from tests.integration.conftest import (
    NO_WIDGETS,
    NO_WRAPPER,
    PAYLOADS,
    CliResult,
    assert_contract,
    docker,
    image_id,
    run_cli,
)

pytestmark = pytest.mark.integration

SOURCE_TAG = f"nublado-regtest-src:{TEST_TAG}"
FAIL_TAG = f"nublado-regtest-fail:{TEST_TAG}"
#: What script-demo's contract run skips (no wrapper, no widgets).
SCRIPT_DEMO_SKIPS = (NO_WRAPPER, *NO_WIDGETS)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


class Registry:
    """A running registry: its name for the engine and its HTTP API."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"localhost:{port}"

    def tags(self, name: str) -> list[str]:
        """Return the tags of repository ``name`` ([] when it does not exist)."""
        status, data = _get_json(f"http://127.0.0.1:{self.port}/v2/{name}/tags/list")
        if status == 404:
            return []
        assert status == 200, (status, data)
        return sorted(data.get("tags") or [])


@pytest.fixture(scope="module")
def registry(engine: None, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Registry]:
    """Run docker-registry on 127.0.0.1:<free port> for this module."""
    binary = shutil.which("docker-registry")
    require(binary is not None, "docker-registry is missing (apt-get install "
            "docker-registry, or bash scripts/setup-docker)")
    assert binary is not None
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'storage'}}}, "
        "delete: {enabled: true}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n", encoding="utf-8")
    log_path = root / "registry.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, \
                f"docker-registry exited {proc.returncode}: {log_path.read_text()}"
            try:
                if _get_json(f"http://127.0.0.1:{port}/v2/")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, \
                f"docker-registry did not answer /v2/: {log_path.read_text()}"
            time.sleep(0.2)
        yield Registry(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root / "storage", ignore_errors=True)


@pytest.fixture(scope="module")
def source_image(build_payload: Callable[..., CliResult]) -> str:
    """script-demo under a tag of this module's own; return the tag."""
    build_payload(PAYLOADS / "script-demo", SOURCE_TAG)
    return SOURCE_TAG



def _one_paragraph(stderr: str) -> str:
    """Return the error: one line (a paragraph) after the progress lines."""
    lines = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith("pushing ")]
    assert len(lines) == 1 and lines[0].startswith("nublado-build: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_push_to_nothing_listening_exits_1_and_leaves_no_tag(
        base_image: str, source_image: str) -> None:
    port = _free_port()  # nothing listens there
    fresh = f"localhost:{port}/regtest/unreachable:one"
    before = f"localhost:{port}/regtest/unreachable:had"
    # A destination tag that existed before the push stays where it was.
    docker("tag", source_image, before)
    try:
        result = run_cli("push", base_image, "--to", fresh, check=False)
        assert result.returncode == 1, result.stderr
        line = _one_paragraph(result.stderr)
        assert f"push of {base_image} to {fresh} failed" in line
        assert "connection refused" in line
        assert f"Check that the registry localhost:{port} is running" in line
        assert image_id(fresh) is None
        assert result.stdout == ""

        had = image_id(before)
        result = run_cli("push", base_image, "--to", before, "--json", check=False)
        assert result.returncode == 1, result.stderr
        document = json.loads(result.stdout)
        assert document["ok"] is False and document["exit_code"] == 1
        assert f"to {before} failed" in document["error"]
        assert "points at" in document["error"]
        assert image_id(before) == had == image_id(source_image)
    finally:
        docker("rmi", before, check=False)


def test_push_two_destinations_pull_back_and_test(
        registry: Registry, source_image: str, tmp_path: Path,
        contract: Callable[..., dict[str, Any]]) -> None:
    pushed_id = image_id(source_image)
    first = f"{registry.host}/regtest/script-demo:one"
    second = f"{registry.host}/other/script-demo"  # no tag: latest
    result = run_cli("push", source_image, "--to", first, "--to", second, "--json")
    document = result.json
    assert [p["ref"] for p in document["pushed"]] == [first, f"{second}:latest"]
    digests = {p["digest"] for p in document["pushed"]}
    assert len(digests) == 1 and next(iter(digests)).startswith("sha256:")
    assert registry.tags("regtest/script-demo") == ["one"]
    assert registry.tags("other/script-demo") == ["latest"]

    # Nothing of it left locally (untagged only if another tag shares the ID).
    for tag in (first, f"{second}:latest", source_image):
        docker("rmi", tag)
        assert image_id(tag) is None
    try:
        docker("pull", first)
        assert image_id(first) == pushed_id
        summary = contract(first, PAYLOADS / "script-demo", tmp_path)
        assert_contract(summary, kernel="script-demo", payload_tests=3,
                        skipped=SCRIPT_DEMO_SKIPS)
    finally:
        # The module's source tag again, for tests that run after this one.
        docker("tag", first, source_image, check=False)
        docker("rmi", first, check=False)


def test_build_test_gates_tags_and_push(
        registry: Registry, build_payload: Callable[..., CliResult],
        tmp_path: Path) -> None:
    payload = tmp_path / "fail-demo"
    shutil.copytree(PAYLOADS / "script-demo", payload)
    good = f"{registry.host}/regtest/fail-demo:good"
    bad = f"{registry.host}/regtest/fail-demo:bad"
    try:
        # Built, tagged and pushed (the passing --test path costs one more
        # contract run, ~90 s: tests/unit/test_push.py checks the gate).
        built = build_payload(payload, FAIL_TAG, "--push", good).json
        previous = built["image_id"]
        assert built["test"] is None
        assert image_id(FAIL_TAG) == previous
        assert [p["ref"] for p in built["pushed"]] == [good]
        assert registry.tags("regtest/fail-demo") == ["good"]

        # Another image (a new description label), whose own tests fail.
        yaml_path = payload / "payload.yaml"
        yaml_path.write_text(yaml_path.read_text().replace(
            "description: A venv", "description: A failing venv"))
        (payload / "tests" / "test_deliberately_fails.py").write_text(
            "def test_deliberately_fails():\n"
            "    assert False, 'this payload test fails on purpose'\n")
        result = build_payload(payload, FAIL_TAG, "--test", "--push", bad,
                               check=False)
        assert result.returncode == 1, result.stderr[-3000:]
        document = json.loads(result.stdout)
        assert document["ok"] is False and document["exit_code"] == 1
        error = document["error"]
        assert "fails the contract" in error
        assert "payload-tests/test_deliberately_fails.py::test_deliberately_fails" \
            in error
        assert "No image was tagged and nothing was pushed" in error
        assert "Traceback" not in result.stderr
        assert image_id(FAIL_TAG) == previous
        assert image_id(bad) is None
        assert registry.tags("regtest/fail-demo") == ["good"]
    finally:
        docker("rmi", good, check=False)
        docker("rmi", FAIL_TAG, check=False)


def _tiny_payload(directory: Path, name: str, requirements: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "requirements.txt").write_text(requirements)
    (directory / "payload.yaml").write_text(
        f"name: {name}\ninstall:\n  - pip: {{requirements: requirements.txt}}\n"
        f"kernel: {{name: {name}, display_name: {name}}}\n")
    return directory


def _statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {row["payload"]: row["status"] for row in doc["payloads"]}


def test_build_all_skips_what_is_up_to_date_and_pushes_what_it_built(
        tmp_path: Path, registry: Registry, base_image: str,
        minimal_base_image: str) -> None:
    names = ("nbtest-all-one", "nbtest-all-two", "nbtest-all-three")
    one = _tiny_payload(tmp_path / "one", names[0], "")
    two = _tiny_payload(tmp_path / "two", names[1], "iniconfig==2.0.0\n")
    three = _tiny_payload(tmp_path / "three", names[2], "")
    every = [str(one), str(two), str(three)]
    pushed = [f"{registry.host}/ci/{n}:latest" for n in names]
    try:
        first = run_cli("build-all", *every, "--base-tag", base_image, "--json",
                        "--push", f"{registry.host}/ci").json
        assert _statuses(first) == dict.fromkeys(names, "built")
        assert first["counts"] == {"built": 3, "up to date": 0, "failed": 0}
        assert [registry.tags(f"ci/{n}") for n in names] == [["latest"]] * 3
        assert [row["pushed"][0]["ref"] for row in first["payloads"]] == pushed

        started = time.monotonic()
        second = run_cli("build-all", *every, "--base-tag", base_image, "--json").json
        second_seconds = time.monotonic() - started
        assert _statuses(second) == dict.fromkeys(names, "up to date")
        assert all(row["seconds"] < 5 for row in second["payloads"]), second
        assert second_seconds < 60, second_seconds

        # One input changes: only that payload is rebuilt. Another breaks:
        # it fails, and its tag stays on the image it had.
        (two / "requirements.txt").write_text("iniconfig==2.1.0\n")
        (three / "requirements.txt").write_text("nublado-no-such-package-x1\n")
        before = image_id(f"{names[2]}:latest")
        old_two = image_id(f"{names[1]}:latest")
        assert old_two is not None
        third = run_cli("build-all", *every, "--base-tag", base_image, "--json",
                        "--keep-going", check=False)
        assert third.returncode == 1, third.stderr
        assert _statuses(third.json) == {names[0]: "up to date", names[1]: "built",
                                         names[2]: "failed"}
        assert image_id(f"{names[2]}:latest") == before
        # The rebuild's change, as a release engineer reviews it.
        diff = run_cli("diff", old_two, f"{names[1]}:latest", "--json").json
        changes = {env: {k: v for k, v in change.items() if v}
                   for env, change in diff["environments"].items()
                   if any(change.values())}
        assert changes == {f"payload:{names[1]}": {"upgraded": [
            {"name": "iniconfig", "from": "2.0.0", "to": "2.1.0"}]}}, changes

        # Another base: every payload is rebuilt on it.
        fourth = run_cli("build-all", str(one), str(two), "--base-tag",
                         minimal_base_image, "--profile", "minimal", "--json").json
        assert _statuses(fourth) == {names[0]: "built", names[1]: "built"}
        labels = json.loads(docker("image", "inspect", f"{names[0]}:latest").stdout
                            )[0]["Config"]["Labels"]
        assert labels["io.nublado.base.digest"] == image_id(minimal_base_image)
    finally:
        docker("image", "rm", "-f", *(f"{n}:latest" for n in names), *pushed,
               check=False)


#: Every example payload, in the order build-all takes them (sorted).
EXAMPLES = ("conda-demo", "fragment-demo", "r-lab", "sciplat-lab", "scipy-lab",
            "script-demo", "spherex-lab", "transplant-demo")


def test_build_all_tests_tags_and_pushes_every_example(
        registry: Registry, base_image: str, conda_channel: str) -> None:
    """The release job: every example built, tested, tagged, pushed; then a no-op."""
    from tests.integration.test_kinds import TRANSPLANT_SOURCE, build_source_image

    assert sorted(p.parent.name for p in PAYLOADS.glob("*/payload.yaml")) == \
        list(EXAMPLES)
    build_source_image(PAYLOADS / "transplant-demo" / "source", TRANSPLANT_SOURCE)
    common = ("--payloads", str(PAYLOADS), "--base-tag", base_image,
              "--conda-channel", conda_channel, "--allow-secret", "ca",
              "--allow-secret", "index", "--json")
    latest = [f"{name}:latest" for name in EXAMPLES]
    pushed = [f"{registry.host}/examples/{name}:latest" for name in EXAMPLES]
    try:
        # --force: a machine may hold up-to-date :latest images already.
        first = run_cli("build-all", *common, "--force", "--test", "--push",
                        f"{registry.host}/examples").json
        assert first["counts"] == {"built": 8, "up to date": 0, "failed": 0}
        rows = {row["payload"]: row for row in first["payloads"]}
        assert list(rows) == list(EXAMPLES)
        assert all(row["tested"] for row in rows.values())
        assert [rows[n]["pushed"][0]["ref"] for n in EXAMPLES] == pushed
        assert [registry.tags(f"examples/{n}") for n in EXAMPLES] == [["latest"]] * 8
        ids = [image_id(ref) for ref in latest]
        assert ids == [image_id(ref) for ref in pushed]

        started = time.monotonic()
        second = run_cli("build-all", *common).json
        assert second["counts"] == {"built": 0, "up to date": 8, "failed": 0}
        assert time.monotonic() - started < 90
        assert [image_id(ref) for ref in latest] == ids
    finally:
        docker("image", "rm", "-f", *latest, *pushed, check=False)
