"""The isolation guard's comparison, on two file trees made here."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

GUARD = Path(__file__).resolve().parents[2] / "base" / "guard" / "guard.py"
LAB = "/usr/local/share/jupyterlab"
TOPS = [LAB, "/usr/local/etc/jupyter", "/etc/jupyter", "/usr/local/share/jupyter",
        "/usr/lib/python3.13"]
ALLOW = ["/usr/local/share/jupyter/kernels/demo/",
         f"{LAB}/versions-installed/payload-demo.txt"]


def load_guard() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nublado_guard", GUARD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nublado_guard"] = module
    spec.loader.exec_module(module)
    return module


guard = load_guard()


def write(root: Path, path: str, text: str = "x", mode: int = 0o644) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)
    return target


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    base = tmp_path / "base"
    write(base, f"{LAB}/venv/lib/site-packages/jupyterlab/__init__.py", "lab")
    write(base, f"{LAB}/venv/bin/python3", "#!", 0o755)
    write(base, f"{LAB}/runlab", "#!/bin/sh", 0o755)
    write(base, f"{LAB}/versions-installed/jupyterlab.txt", "jupyterlab==4")
    write(base, "/usr/local/etc/jupyter/jupyter_server_config.py", "c = 1")
    write(base, "/usr/local/share/jupyter/kernels/.keep", "")
    write(base, "/usr/lib/python3.13/os.py", "os")
    payload = tmp_path / "payload"
    shutil.copytree(base, payload, symlinks=True)
    return base, payload


def changes(base: Path, payload: Path) -> list[str]:
    count, found = guard.compare(base, payload, TOPS, ALLOW)
    assert count == 18  # every entry under the protected trees of the base
    return list(found)


def test_identical_trees_pass(trees: tuple[Path, Path]) -> None:
    assert changes(*trees) == []


def test_generated_paths_are_allowed(trees: tuple[Path, Path]) -> None:
    base, payload = trees
    write(payload, "/usr/local/share/jupyter/kernels/demo/kernel.json", "{}")
    write(payload, f"{LAB}/versions-installed/payload-demo.txt", "six")
    assert changes(base, payload) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: write(p, f"{LAB}/venv/lib/site-packages/jupyterlab/__init__.py", "evil"),
     f"{LAB}/venv/lib/site-packages/jupyterlab/__init__.py: content changed"),
    (lambda p: (p / LAB.lstrip("/") / "runlab").chmod(0o777),
     f"{LAB}/runlab: mode changed"),
    (lambda p: write(p, f"{LAB}/venv/lib/site-packages/sitecustomize.py", "evil"),
     f"{LAB}/venv/lib/site-packages/sitecustomize.py: added (file)"),
    (lambda p: (p / LAB.lstrip("/") / "runlab").unlink(), f"{LAB}/runlab: removed"),
    (lambda p: write(p, "/etc/jupyter/jupyter_server_config.py", "evil"),
     "/etc/jupyter: added (dir)"),
    (lambda p: write(p, "/usr/local/share/jupyter/kernels/python3/kernel.json"),
     "/usr/local/share/jupyter/kernels/python3: added (dir)"),
    (lambda p: write(p, "/usr/lib/python3.13/os.py", "evil"),
     "/usr/lib/python3.13/os.py: content changed"),
    (lambda p: write(p, f"{LAB}/versions-installed/jupyterlab.txt", "lie"),
     f"{LAB}/versions-installed/jupyterlab.txt: content changed"),
])
def test_every_kind_of_change_is_caught(trees: tuple[Path, Path], change: object,
                                        expected: str) -> None:
    base, payload = trees
    assert callable(change)
    change(payload)
    found = changes(base, payload)
    assert any(line.startswith(expected) for line in found), found


def test_a_link_in_place_of_a_directory_is_caught(trees: tuple[Path, Path]) -> None:
    base, payload = trees
    shutil.rmtree(payload / "usr/local/etc/jupyter")
    os.symlink("/tmp", payload / "usr/local/etc/jupyter")
    found = changes(base, payload)
    assert any(line.startswith("/usr/local/etc/jupyter: type") for line in found)


def test_a_link_in_place_of_an_ancestor_is_caught(trees: tuple[Path, Path]) -> None:
    base, payload = trees
    shutil.move(payload / "usr/local/share", payload / "usr/local/share.real")
    os.symlink("share.real", payload / "usr/local/share")
    found = changes(base, payload)
    assert any(line.startswith("/usr/local/share: replaced by a non-directory")
               for line in found), found


def test_a_new_parent_of_an_allowed_path_must_be_new(trees: tuple[Path, Path]
                                                     ) -> None:
    """Directories leading to allowed paths may be created, not changed."""
    base, payload = trees
    (payload / "usr/local/share/jupyter/kernels").chmod(0o777)
    found = changes(base, payload)
    assert any(line.startswith("/usr/local/share/jupyter/kernels: mode")
               for line in found), found


def linked_copy(base: Path, payload: Path) -> None:
    """Make ``payload`` share every file's inode with ``base`` (like a lower layer)."""
    for path in sorted(base.rglob("*")):
        target = payload / path.relative_to(base)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copystat(path, target)
        else:
            os.link(path, target)


def test_unchanged_files_are_not_hashed(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    base, payload = tmp_path / "base", tmp_path / "payload"
    write(base, f"{LAB}/venv/lib/site-packages/jupyterlab/__init__.py", "lab")
    write(base, f"{LAB}/runlab", "#!/bin/sh", 0o755)
    linked_copy(base, payload)
    hashed: list[str] = []
    real: Callable[[str], str] = guard._digest

    def digest(path: str) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(guard, "_digest", digest)
    assert guard.compare(base, payload, TOPS, ALLOW) == (7, [])
    assert hashed == []


def test_same_size_and_mtime_but_new_content_is_caught(tmp_path: Path) -> None:
    """A payload that rewrites a file and puts its mtime back: ctime differs."""
    base, payload = tmp_path / "base", tmp_path / "payload"
    original = write(base, f"{LAB}/runlab", "#!/bin/sh\nexec lab\n", 0o755)
    linked_copy(base, payload)
    target = payload / LAB.lstrip("/") / "runlab"
    target.unlink()
    target.write_text("#!/bin/sh\nexec sh!\n")  # same size
    target.chmod(0o755)
    info = original.stat()
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    count, found = guard.compare(base, payload, TOPS, ALLOW)
    assert count == 2  # the lab tree and runlab
    assert found == [f"{LAB}/runlab: content changed (file 0o755 "
                     f"{info.st_uid} {info.st_gid} -> file 0o755 {info.st_uid} "
                     f"{info.st_gid})"]
