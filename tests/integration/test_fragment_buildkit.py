"""BuildKit itself reads the tricky fragment cases as the checker does.

A real engine builds tiny probe images from fragments: the flags, mounts
and directives the checker refuses or accepts are what BuildKit executes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nubladobuild.fragment import check_fragment, splice
from tests.unit.test_fragment import fragment, messages, problems

# --------------------------------------------------------------------------
# BuildKit itself agrees (a real engine; optional locally, required in CI)
# --------------------------------------------------------------------------

def _probe_image(tmp_path: Path) -> str:
    """Import a tiny image (the host's dash as /bin/sh, cat) for probe builds."""
    import shutil
    import subprocess
    import tarfile

    from tests.conftest import TEST_TAG
    root = tmp_path / "rootfs"
    wanted = {"/bin/sh": shutil.which("dash") or "/bin/sh",
              "/bin/cat": shutil.which("cat") or "/bin/cat"}
    for binary in list(wanted.values()):
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True,
                             check=True).stdout
        for word in ldd.split():
            if word.startswith("/"):
                wanted[word] = word
    for target, source in wanted.items():
        dest = root / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(source).resolve(), dest)
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname=".")
    tag = f"nublado-fragment-probe:{TEST_TAG}"
    subprocess.run(["docker", "import", str(archive), tag], check=True,
                   capture_output=True)
    return tag


@pytest.mark.integration
def test_buildkit_reads_the_tricky_cases_as_the_checker_does(tmp_path: Path) -> None:
    import subprocess

    from nubladobuild.engine import find_build_client
    from tests.conftest import require
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True,
                            check=False).returncode == 0
    except FileNotFoundError:
        ok = False
    require(ok, "no Docker engine answers (run scripts/setup-docker)")
    image = _probe_image(tmp_path)
    client = find_build_client()

    def build(name: str, body: str) -> tuple[int, str]:
        context = tmp_path / name
        context.mkdir()
        (context / "probe.txt").write_text("PROBE-FROM-CONTEXT\n")
        (context / "Dockerfile").write_text(f"FROM {image}\n{body}")
        proc = subprocess.run([*client.argv, "--no-cache", "--progress=plain",
                               str(context)], capture_output=True, text=True,
                              env={**os.environ, **client.env},
                              timeout=300, check=False)
        return proc.returncode, proc.stdout + proc.stderr

    try:
        # 1. Mount keys and types are case-insensitive, quotes are removed and
        #    continuation lines are joined with nothing: each of these is a bind
        #    mount of the build context, and each is refused by the checker.
        for name, text in {
            "capital": "RUN --mount=Type=bind,source=probe.txt,target=/p cat /p\n",
            "quoted": 'RUN --mount="type=bind",source=probe.txt,target=/p cat /p\n',
            "joined": "RUN --mo\\\nunt=type=bind,source=probe.txt,target=/p cat /p\n",
        }.items():
            code, log = build(name, text)
            assert code == 0 and "PROBE-FROM-CONTEXT" in log, (name, log[-3000:])
            assert "type=bind is refused" in messages(tmp_path / name, text)
        # 2. A tab separates flags: BuildKit reads --bogus as a flag (and fails).
        code, log = build("tab", "RUN\t--bogus=1 echo NOT-A-FLAG\n")
        assert code != 0 and "bogus" in log and "NOT-A-FLAG" not in log, log[-3000:]
        assert "RUN --bogus is refused" in messages(tmp_path / "tab",
                                                    "RUN\t--bogus=1 true\n")
        # 3. After the generated Dockerfile's first lines, '# escape=`' is a
        #    comment: USER is an instruction, as the checker reports.
        text = "# escape=`\nRUN echo hi #`\nUSER 4242:4242\nRUN cat /proc/self/status\n"
        code, log = build("escape", "# nublado-build: fragment\n" + text)
        assert code == 0 and "Uid:\t4242" in log, log[-3000:]
        assert (3, REFUSED_USER) in [(n, m[:len(REFUSED_USER)]) for n, m in
                                     problems(tmp_path / "escape", text)]
        # 4. What splice writes builds and runs the same commands as the original.
        text = ('RUN\t--mount="type=cache,target=/c" \\\n  # a comment\n'
                "  echo SPLICED-RUN-\\\nOK && cat /proc/self/status\n"
                "ENV A=1 \\\n  B=2\n")
        directory = tmp_path / "spliced-src"
        directory.mkdir()
        frag = check_fragment(fragment(directory, text), directory)
        assert frag.problems == ()
        lines = "".join(f"{line}\n" for item in splice(frag, "ctx")
                        for line in item.lines)
        for name, body in (("original", text), ("spliced", lines)):
            code, log = build(name, body)
            assert code == 0 and "SPLICED-RUN-OK" in log, (name, log[-3000:])
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True,
                       check=False)


REFUSED_USER = "USER is refused"
