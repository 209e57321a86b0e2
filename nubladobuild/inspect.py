"""What a payload image carries, and what changed between two images.

``nublado-build inspect`` and ``nublado-build diff`` read an image's labels,
the manifests under :data:`nubladobuild.pairing.MANIFEST_DIR` (the lab
venv's ``jupyterlab.txt`` and the ``lab-extensions-<name>.txt`` a ``lab:``
section added to it, each payload environment's ``payload-<name>.txt``)
and the Debian package database (:data:`DPKG_STATUS`). Everything here but
:func:`read_image` is pure: parsing, version ordering (PEP 440 for Python
packages, dpkg's algorithm for Debian packages), the diff and its report.
The image is read through :mod:`nubladobuild.engine`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from nubladobuild import engine
from nubladobuild.errors import InputError
from nubladobuild.pairing import LAB_MANIFEST, MANIFEST_DIR, parse_manifest
from nubladobuild.profiles import PROFILE_LABEL

#: The Debian package database of an image.
DPKG_STATUS = "/var/lib/dpkg/status"
#: The environment names of the lab venv and of the Debian packages.
LAB_ENV = "lab"
DEBIAN_ENV = "debian"
#: A payload environment is ``payload:<name>``.
PAYLOAD_ENV = "payload:"

_RFC3339_UTC = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"
#: Provenance labels every payload image has, and the shape of each value.
LABEL_SHAPES: dict[str, str] = {
    "org.opencontainers.image.created": _RFC3339_UTC,
    "org.opencontainers.image.version": r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
    "org.opencontainers.image.title": r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
    "org.opencontainers.image.description": r"[^\x00-\x1f\x7f]*",
    "io.nublado.base.digest": r"sha256:[0-9a-f]{64}",
    "io.nublado.inputs.sha256": r"[0-9a-f]{64}",
    "io.nublado.build.version": r"[0-9A-Za-z][0-9A-Za-z.+!_-]*",
}
#: Labels a payload image has when its payload was built from a git checkout.
OPTIONAL_LABEL_SHAPES: dict[str, str] = {
    "org.opencontainers.image.revision": r"[0-9a-f]{40}|[0-9a-f]{64}",
    "org.opencontainers.image.source": r"[^\s\x00-\x1f\x7f]{1,1024}",
}


def label_problems(labels: Mapping[str, str]) -> list[str]:
    """Return what is wrong with a payload image's provenance labels.

    Every label of :data:`LABEL_SHAPES` must be present with a value of its
    shape; those of :data:`OPTIONAL_LABEL_SHAPES` may be absent. The
    creation time must also be a real date.
    """
    problems = []
    for name, shape in {**LABEL_SHAPES, **OPTIONAL_LABEL_SHAPES}.items():
        value = labels.get(name)
        if value is None:
            if name in LABEL_SHAPES:
                problems.append(f"label {name} is missing")
        elif not re.fullmatch(shape, value):
            problems.append(f"label {name}={value!r} does not match {shape}")
    created = labels.get("org.opencontainers.image.created", "")
    if re.fullmatch(_RFC3339_UTC, created):
        try:
            datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            problems.append(f"label org.opencontainers.image.created={created!r} "
                            "is not a date")
    return problems


def parse_dpkg_status(text: str) -> dict[str, str]:
    """Return ``package -> version`` of the installed packages in a dpkg status.

    Only stanzas whose ``Status`` ends in ``installed`` count. A package
    installed for two architectures is listed as ``name:arch`` for the
    second one.
    """
    packages: dict[str, str] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # a continuation line, or no field
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        name, version = fields.get("package"), fields.get("version")
        if not name or not version:
            continue
        if fields.get("status", "").split()[-1:] != ["installed"]:
            continue
        if name in packages:
            name = f"{name}:{fields.get('architecture', '')}"
        packages[name] = version
    return packages


def _order(char: str) -> int:
    """Return dpkg's sort weight of one character of a non-digit part."""
    if not char or "0" <= char <= "9":
        return 0
    if char.isascii() and char.isalpha():
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    """Compare two upstream versions or revisions the way dpkg does."""
    i = j = 0

    def at(text: str, k: int) -> str:
        return text[k] if k < len(text) else ""

    def digit(char: str) -> bool:
        return bool(char) and "0" <= char <= "9"

    while i < len(a) or j < len(b):
        first_diff = 0
        while (at(a, i) and not digit(at(a, i))) or (at(b, j) and not digit(at(b, j))):
            ac, bc = _order(at(a, i)), _order(at(b, j))
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while at(a, i) == "0":
            i += 1
        while at(b, j) == "0":
            j += 1
        while digit(at(a, i)) and digit(at(b, j)):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if digit(at(a, i)):
            return 1
        if digit(at(b, j)):
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_debian(version: str) -> tuple[int, str, str]:
    """Return a Debian version's epoch, upstream version and revision."""
    epoch = 0
    head, sep, rest = version.partition(":")
    if sep and head.isascii() and head.isdigit():
        epoch, version = int(head), rest
    upstream, sep, revision = version.rpartition("-")
    if not sep:
        upstream, revision = version, ""
    return epoch, upstream, revision


