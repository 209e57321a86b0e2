"""Reliability with a real engine: bad input, secrets, failures, interrupts.

- bad payloads from tests/corpus build nothing (no image, no container);
- a CA bundle and index credentials never reach the image;
- a failing install and a SIGINT mid-build keep the previous tag and leave
  nothing behind;
- a broken ``pip install --user`` jupyter_server cannot break the lab, while
  the payload kernel still sees the user's packages;
- two builds at the same time both succeed;
- kernel names, display names, env values and setup lines stay literal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nubladobuild.contract.plugin import Container, run_kernel, wait_for_api
from tests.conftest import TEST_TAG
from tests.integration.conftest import REPO, CliResult, docker, run_cli
from tests.unit.test_corpus import CORPUS, expectation, generate

pytestmark = pytest.mark.integration

#: A sample of the corpus across kinds of mistakes (all of it runs in unit).
CORPUS_SAMPLE = [
    "yaml-syntax-unclosed", "yaml-alias-bomb", "name-command-substitution",
    "unknown-install-kind", "requirements-traversal", "requirements-huge",
    "prefix-jupyterlab-venv", "prefix-traversal-into-lab", "kernel-name-semicolon",
    "tags-bad-policy", "fragment-from", "fragment-copy-from",
]
NASTY_ENV = {
    "NB_QUOTES": "it's \"quoted\"",
    "NB_SUBST": "$(touch /tmp/PWNED-subst)",
    "NB_BACKTICK": "`touch /tmp/PWNED-backtick`",
    "NB_DOLLAR": "${HOME} $0 $$",
}
NASTY_DISPLAY = "Nasty \"$(touch /tmp/PWNED-display)\" `id` 'q'"
NASTY_DESCRIPTION = ("quotes ' \" dollar $(id) ${X} backtick `id` back\\slash"
                     "\nRUN touch /PWNED")


def snapshot() -> tuple[set[str], set[str]]:
    """Return every image ID and every container ID the engine has."""
    images = set(docker("images", "-qa", "--no-trunc").stdout.split())
    containers = set(docker("ps", "-aq", "--no-trunc").stdout.split())
    return images, containers


def leftovers(before: tuple[set[str], set[str]], names: set[str]) -> list[str]:
    """Return images and containers created since ``before`` by *our* builds.

    Other builds may share this engine, so a new image counts only when it is
    untagged (dangling), carries one of ``names`` as its payload label, or is
    tagged with one of them; a new container only when it runs such an image
    or one of those tags.
    """
    images, containers = snapshot()
    found: list[str] = []
    ours: set[str] = set()
    for image in images - before[0]:
        attrs = json.loads(docker("image", "inspect", image, check=False).stdout
                           or "[{}]")[0]
        tags = attrs.get("RepoTags") or []
        label = ((attrs.get("Config") or {}).get("Labels") or {}).get(
            "io.nublado.payload.name")
        if not tags or label in names or any(t.split(":")[0] in names for t in tags):
            ours.add(image)
            found.append(f"image {image} {tags} {label}")
    for container in containers - before[1]:
        attrs = json.loads(docker("container", "inspect", container,
                                  check=False).stdout or "[{}]")[0]
        if attrs.get("Image") in ours or (attrs.get("Config") or {}).get(
                "Image", "").split(":")[0] in names:
            found.append(f"container {container}")
    return found


def image_layers(image: str) -> list[str]:
    layers: list[str] = json.loads(docker("image", "inspect", image).stdout)[0][
        "RootFS"]["Layers"]
    return layers


def write_payload(path: Path, name: str, requirements: str,
                  kernel: dict[str, object] | None = None,
                  description: str = "") -> Path:
    path.mkdir(parents=True)
    (path / "requirements.txt").write_text(requirements)
    data = {"name": name, "description": description,
            "install": [{"pip": {"requirements": "requirements.txt"}}],
            "kernel": kernel or {"name": name, "display_name": name}}
    (path / "payload.yaml").write_text(json.dumps(data, indent=1))  # JSON is YAML
    return path


@pytest.mark.parametrize("name", CORPUS_SAMPLE)
def test_bad_payload_builds_nothing(name: str, base_image: str,
                                    tmp_path: Path) -> None:
    directory = tmp_path / name
    shutil.copytree(CORPUS / name, directory, symlinks=True)
    expect = expectation(name)
    generate(directory, expect.get("generate") or [])
    before = snapshot()
    tag = f"nb-corpus-{uuid.uuid4().hex[:8]}"
    result = run_cli("build", str(directory), "--base", base_image, "--tag",
                     f"{tag}:{TEST_TAG}", check=False, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert str(directory / expect["file"]) in result.stderr
    if expect.get("field"):
        assert expect["field"] in result.stderr
    assert snapshot() == before or not leftovers(before, {"corpus", tag}), \
        "a refused payload created an image or a container"


# --- one payload with secrets and nasty values, built once ---------------------

@dataclass(frozen=True)
class NastyBuild:
    """The image built with a marked CA bundle and index credentials."""

    tag: str
    ca_marker: str
    token: str
    result: CliResult
    python_version: str


def credentialed_index_url(token: str) -> str:
    """Return pip's default index URL with ``user:token@`` credentials."""
    from pip._internal.models.index import PyPI

    parts = urllib.parse.urlsplit(PyPI.simple_url)
    netloc = f"nbuser:{token}@{parts.hostname}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(scope="module")
