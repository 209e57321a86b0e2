"""Compat profiles: the shipped data, resolution per payload, validation, the
links file and the build step; apply-compat itself on a scratch tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nubladobuild.compat import (
    LABEL,
    available_profiles,
    links_file,
    load_profile,
)
from nubladobuild.errors import PayloadInvalid
from nubladobuild.loader import load_payload
from nubladobuild.resources import data_root
from tests.unit.helpers import dockerfile_of, files_of, plan_of

REPO = Path(__file__).resolve().parents[2]
APPLY = data_root() / "base" / "build" / "apply-compat"
LEGACY = "/opt/lsst/software/jupyterlab"


def _payload(tmp_path: Path, compat: str, kernel_extra: str = "  setup: ['true']\n"
             ) -> Path:
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "payload.yaml").write_text(
        "name: compat-test\ninstall:\n  - pip: {requirements: requirements.txt}\n"
        f"kernel:\n  name: ck\n  display_name: CK\n{kernel_extra}compat:\n{compat}")
    return tmp_path


def _problems(tmp_path: Path, compat: str, kernel_extra: str = "  setup: ['true']\n"
              ) -> list[str]:
    with pytest.raises(PayloadInvalid) as info:
        # Profile names are checked at load; links against the plan's files.
        plan_of(_payload(tmp_path, compat, kernel_extra))
    return [p.render() for p in info.value.problems]


def test_shipped_profiles_are_valid() -> None:
    assert {"nublado-legacy", "nublado-new-from-legacy"} <= set(available_profiles())
    for name in available_profiles():
        assert load_profile(name).name == name


def test_legacy_profile_matches_the_real_images(tmp_path: Path) -> None:
    loaded = load_payload(_payload(tmp_path, "  - nublado-legacy\n"))
    links = {link.path: link.target for link in plan_of(loaded.directory).compat.links}
    assert links == {
        f"{LEGACY}/runlab.sh": "/usr/local/share/jupyterlab/runlab",
        f"{LEGACY}/runlab": "/usr/local/share/jupyterlab/runlab",
        f"{LEGACY}/lsst_kernel.json": "/usr/local/share/jupyter/kernels/ck/kernel.json",
        f"{LEGACY}/lsstlaunch.bash": "/usr/local/share/jupyterlab/kernels/ck/launch",
        f"{LEGACY}/versions-installed":
            "/usr/local/share/jupyterlab/versions-installed",
    }


def test_explicit_entries_and_placeholders(tmp_path: Path) -> None:
    compat = ("  - {path: /opt/old/kernel, target: '{kernel.dir}', mode: copy}\n"
              "  - {path: /opt/old/logo.png, target: '{kernel.dir}/logo-64x64.png'}\n")
    loaded = load_payload(_payload(tmp_path, compat))
    links = plan_of(loaded.directory).compat.links
    assert [(ln.path, ln.target, ln.mode) for ln in links] == [
        ("/opt/old/kernel", "/usr/local/share/jupyter/kernels/ck", "copy"),
        ("/opt/old/logo.png", "/usr/local/share/jupyter/kernels/ck/logo-64x64.png",
         "link")]
    assert links[0].source == "payload.yaml compat[0]"


def test_reverse_profile_resolves(tmp_path: Path) -> None:
    loaded = load_payload(_payload(tmp_path, "  - nublado-new-from-legacy\n", ""))
    links = plan_of(loaded.directory).compat.links
    modes = {ln.path: (ln.target, ln.mode) for ln in links}
    assert modes["/usr/local/share/jupyterlab/versions-installed/legacy"] == (
        f"{LEGACY}/versions-installed", "link")
    assert modes["/usr/local/share/jupyterlab/kernels/legacy/lsstlaunch.bash"] == (
        f"{LEGACY}/lsstlaunch.bash", "copy")


def test_unknown_profile(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "  - nublado-legacyy\n")
    assert len(problems) == 1
    assert "compat[0]: unknown compat profile 'nublado-legacyy'" in problems[0]
    assert "nublado-legacy" in problems[0] and ":9:" in problems[0]


def test_duplicate_paths(tmp_path: Path) -> None:
    compat = (f"  - nublado-legacy\n  - {{path: {LEGACY}/runlab.sh, "
              "target: /usr/local/share/jupyterlab/runlab}\n"
              "  - {path: /opt/a, target: /usr/bin/env}\n"
              "  - {path: /opt/a, target: /usr/bin/true}\n")
    problems = _problems(tmp_path, compat)
    assert len(problems) == 2
    assert f"{LEGACY}/runlab.sh: duplicate compat link path (also from profile " \
        "nublado-legacy)" in problems[0]
    assert "compat[3]" in problems[1] and "also from payload.yaml compat[2]" \
        in problems[1]


def test_wrapper_placeholder_needs_a_wrapper(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "  - nublado-legacy\n", kernel_extra="")
    assert len(problems) == 1
    assert "{kernel.wrapper}: kernel 'ck' has no wrapper script" in problems[0]


@pytest.mark.parametrize(("entry", "message"), [
    ("{path: /opt/x, target: '{kernel.foo}'}", "unknown placeholder '{kernel.foo}'"),
    ("{path: /opt/x, target: relative/path}", "must be an absolute path"),
    ("{path: /opt/x, target: /a, mode: hardlink}", "'link' or 'copy'"),
    ("{path: /usr/local/share/jupyterlab/runlab, target: /bin/true}",
     "the JupyterLab tree"),
    ("{path: /usr/local/share/jupyterlab/compat-links.tsv, target: /bin/true}",
     "the JupyterLab tree"),
    ("{path: /usr/local/etc/jupyter/x.py, target: /bin/true}",
     "the JupyterLab server configuration"),
    ("{path: /usr/local/lib/python3.13/os.py, target: /bin/true}",
     "the base interpreter's standard library"),
    ("{path: /etc/jupyter/jupyter_server_config.py, target: /bin/true}",
     "a Jupyter configuration directory"),
    ("{path: /usr/local/share/jupyter/kernels/ck/kernel.json, target: /bin/true}",
     "Jupyter data the server reads"),
    ("{path: /usr/local/share/jupyterlab/kernels/ck/launch, target: /bin/true}",
     "generated kernel wrapper"),
    ("{path: /opt, target: /bin}", "system directory"),
    ("{path: /opt/x, target: /opt/x/y}", "inside it"),
    ("Bad_Name", "compat profile name"),
])
def test_bad_entries(tmp_path: Path, entry: str, message: str) -> None:
    problems = _problems(tmp_path, f"  - {entry}\n")
    assert any(message in p for p in problems), problems


def test_nested_links_refused(tmp_path: Path) -> None:
    compat = ("  - {path: /opt/a, target: /usr/share}\n"
              "  - {path: /opt/a/b, target: /usr/bin/env}\n")
    problems = _problems(tmp_path, compat)
    assert any("/opt/a/b (payload.yaml compat[1]) is inside compat link /opt/a"
               in p for p in problems)


def test_plan_renders_the_step_label_and_links_file(tmp_path: Path) -> None:
    loaded = load_payload(_payload(tmp_path, "  - nublado-legacy\n"))
    plan = plan_of(loaded.directory)
    assert (LABEL, "nublado-legacy") in plan.labels
    dockerfile = dockerfile_of(plan)
    step = dockerfile.index("apply-compat /tmp/nb-compat-links.tsv")
    assert dockerfile.index("kernel/kernel.json") < step < dockerfile.index(
        "nublado-guard")
    files = files_of(plan)
    text = files["compat/links.tsv"][0].decode()
    assert f"link\t{LEGACY}/runlab.sh\t/usr/local/share/jupyterlab/runlab\t" \
        "profile nublado-legacy" in text


def test_no_compat_no_step(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six\n")
    (tmp_path / "payload.yaml").write_text(
        "name: plain\ninstall: [{pip: {requirements: requirements.txt}}]\n"
        "kernel: {name: p, display_name: P}\n")
    plan = plan_of(tmp_path)
    assert "apply-compat" not in dockerfile_of(plan)
    assert "compat/links.tsv" not in files_of(plan)
    assert all(key != LABEL for key, _ in plan.labels)


def _apply(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    links = tmp_path / "links.tsv"
    links.write_text("# header\n" + "".join(line + "\n" for line in lines))
    # Redirect the record file into the scratch tree.
    script = APPLY.read_text().replace("/usr/local/share/jupyterlab/compat-links.tsv",
                                       str(tmp_path / "record.tsv"))
    runner = tmp_path / "apply-compat"
    runner.write_text(script)
    return subprocess.run(["bash", str(runner), str(links)], capture_output=True,
                          text=True, check=False)


def test_apply_compat_links_and_copies(tmp_path: Path) -> None:
    target = tmp_path / "new" / "runlab"
    target.parent.mkdir()
    target.write_text("#!/bin/sh\n")
    kdir = tmp_path / "kernels" / "k"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text("{}")
    proc = _apply(tmp_path, [
        f"link\t{tmp_path}/old/runlab.sh\t{target}\tprofile nublado-legacy",
        f"copy\t{tmp_path}/old/kernel\t{kdir}\tpayload.yaml compat[1]"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "old" / "runlab.sh").readlink() == target
    assert (tmp_path / "old" / "kernel" / "kernel.json").read_text() == "{}"
    assert not (tmp_path / "old" / "kernel").is_symlink()
    assert "2 compat link(s) applied" in proc.stdout
    assert len((tmp_path / "record.tsv").read_text().splitlines()) == 3


def test_apply_compat_fails_on_missing_target(tmp_path: Path) -> None:
    proc = _apply(tmp_path, [f"link\t{tmp_path}/old/x\t{tmp_path}/nope\tprofile p"])
    assert proc.returncode != 0
    assert f"compat link {tmp_path}/old/x -> {tmp_path}/nope (from profile p): " \
        "the target does not exist in the image" in proc.stderr


def test_apply_compat_fails_on_existing_payload_file(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "runlab.sh").write_text("payload's own\n")
    proc = _apply(tmp_path, [f"link\t{tmp_path}/old/runlab.sh\t{tmp_path}\tprofile p"])
    assert proc.returncode != 0
    assert "already exists in the image as a file" in proc.stderr
    assert (tmp_path / "old" / "runlab.sh").read_text() == "payload's own\n"


def test_links_file_format() -> None:
    assert links_file([]).startswith(b"# nublado-build compat links")


def test_apply_compat_is_strict_bash() -> None:
    text = APPLY.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in text
    assert REPO.joinpath("base/build/apply-compat").stat().st_mode & 0o111


def test_conda_kernel_without_setup_gets_the_legacy_wrapper_link(tmp_path: Path
                                                                ) -> None:
    """Regression (issue 9): validate and the plan agree on the wrapper.

    A conda kernel runs through a wrapper (conda activation), so the
    nublado-legacy profile's ``{kernel.wrapper}`` resolves; compat used to
    derive kernel files without the activation and refused it.
    """
    (tmp_path / "environment.yml").write_text(
        "channels: [conda-forge]\ndependencies: [python=3.11, ipykernel]\n")
    (tmp_path / "payload.yaml").write_text(
        "name: conda-legacy\ninstall:\n  - conda: {environment: environment.yml}\n"
        "kernel: {name: cl, display_name: CL}\ncompat: [nublado-legacy]\n")
    plan = plan_of(tmp_path)
    links = {link.path: link.target for link in plan.compat.links}
    assert plan.kernel.wrapper_path == "/usr/local/share/jupyterlab/kernels/cl/launch"
    assert links[f"{LEGACY}/lsstlaunch.bash"] == plan.kernel.wrapper_path
    assert links[f"{LEGACY}/lsst_kernel.json"] == \
        "/usr/local/share/jupyter/kernels/cl/kernel.json"