def dpkg_compare(a: str, b: str) -> int:
    """Compare two Debian versions: -1, 0 or 1, as ``dpkg --compare-versions``.

    Epochs first (``1:0.1 > 2.0``), then the upstream version, then the
    revision; ``~`` sorts before anything, even the end (``1.0~rc1 <
    1.0``), letters before other characters, digit runs as numbers.
    """
    ea, ua, ra = _split_debian(a.strip())
    eb, ub, rb = _split_debian(b.strip())
    if ea != eb:
        return -1 if ea < eb else 1
    result = _verrevcmp(ua, ub) or _verrevcmp(ra, rb)
    return (result > 0) - (result < 0)


def python_compare(a: str, b: str) -> int:
    """Compare two Python package versions (PEP 440): -1, 0 or 1.

    A version PEP 440 cannot parse is compared with dpkg's ordering, which
    orders any string.
    """
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        return dpkg_compare(a, b)
    return (va > vb) - (va < vb)


@dataclass(frozen=True)
class EnvDiff:
    """What changed in one environment: names with versions, sorted by name."""

    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    upgraded: tuple[tuple[str, str, str], ...] = ()
    downgraded: tuple[tuple[str, str, str], ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything was added, removed, upgraded or downgraded."""
        return bool(self.added or self.removed or self.upgraded or self.downgraded)

    def as_dict(self) -> dict[str, list[dict[str, str]]]:
        """Return the diff for ``--json``."""
        return {
            "added": [{"name": n, "version": v} for n, v in self.added],
            "removed": [{"name": n, "version": v} for n, v in self.removed],
            "upgraded": [{"name": n, "from": a, "to": b} for n, a, b in self.upgraded],
            "downgraded": [{"name": n, "from": a, "to": b}
                           for n, a, b in self.downgraded],
        }


def diff_packages(old: Mapping[str, str], new: Mapping[str, str],
                  compare: Callable[[str, str], int],
                  key: Callable[[str], str] = str) -> EnvDiff:
    """Return what changed from ``old`` to ``new`` (``name -> version`` each).

    ``key`` matches names (PEP 503 normalisation for Python packages); a
    version that differs as a string but compares equal is no change.
    """
    before = {key(n): (n, v) for n, v in old.items()}
    after = {key(n): (n, v) for n, v in new.items()}
    added = [after[k] for k in sorted(after.keys() - before.keys())]
    removed = [before[k] for k in sorted(before.keys() - after.keys())]
    upgraded, downgraded = [], []
    for k in sorted(before.keys() & after.keys()):
        (_, was), (name, now) = before[k], after[k]
        order = compare(was, now) if was != now else 0
        if order < 0:
            upgraded.append((name, was, now))
        elif order > 0:
            downgraded.append((name, was, now))
    return EnvDiff(tuple(added), tuple(removed), tuple(upgraded), tuple(downgraded))


def environments(files: Mapping[str, bytes]) -> dict[str, dict[str, str]]:
    """Return each environment's packages from the files read from an image.

    ``files`` maps absolute paths to contents. The lab venv (``lab``) is
    ``jupyterlab.txt`` plus every ``lab-extensions-<name>.txt``; each
    ``payload-<name>.txt`` is the environment ``payload:<name>``; the dpkg
    status is ``debian``. An environment whose file is missing is absent.
    """
    envs: dict[str, dict[str, str]] = {}
    for path in sorted(files):
        text = files[path].decode("utf-8", "replace")
        directory, _, name = path.rpartition("/")
        if path == DPKG_STATUS:
            envs[DEBIAN_ENV] = parse_dpkg_status(text)
        elif directory != MANIFEST_DIR or not name.endswith(".txt"):
            continue
        elif name == LAB_MANIFEST or name.startswith("lab-extensions-"):
            envs.setdefault(LAB_ENV, {}).update(parse_manifest(text))
        elif name.startswith("payload-"):
            envs[PAYLOAD_ENV + name[len("payload-"):-len(".txt")]] = \
                parse_manifest(text)
    return envs


def _sorted(packages: Mapping[str, str]) -> list[tuple[str, str]]:
    """Return ``(name, version)`` pairs by name, case aside."""
    return sorted(packages.items(), key=lambda item: (item[0].lower(), item[0]))


def _env_order(name: str) -> tuple[int, str]:
    return ({LAB_ENV: 0, DEBIAN_ENV: 2}.get(name, 1), name)


def diff_environments(old: Mapping[str, Mapping[str, str]],
                      new: Mapping[str, Mapping[str, str]]) -> dict[str, EnvDiff]:
    """Return the diff of every environment either image has, in report order.

    An environment only one image has is all added (or all removed).
    """
    result = {}
    for env in sorted(old.keys() | new.keys(), key=_env_order):
        if env == DEBIAN_ENV:
            result[env] = diff_packages(old.get(env, {}), new.get(env, {}),
                                        dpkg_compare)
        else:
            result[env] = diff_packages(old.get(env, {}), new.get(env, {}),
                                        python_compare, key=canonicalize_name)
    return result


@dataclass(frozen=True)
class ImageContents:
    """What :func:`read_image` found in an image."""

    image: str
    id: str
    labels: dict[str, str]
    files: tuple[str, ...]
    environments: dict[str, dict[str, str]]

    @property
    def profile(self) -> str | None:
        """Return the base profile the image's lab venv comes from."""
        return self.labels.get(PROFILE_LABEL)

    def as_dict(self) -> dict[str, Any]:
        """Return the ``inspect --json`` document."""
        return {"image": self.image, "id": self.id, "labels": self.labels,
                "profile": self.profile, "files": list(self.files),
                "environments": {env: dict(_sorted(self.environments[env]))
                                 for env in sorted(self.environments,
                                                   key=_env_order)}}

    def text(self) -> str:
        """Return the ``inspect`` report: labels, profile, each environment."""
        lines = [f"{self.image} ({self.id})", "labels:"]
        lines += [f"  {k}={v}" for k, v in sorted(self.labels.items())]
        lines.append(f"base profile: {self.profile or '(none)'}")
        for env in sorted(self.environments, key=_env_order):
            packages = self.environments[env]
            sep = "=" if env == DEBIAN_ENV else "=="
            lines.append(f"{env}: {len(packages)} packages")
            lines += [f"  {n}{sep}{v}" for n, v in _sorted(packages)]
        return "\n".join(lines)


def read_image(image: str) -> ImageContents:
    """Read an image's labels, manifests and Debian packages.

    Raises
    ------
    InputError
        When the image is not on the engine, or carries no manifests.
    EnvironmentProblem
        When no Docker engine answers.
    """
    info = engine.inspect_image(image)
    if info is None:
        raise InputError(f"{image}: no such image on the engine. Build it with "
                         "`nublado-build build PAYLOAD_DIR --tag ...` or pull it "
                         "first.")
    files = engine.read_image_paths(info.id, (MANIFEST_DIR, DPKG_STATUS))
    envs = environments(files)
    if not envs:
        raise InputError(f"{image}: no {MANIFEST_DIR} and no {DPKG_STATUS}; it "
                         "is not an image nublado-build made")
    return ImageContents(image=image, id=info.id, labels=dict(info.labels),
                         files=tuple(sorted(files)), environments=envs)


def diff_doc(a: ImageContents, b: ImageContents,
             diffs: Mapping[str, EnvDiff]) -> dict[str, Any]:
    """Return the ``diff --json`` document."""
    return {"a": {"image": a.image, "id": a.id},
            "b": {"image": b.image, "id": b.id},
            "changed": any(d.changed for d in diffs.values()),
            "environments": {env: d.as_dict() for env, d in diffs.items()}}


def diff_text(a: ImageContents, b: ImageContents,
              diffs: Mapping[str, EnvDiff]) -> str:
    """Return the ``diff`` report: one line per change, per environment."""
    lines = [f"{a.image} -> {b.image}"]
    for env, d in diffs.items():
        if not d.changed:
            lines.append(f"{env}: unchanged")
            continue
        counts = [f"{len(items)} {what}" for what, items in
                  (("added", d.added), ("removed", d.removed),
                   ("upgraded", d.upgraded), ("downgraded", d.downgraded)) if items]
        lines.append(f"{env}: {', '.join(counts)}")
        lines += [f"  + {n} {v}" for n, v in d.added]
        lines += [f"  - {n} {v}" for n, v in d.removed]
        lines += [f"  ^ {n} {was} -> {now}" for n, was, now in d.upgraded]
        lines += [f"  v {n} {was} -> {now}" for n, was, now in d.downgraded]
    return "\n".join(lines)
