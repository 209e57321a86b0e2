"""The pairing check: every kernel-side widget or renderer has its frontend.

A JupyterLab extension has two halves: the frontend, which must be in the
lab venv, and the Python half, which must be in the payload environment
that runs the kernel. When they disagree the notebook shows "Error
displaying widget" or nothing at all. Which kernel package needs which lab
package, in which versions, is data: ``nubladobuild/data/pairing.yaml``,
validated when it is loaded (:func:`load_table`). :func:`match` compares
two package sets (the image's manifests under
``/usr/local/share/jupyterlab/versions-installed/``) against it;
:func:`check_image` reads them from a built image. The build runs it
before tagging (:mod:`nubladobuild.images`), the payload contract on any
image (``test_lab_frontends_pair_with_payload``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from nubladobuild.engine import read_image_files
from nubladobuild.errors import BuildFailed, NubladoError

#: The pairing table shipped with the package.
TABLE_PATH = Path(__file__).resolve().parent / "data" / "pairing.yaml"
#: Where the base and each payload record what they installed.
MANIFEST_DIR = "/usr/local/share/jupyterlab/versions-installed"
#: The lab venv's manifest (``base/build/finish-base``).
LAB_MANIFEST = "jupyterlab.txt"
#: The image label that records ``lab.pairing`` (the contract reads it).
PAIRING_LABEL = "io.nublado.payload.lab-pairing"
#: What ``lab.pairing`` may say.
PairingMode = Literal["fail", "warn"]


class TableInvalid(NubladoError):
    """The pairing table does not load: a packaging error, not user input."""


def _specifier(value: str) -> str:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise ValueError(f"{value!r} is not a PEP 440 version specifier "
                         "(e.g. '>=3,<4')") from None
    return value


def _valid_name(value: str) -> str:
    try:
        canonicalize_name(value, validate=True)
    except Exception:  # packaging raises InvalidName (a ValueError)
        raise ValueError(f"{value!r} is not a valid distribution name") from None
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=100),
                 AfterValidator(_valid_name)]
Spec = Annotated[str, StringConstraints(max_length=200), AfterValidator(_specifier)]


class Pair(BaseModel):
    """One row: a kernel package and the lab package its frontend is in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kernel: Name
    kernel_versions: Spec = ""
    lab: Name
    lab_versions: Spec | None = None
    same: Literal["major", "minor"] | None = None
    profile: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,63}$")] | None \
        = None
    why: Annotated[str, StringConstraints(min_length=1, max_length=2000)]

    @model_validator(mode="after")
    def _one_range(self) -> Pair:
        if (self.lab_versions is None) == (self.same is None):
            raise ValueError("give exactly one of lab_versions (a fixed range) "
                             "and same (major or minor, from the kernel's version)")
        return self

    def applies_to(self, version: Version) -> bool:
        """Return whether this row is for this version of its kernel package."""
        return SpecifierSet(self.kernel_versions).contains(version, prereleases=True)

    def needs(self, version: Version) -> str:
        """Return the lab versions that pair with kernel ``version`` (PEP 440)."""
        if self.lab_versions is not None:
            return self.lab_versions.replace(" ", "")
        major, minor = (version.release + (0,))[:2]
        return f"=={major}.*" if self.same == "major" else f"=={major}.{minor}.*"


class Table(BaseModel):
    """The pairing table: a format version and its rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    pairs: list[Pair] = Field(min_length=1)

    @model_validator(mode="after")
    def _rows_distinct(self) -> Table:
        seen: set[tuple[str, str, str]] = set()
        for pair in self.pairs:
            key = (canonicalize_name(pair.kernel), pair.kernel_versions,
                   canonicalize_name(pair.lab))
            if key in seen:
                raise ValueError(f"two rows for {pair.kernel} "
                                 f"{pair.kernel_versions or '(all versions)'} -> "
                                 f"{pair.lab}")
            seen.add(key)
        return self


def parse_table(text: str, source: str) -> Table:
    """Parse and validate a pairing table.

    Parameters
    ----------
    text
        The YAML document.
    source
        Its file name, for messages.

    Returns
    -------
    Table
        The validated table.

    Raises
    ------
    TableInvalid
        Naming each problem (row and field).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TableInvalid(f"{source}: not valid YAML: {exc}") from None
    try:
        return Table.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors())
        raise TableInvalid(f"{source}: invalid pairing table: {problems}") from None


@cache
def load_table(path: Path = TABLE_PATH) -> Table:
    """Load the pairing table (once per process)."""
    return parse_table(path.read_text(encoding="utf-8"), str(path))


@dataclass(frozen=True)
class Mismatch:
    """A kernel package whose frontend the lab lacks or has in other versions."""

    kernel: str
    kernel_version: str
    lab: str
    needs: str
    lab_version: str | None
    profile: str | None = None

    @property
    def message(self) -> str:
        """Return the one-line explanation: both packages, versions, the fix."""
        head = (f"payload has {self.kernel} {self.kernel_version}, which needs "
                f"{self.lab}{self.needs} in the lab")
        if self.lab_version is None:
            fix = (f"add `{self.lab}{self.needs}` to lab.extensions in "
                   "payload.yaml")
            if self.profile:
                fix += f", or build on the {self.profile} base profile"
            return f"{head}; the lab has none: {fix}"
        # lab.extensions cannot change what the base's lab venv already
        # has, so the way out is the base or the payload's own pin.
        return (f"{head}; the lab has {self.lab} {self.lab_version}, out of "
                f"range: build on a base whose lab has `{self.lab}{self.needs}`, "
                f"or pin the payload's {self.kernel} to a release that pairs "
                f"with {self.lab} {self.lab_version}")