def nasty(base_image: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[NastyBuild]:
    tmp = tmp_path_factory.mktemp("nasty")
    marker = f"nublado-ca-marker-{uuid.uuid4().hex}"
    token = f"nbtok{uuid.uuid4().hex}"
    bundle = tmp / "ca.pem"
    bundle.write_text(f"# {marker}\n"
                      + Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    payload = write_payload(
        tmp / "nasty", "nasty", "six\n", description=NASTY_DESCRIPTION,
        kernel={"name": "nasty", "display_name": NASTY_DISPLAY, "env": NASTY_ENV,
                "setup": ["export NB_SETUP='$(touch /tmp/PWNED-setup)'",
                          'export NB_SETUP_EXPANDED="ran-$((6 * 7))"']})
    tag = f"nb-nasty:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     "--json", "--no-cache", "--ca-bundle", str(bundle),
                     "--index-url", credentialed_index_url(token))
    version = docker("run", "--rm", tag, "/opt/payload/venv/bin/python", "-c",
                     "import sys; print('%d.%d' % sys.version_info[:2])"
                     ).stdout.strip()
    yield NastyBuild(tag, marker, token, result, version)
    docker("rmi", tag, check=False)


def test_ca_and_index_credentials_never_in_image(nasty: NastyBuild,
                                                 tmp_path: Path) -> None:
    """pip used both secrets (the build needs them) and no layer kept them."""
    saved = tmp_path / "image.tar"
    docker("save", "-o", str(saved), nasty.tag)
    data = saved.read_bytes()
    assert len(data) > 10_000_000
    history = docker("history", "--no-trunc", nasty.tag).stdout
    attrs = docker("image", "inspect", nasty.tag).stdout
    for secret in (nasty.ca_marker, nasty.token):
        assert secret.encode() not in data
        assert secret not in history
        assert secret not in attrs
        assert secret not in nasty.result.stdout + nasty.result.stderr


def test_kernel_sees_nasty_values_literally(nasty: NastyBuild) -> None:
    box = Container(nasty.tag)
    try:
        code = ("import json, os; print(json.dumps({k: v for k, v in "
                "os.environ.items() if k.startswith('NB_')}))")
        result = run_kernel(box, "nasty", code)
        assert result["status"] == "ok", result
        env = json.loads(result["stdout"])
        for name, value in NASTY_ENV.items():
            assert env[name] == value, name
        assert env["NB_SETUP"] == "$(touch /tmp/PWNED-setup)"
        assert env["NB_SETUP_EXPANDED"] == "ran-42"  # setup lines are shell code
        pwned = box.exec("sh", "-c", "ls / /tmp | grep PWNED || true").stdout
        assert pwned.strip() == ""
        spec = json.loads(box.exec("cat", "/usr/local/share/jupyter/kernels/nasty/"
                                   "kernel.json", check=True).stdout)
        assert spec["display_name"] == NASTY_DISPLAY
    finally:
        box.close()
    labels = json.loads(docker("image", "inspect", nasty.tag).stdout)[0][
        "Config"]["Labels"]
    # Multi-line description text folds to one line (never a new
    # instruction); quotes, "$" and backticks are literal.
    assert labels["org.opencontainers.image.description"] == \
        " ".join(NASTY_DESCRIPTION.split())


def test_broken_user_jupyter_server_cannot_break_the_lab(nasty: NastyBuild) -> None:
    """runlab runs the server with -I; the payload kernel sees user packages."""
    site = f"/home/user/.local/lib/python{nasty.python_version}/site-packages"
    token = uuid.uuid4().hex
    box = Container(nasty.tag, user="4242:4242", read_only=True, publish=True,
                    env={"JUPYTER_TOKEN": token},
                    command=["sh", "-c", f"mkdir -p {site}/jupyter_server && "
                             f"echo 'raise ImportError(\"broken by the user\")' > "
                             f"{site}/jupyter_server/__init__.py && "
                             f"echo 'VALUE = 42' > {site}/nb_user_pkg.py && "
                             "exec /usr/local/share/jupyterlab/runlab"])
    try:
        _, body = wait_for_api(box, timeout=120)
        assert "version" in body
        result = run_kernel(box, "nasty", "import nb_user_pkg, sys; "
                            "print(nb_user_pkg.VALUE, nb_user_pkg.__file__)")
        assert result["status"] == "ok", result
        assert result["stdout"].split()[0] == "42"
        assert result["stdout"].split()[1].startswith("/home/user/.local/")
    finally:
        box.close()


# --- failures ------------------------------------------------------------------

def test_failed_install_leaves_nothing_behind(base_image: str, tmp_path: Path
                                              ) -> None:
    payload = write_payload(tmp_path / "broken", "broken",
                            "nublado-build-no-such-package-ever==0.0.1\n")
    tag = f"nb-broken-install:{TEST_TAG}"
    docker("tag", base_image, tag)
    previous = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    before = snapshot()
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     check=False)
    try:
        assert result.returncode == 1
        assert "failed at step" in result.stderr
        assert "No image was tagged" in result.stderr
        assert "Traceback" not in result.stderr
        assert docker("image", "inspect", "--format", "{{.Id}}",
                      tag).stdout.strip() == previous
        assert not leftovers(before, {"broken", "nb-broken-install"})
    finally:
        docker("rmi", tag, check=False)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_mid_build_keeps_previous_tag(base_image: str, tmp_path: Path,
                                             signum: int) -> None:
    """SIGINT and SIGTERM stop the build: tags kept, secret files gone."""
    payload = write_payload(tmp_path / "slow", "slow", "numpy\npandas\n")
    secret_dirs = set(Path(tempfile.gettempdir()).glob("nublado-secrets-*"))
    tag = f"nb-interrupted:{TEST_TAG}"
    docker("tag", base_image, tag)
    previous = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    before = snapshot()
    proc = subprocess.Popen([sys.executable, "-m", "nubladobuild", "build",
                             str(payload), "--base", base_image, "--tag", tag,
                             "--no-cache"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        seen.append(line)
        # The progress line that says the pip step runs (its first output).
        if "install[0].pip  running" in line or time.monotonic() > deadline:
            break
    assert "install[0].pip  running" in seen[-1], "".join(seen)[-3000:]
    time.sleep(3)  # well inside the pip step (numpy and pandas)
    proc.send_signal(signum)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    try:
        assert proc.returncode not in (0, None), output[-3000:]
        assert "interrupted" in output
        assert "Traceback" not in output
        assert docker("image", "inspect", "--format", "{{.Id}}",
                      tag).stdout.strip() == previous
        time.sleep(2)
        assert not leftovers(before, {"slow", "nb-interrupted"})
        assert set(Path(tempfile.gettempdir()).glob("nublado-secrets-*")) \
            == secret_dirs
        builds = subprocess.run(["pgrep", "-f", "nublado-context-[^ ]*/slow"],
                                capture_output=True, text=True,
                                check=False).stdout.split()
        assert builds == [], "a docker build of the payload still runs"
    finally:
        docker("rmi", tag, check=False)


def test_two_builds_at_once_both_succeed(base_image: str, tmp_path: Path) -> None:
    procs = {}
    for name, reqs in (("nb-concurrent-a", "toolz\n"), ("nb-concurrent-b", "attrs\n")):
        payload = write_payload(tmp_path / name, name, reqs)
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "nubladobuild", "build", str(payload), "--base",
             base_image, "--tag", f"{name}:{TEST_TAG}", "--json", "--no-cache"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ})
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=900)
            assert proc.returncode == 0, f"{name}: {err[-3000:]}"
            assert json.loads(out)["ok"]
        base = image_layers(base_image)
        for name in procs:
            assert image_layers(f"{name}:{TEST_TAG}")[: len(base)] == base
    finally:
        for name in procs:
            docker("rmi", f"{name}:{TEST_TAG}", check=False)
