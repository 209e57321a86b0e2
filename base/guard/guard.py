"""The isolation guard: did a payload change what the JupyterLab server runs?

Runs in a build stage of its own, made from the base image, with the
base's own interpreter in isolated mode (``python3 -I``): no payload
binary, ``PATH``, ``BASH_ENV`` or ``PYTHON*`` variable takes part. It
compares the protected trees of the base (its own root file system) with
the payload image's, mounted read-only at ``--payload-root``: type,
content (sha256), mode, owner, group and link target of every entry, and
entries added or removed. Only the paths nublado-build itself generates
for the payload (``--allow``) may differ. Exit 0 and a report when
nothing else did; exit 3 and the list of changes otherwise.

With a ``lab`` section the payload builds on the ``nublado-lab`` stage,
mounted at ``--lab-root``: that stage is compared with the base first and
may only *add* entries, below the paths of ``--lab-allow`` (the lab venv
and its record); the payload is then compared with the lab stage, so the
guard allows exactly what the lab stage added and nothing else.

Standard library only; Python 3.11 or later.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import stat
import sys
import sysconfig
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LAB_ROOT = "/usr/local/share/jupyterlab"
#: Trees and files the payload may not change, besides the interpreter's.
PROTECTED = (
    LAB_ROOT,
    "/usr/local/etc/jupyter",
    "/etc/jupyter",
    "/usr/local/share/jupyter",
    "/usr/share/jupyter",
    "/etc/profile.d/zz-nublado-payload.sh",
    "/etc/bash.bashrc",
    "/usr/local/bin/jupyterhub-singleuser",
    "/usr/bin/tini",
    "/opt/nublado",  # the start hook's files (nubladobuild/start.py), run at start
)
Entry = tuple[str, ...]


def interpreter_paths() -> list[str]:
    """Return the base interpreter's files: binary, stdlib, libpython."""
    paths = {os.path.realpath(sys.executable)}
    for key in ("stdlib", "platstdlib"):
        paths.add(os.path.realpath(sysconfig.get_paths()[key]))
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    for name in (sysconfig.get_config_var("INSTSONAME"),
                 sysconfig.get_config_var("LDLIBRARY")):
        if name and libdir and os.path.exists(os.path.join(libdir, name)):
            paths.add(os.path.realpath(os.path.join(libdir, name)))
    return sorted(paths)