def _versions(packages: Mapping[str, str]) -> dict[str, tuple[str, Version | None]]:
    out: dict[str, tuple[str, Version | None]] = {}
    for name, text in packages.items():
        try:
            version: Version | None = Version(text)
        except InvalidVersion:
            version = None
        out[canonicalize_name(name)] = (text, version)
    return out


def match(lab: Mapping[str, str], payload: Mapping[str, str],
          table: Table | None = None) -> list[Mismatch]:
    """Return the payload's kernel packages whose frontend the lab lacks.

    Parameters
    ----------
    lab
        The lab venv's distributions: name -> version.
    payload
        The payload environment's distributions: name -> version.
    table
        The pairing table; default the shipped one.

    Returns
    -------
    list of Mismatch
        In table order; empty when every frontend pairs.
    """
    rows = (table or load_table()).pairs
    lab_versions, payload_versions = _versions(lab), _versions(payload)
    found: list[Mismatch] = []
    for pair in rows:
        kernel = payload_versions.get(canonicalize_name(pair.kernel))
        if kernel is None or kernel[1] is None or not pair.applies_to(kernel[1]):
            continue
        needs = pair.needs(kernel[1])
        have = lab_versions.get(canonicalize_name(pair.lab))
        if have is not None and have[1] is not None and SpecifierSet(needs).contains(
                have[1], prereleases=True):
            continue
        found.append(Mismatch(kernel=pair.kernel, kernel_version=kernel[0],
                              lab=pair.lab, needs=needs,
                              lab_version=None if have is None else have[0],
                              profile=pair.profile))
    return found


def parse_manifest(text: str) -> dict[str, str]:
    """Return ``name -> version`` from a manifest of ``name==version`` lines.

    Other lines (the payload manifest starts with ``Python 3.x.y``) are
    skipped.
    """
    packages: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name and version:
            packages[name] = version
    return packages


class ManifestMissing(NubladoError):
    """An image lacks a manifest the pairing check reads."""


def payload_manifest(payload: str) -> str:
    """Return the file name of a payload's manifest (``base/build/write-manifest``)."""
    return f"payload-{payload}.txt"


def lab_extensions_manifest(payload: str) -> str:
    """Return the file name of what a payload's ``lab:`` step added to the lab venv."""
    return f"lab-extensions-{payload}.txt"


def check_image(image: str, payload: str) -> list[Mismatch]:
    """Read an image's lab and payload manifests; return the mismatches.

    The lab side is the base's lab venv (``jupyterlab.txt``) plus what the
    payload's ``lab:`` section added to it (``lab-extensions-<name>.txt``,
    when the payload has one).

    Parameters
    ----------
    image
        An image ID or reference on the engine.
    payload
        The payload's name (its manifest is ``payload-<name>.txt``).

    Raises
    ------
    ManifestMissing
        When either manifest is not in the image.
    """
    wanted = (LAB_MANIFEST, payload_manifest(payload))
    added = lab_extensions_manifest(payload)
    files = read_image_files(image, MANIFEST_DIR, (*wanted, added))
    missing = [name for name in wanted if name not in files]
    if missing:
        raise ManifestMissing(
            f"{image}: no {', '.join(f'{MANIFEST_DIR}/{m}' for m in missing)}; "
            "the pairing check reads what the lab venv and the payload "
            "installed from there (nublado-build writes both)")
    lab = parse_manifest(files[LAB_MANIFEST].decode("utf-8", "replace"))
    lab.update(parse_manifest(files.get(added, b"").decode("utf-8", "replace")))
    return match(lab, parse_manifest(files[wanted[1]].decode("utf-8", "replace")))


def report(mismatches: list[Mismatch], payload: str) -> str:
    """Return the failure text for a payload's mismatches (one line each)."""
    count = len(mismatches)
    noun = "frontend does" if count == 1 else "frontends do"
    lines = "\n".join(f"  - {m.message}" for m in mismatches)
    return (f"payload {payload}: {count} lab {noun} not pair with the payload's "
            f"kernel packages:\n{lines}")


@dataclass(frozen=True)
class Pairing:
    """What the pairing check found in a built payload image."""

    mode: PairingMode
    mismatches: tuple[Mismatch, ...]
    seconds: float

    @property
    def warnings(self) -> list[str]:
        """Return the mismatch messages (the build's warnings in ``warn`` mode)."""
        return [m.message for m in self.mismatches]


def verify_build(image_id: str, payload: str, mode: PairingMode) -> Pairing:
    """Run the pairing check on a freshly built, untagged payload image.

    Parameters
    ----------
    image_id
        The built image.
    payload
        The payload's name.
    mode
        ``lab.pairing``: ``fail`` raises on a mismatch, ``warn`` returns it.

    Raises
    ------
    BuildFailed
        In ``fail`` mode, with every mismatch; or when a manifest is missing.
    """
    start = time.monotonic()
    try:
        mismatches = check_image(image_id, payload)
    except ManifestMissing as exc:
        raise BuildFailed(f"payload {payload}: pairing check: {exc.message}. "
                          "No image was tagged.") from None
    if mismatches and mode == "fail":
        raise BuildFailed(
            f"{report(mismatches, payload)}\nNo image was tagged; existing tags "
            "are unchanged. To build anyway, set `lab: {pairing: warn}` in "
            "payload.yaml.")
    return Pairing(mode=mode, mismatches=tuple(mismatches),
                   seconds=time.monotonic() - start)
