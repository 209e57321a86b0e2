"""The guarded lab section in real builds and locks.

A payload's ``lab.extensions`` go into the lab venv in the ``nublado-lab``
stage, exactly as locked; the guard allows exactly what that stage added;
a payload step still cannot change the lab venv; an extension that would
change a package of the base's lab venv fails, at lock time and at build
time, naming the package and both versions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nubladobuild.lab import LOCK_FILE
from tests.conftest import TEST_TAG
from tests.integration.conftest import PAYLOADS, docker, image_id, run_cli

pytestmark = pytest.mark.integration
LAB = "/usr/local/share/jupyterlab"
VENV = f"{LAB}/venv"
SITE = "$(/usr/local/share/jupyterlab/venv/bin/python3 -I -c " \
    "'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
#: The committed lock of payloads/sciplat-lab (made on the default base).
SCIPLAT_LOCK = PAYLOADS / "sciplat-lab" / LOCK_FILE
SPELLCHECKER = "jupyterlab-spellchecker>=0.8,<1"


def lab_payload(root: Path, name: str, run: str = "true",
                extensions: tuple[str, ...] = (SPELLCHECKER,),
                lock: str | None = None) -> Path:
    """A payload with a lab section and one fragment RUN line (no network)."""
    root.mkdir(parents=True)
    (root / "Dockerfile.fragment").write_text(f"RUN {run}\n")
    lab = "lab:\n  extensions:\n" + "".join(f"    - {json.dumps(e)}\n"
                                            for e in extensions)
    lab += ('  settings:\n    overrides:\n      "@jupyterlab-contrib/spellchecker:'
            'plugin": {checkComments: false}\n    disabled_extensions: '
            '["@jupyterlab/extensionmanager-extension:plugin"]\n')
    (root / "payload.yaml").write_text(
        f"name: {name}\ninstall:\n  - dockerfile: {{path: Dockerfile.fragment}}\n"
        f"kernel: {{name: k, display_name: K, python: /usr/local/bin/python3}}\n"
        + lab)
    if lock is not None:
        (root / LOCK_FILE).write_text(lock)
    return root



def in_image(tag: str, script: str) -> str:
    return docker("run", "--rm", "--entrypoint", "bash", tag, "-c", script).stdout


def base_lab(base_image: str) -> tuple[int, list[str]]:
    """Return the base's lab venv: its package count and lab extension dirs.

    The test base's profile decides both (``standard`` by default); the
    lab stage must leave every one of them as it was.
    """
    out = in_image(base_image, f"grep -c '==' {LAB}/versions-installed/jupyterlab.txt"
                   f" && ls {VENV}/share/jupyter/labextensions")
    count, *extensions = out.split()
    return int(count), extensions


def test_lab_extensions_build_and_the_guard_allows_exactly_them(
        base_image: str, tmp_path: Path) -> None:
    payload = lab_payload(tmp_path / "lab-ok", "lab-ok",
                          lock=SCIPLAT_LOCK.read_text())
    # The committed lock is current for this base (same lab venv).
    check = run_cli("lock", str(payload), "--check", "--base", base_image, "--json")
    assert check.json["lab"] == {"lock": str(payload / LOCK_FILE), "written": False,
                                 "added": ["jupyterlab-spellchecker==0.9.0"]}
    tag = f"lab-ok:{TEST_TAG}"
    # --no-cache: the lab stage must run, and say what it did.
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     "--no-cache")
    packages, _ = base_lab(base_image)
    assert "lab extensions: added 1 packages to the lab venv " \
        f"(jupyterlab-spellchecker==0.9.0); {packages} packages of the base " \
        "unchanged" in result.stderr, result.stderr[-3000:]
    assert "isolation guard: JupyterLab environment unchanged" in result.stderr
    labels = json.loads(docker("inspect", "--format", "{{json .Config.Labels}}",
                               tag).stdout)
    assert labels["io.nublado.lab.extensions"] == "jupyterlab-spellchecker==0.9.0"
    overrides = f"{VENV}/share/jupyter/lab/settings/overrides.d/nublado-lab-ok.json"
    page_config = f"{VENV}/etc/jupyter/labconfig/page_config.json"
    version = "import importlib.metadata as m; " \
        "print(m.version('jupyterlab-spellchecker'))"
    out = in_image(tag, f"""