def _walk(root: Path, top: str) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (image path, lstat) for ``top`` and everything below it."""
    start = root / top.lstrip("/") if str(root) != "/" else Path(top)
    try:
        info = start.lstat()
    except FileNotFoundError:
        return
    yield top, info
    if not stat.S_ISDIR(info.st_mode):
        return
    for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
        rel = os.path.relpath(dirpath, start)
        base = top if rel == "." else f"{top}/{rel}"
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            yield f"{base}/{name}", os.lstat(path)


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def snapshot(root: Path, tops: list[str]) -> tuple[dict[str, Entry],
                                                 dict[str, tuple[int, int, int]]]:
    """Return path -> (type, mode, uid, gid, link target) and file stats.

    The stats (size, mtime and ctime in ns) let :func:`compare` hash only
    the files whose stats differ between the two trees: a process can set
    a file's mtime but not its ctime, which every write, ``chmod`` or
    overlay copy-up sets to the current time; an unchanged file of the
    base is the same inode of the same lower layer in both trees.
    """
    entries: dict[str, Entry] = {}
    stats: dict[str, tuple[int, int, int]] = {}
    for top in tops:
        for path, info in _walk(root, top):
            mode = info.st_mode
            kind = ("dir" if stat.S_ISDIR(mode) else "link" if stat.S_ISLNK(mode)
                    else "file" if stat.S_ISREG(mode) else "special")
            real = str(root / path.lstrip("/")) if str(root) != "/" else path
            extra = os.readlink(real) if kind == "link" else ""
            entries[path] = (kind, oct(stat.S_IMODE(mode)), str(info.st_uid),
                             str(info.st_gid), extra)
            if kind == "file":
                stats[path] = (info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    return entries, stats


def _hash_all(root: Path, paths: list[str]) -> dict[str, str]:
    """Return path -> sha256 of the files under ``root``, hashed in parallel."""
    reals = [str(root / p.lstrip("/")) if str(root) != "/" else p for p in paths]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(paths, pool.map(_digest, reals), strict=True))


def ancestors_problems(payload_root: Path, tops: list[str]) -> list[str]:
    """Return protected paths whose parent directories became links in the payload.

    A symbolic link in place of ``/usr/local/share`` (say) would send the
    comparison elsewhere; every ancestor must stay a real directory.
    """
    problems = []
    for top in tops:
        parts = Path(top).parts[1:-1]
        for depth in range(1, len(parts) + 1):
            ancestor = "/" + "/".join(parts[:depth])
            try:
                mode = (payload_root / ancestor.lstrip("/")).lstat().st_mode
            except FileNotFoundError:
                break
            if not stat.S_ISDIR(mode):
                problems.append(f"{ancestor}: replaced by a non-directory (it holds "
                                f"{top})")
    return problems


def allowed(path: str, allow: list[str], old: Entry | None,
            new: Entry | None) -> bool:
    """Return whether nublado-build generated this change.

    An allowed path (or anything below one ending in ``/``) may differ in
    any way; a directory leading to an allowed path may only be new.
    """
    for item in allow:
        if path == item.rstrip("/"):
            return True
        if item.endswith("/") and path.startswith(item):
            return True
        if item.startswith(path + "/") and old is None and new is not None \
                and new[0] == "dir":
            return True
    return False


def compare(base_root: Path, payload_root: Path, tops: list[str],
            allow: list[str], additions_only: bool = False) -> tuple[int, list[str]]:
    """Return how many base entries were compared and every change found.

    With ``additions_only`` an allowed path may only be new: a changed or
    removed entry of the base is a change even below an allowed path.
    """
    base, base_stats = snapshot(base_root, tops)
    payload, payload_stats = snapshot(payload_root, tops)
    # Content: hash the files present in both whose stats differ; files
    # with identical size, mtime and ctime are the base's own.
    suspects = sorted(p for p in set(base_stats) & set(payload_stats)
                      if base_stats[p] != payload_stats[p])
    old_sums, new_sums = _hash_all(base_root, suspects), \
        _hash_all(payload_root, suspects)
    for path in suspects:
        base[path] = base[path][:4] + (old_sums[path],)
        payload[path] = payload[path][:4] + (new_sums[path],)
    changes = ancestors_problems(payload_root, tops)
    for path in sorted(set(base) | set(payload)):
        old, new = base.get(path), payload.get(path)
        if old == new or (allowed(path, allow, old, new)
                          and (old is None or not additions_only)):
            continue
        if old is None:
            changes.append(f"{path}: added ({new[0] if new else '?'})")
        elif new is None:
            changes.append(f"{path}: removed")
        else:
            what = [name for name, a, b in zip(
                ("type", "mode", "owner", "group", "content"), old, new, strict=True)
                if a != b]
            changes.append(f"{path}: {', '.join(what)} changed "
                           f"({' '.join(old[:4])} -> {' '.join(new[:4])})")
    return len(base), changes


def _allow_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def main(argv: list[str] | None = None) -> int:
    """Compare the protected trees; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payload-root", type=Path, required=True)
    parser.add_argument("--allow", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--lab-root", type=Path)
    parser.add_argument("--lab-allow", type=Path)
    args = parser.parse_args(argv)
    allow = _allow_list(args.allow)
    tops = sorted(set(PROTECTED) | set(interpreter_paths()))
    reference, lab_note, changes = Path("/"), "", []
    if args.lab_root is not None:
        lab_allow = _allow_list(args.lab_allow) if args.lab_allow else []
        lab_count, lab_changes = compare(Path("/"), args.lab_root, tops, lab_allow,
                                         additions_only=True)
        changes += [f"lab stage: {line}" for line in lab_changes]
        reference = args.lab_root
        lab_note = (f"; the lab stage only added below {', '.join(lab_allow)} "
                    f"({lab_count} base entries compared)")
    count, payload_changes = compare(reference, args.payload_root, tops, allow)
    changes += payload_changes
    if changes:
        print(f"Changed paths (first 20 of {len(changes)}):", file=sys.stderr)
        for line in changes[:20]:
            print(f"  {line}", file=sys.stderr)
        print("nublado-build: isolation guard: a payload step changed the "
              f"JupyterLab server's files ({len(changes)} paths, listed above). "
              "Payload steps must install into their own prefix, never into "
              f"{LAB_ROOT}, the server configuration, Jupyter's data "
              "directories or the base interpreter.", file=sys.stderr)
        return 3
    args.report.write_text(
        f"isolation guard: {count} protected entries under {len(tops)} trees "
        f"unchanged; {len(allow)} generated paths allowed{lab_note}\n")
    print(f"nublado-build: isolation guard: JupyterLab environment unchanged "
          f"({count} entries compared).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