cd {LAB}/versions-installed
cat lab-extensions-lab-ok.txt guard-lab-ok.txt
{VENV}/bin/python -I -c "{version}"
cat {overrides} {page_config}
""")
    lines = out.splitlines()
    assert lines[:4] == [
        "# Added to the lab venv by payload lab-ok's lab section (nublado-build)",
        "jupyterlab-spellchecker==0.9.0", f"# settings: {overrides}",
        f"# settings: {page_config}"]
    report = re.fullmatch(
        r"isolation guard: (\d+) protected entries under 13 trees unchanged; 3 "
        r"generated paths allowed; the lab stage only added below (.*) \((\d+) "
        r"base entries compared\)", lines[4])
    assert report is not None, lines[4]
    assert report.group(2) == (f"{VENV}/, {LAB}/lab-checksums.txt, "
                               f"{LAB}/versions-installed/lab-extensions-lab-ok.txt")
    # What the lab stage added, whatever the base: the spellchecker's files
    # and directories (wheel contents, dist-info, byte code), the settings,
    # lab-checksums.txt; the payload compares against all of it.
    assert int(report.group(1)) - int(report.group(3)) == 78
    assert lines[5] == "0.9.0"
    settings = json.loads("\n".join(lines[6:11]))
    assert settings == {"@jupyterlab-contrib/spellchecker:plugin":
                        {"checkComments": False}}
    assert json.loads("\n".join(lines[11:])) == {"disabledExtensions": {
        "@jupyterlab/extensionmanager-extension:plugin": True}}
    docker("rmi", tag, check=False)


@pytest.mark.parametrize(("name", "run"), [
    ("lab-sitecustomize", f'echo "import os" > "{SITE}/sitecustomize.py"'),
    ("lab-labext", f"mkdir -p {VENV}/share/jupyter/labextensions/evil && "
     f"echo '{{}}' > {VENV}/share/jupyter/labextensions/evil/package.json"),
])
def test_payload_step_still_cannot_write_the_lab_venv(
        base_image: str, tmp_path: Path, name: str, run: str) -> None:
    """Outside ``lab``, a write into the lab venv fails (EROFS) or goes to a
    scratch layer (Debian's BuildKit): the image's lab venv is the lab
    stage's, with the extension and without the write."""
    payload = lab_payload(tmp_path / name, name, run, lock=SCIPLAT_LOCK.read_text())
    tag = f"{name}:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     "--no-cache", check=False)
    if result.returncode != 0:
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Read-only file system" in result.stderr, result.stderr[-3000:]
        assert image_id(tag) is None
        return
    assert "isolation guard: JupyterLab environment unchanged" in result.stderr
    out = in_image(tag, f"ls {SITE}/sitecustomize.py "
                   f"{VENV}/share/jupyter/labextensions 2>&1; true")
    assert "sitecustomize.py': No such file" in out, out
    _, extensions = base_lab(base_image)
    assert out.split("\n", 1)[1].split() == [
        f"{VENV}/share/jupyter/labextensions:",
        *sorted([*extensions, "@jupyterlab-contrib"])]
    docker("rmi", tag, check=False)


def test_guard_refuses_a_change_to_what_the_lab_stage_wrote(
        base_image: str, tmp_path: Path) -> None:
    record = f"{LAB}/versions-installed/lab-extensions-lab-record.txt"
    payload = lab_payload(tmp_path / "lab-record", "lab-record",
                          f"echo extra==1.0 >> {record}",
                          lock=SCIPLAT_LOCK.read_text())
    tag = f"lab-record:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"{record}: content changed" in result.stderr, result.stderr[-3000:]
    assert "isolation guard: a payload step changed" in result.stderr
    assert image_id(tag) is None


def test_conflicting_extension_fails_at_lock_naming_both_versions(
        base_image: str, tmp_path: Path) -> None:
    payload = lab_payload(tmp_path / "lab-conflict", "lab-conflict",
                          extensions=("tornado==6.4.2",))
    result = run_cli("lock", str(payload), "--base", base_image, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.startswith(
        f"nublado-build: {payload}/payload.yaml:6: lab.extensions: these "
        "extensions need versions of packages the base's lab venv already has: "
        "tornado 6.6.1 (in the base's lab venv) -> 6.4.2. "), result.stderr
    assert "Traceback" not in result.stderr
    assert not (payload / LOCK_FILE).exists()


def test_build_rechecks_the_lock_against_the_base(base_image: str,
                                                  tmp_path: Path) -> None:
    """A lock made on another base (jupyterlab pinned differently) stops the
    lab stage before anything is installed, naming both versions."""
    text = SCIPLAT_LOCK.read_text()
    assert "# nublado-lab-in-base: jupyterlab==4.6.6\n" in text
    payload = lab_payload(tmp_path / "lab-old-lock", "lab-old-lock", lock=text.replace(
        "# nublado-lab-in-base: jupyterlab==4.6.6\n",
        "# nublado-lab-in-base: jupyterlab==4.5.0\n"))
    tag = f"lab-old-lock:{TEST_TAG}"
    result = run_cli("build", str(payload), "--base", base_image, "--tag", tag,
                     check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "nublado-build: lab extensions: lab-requirements.txt was resolved " \
        "against jupyterlab 4.5.0, but the base's lab venv has jupyterlab " \
        "4.6.6" in result.stderr, result.stderr[-3000:]
    assert image_id(tag) is None
    # lock --check says the same: stale for this base (exit 1).
    check = run_cli("lock", str(payload), "--check", "--base", base_image,
                    check=False)
    assert check.returncode == 1, check.stderr
    assert check.stderr == (
        f"nublado-build: {payload}/{LOCK_FILE}: stale: it pins jupyterlab 4.5.0, "
        "the base's lab venv has jupyterlab 4.6.6; run `nublado-build lock "
        f"{payload}` and commit the file\n")
