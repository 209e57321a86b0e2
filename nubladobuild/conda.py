"""Host-side machinery for the ``conda`` payload kind.

The conda kind never needs a ``conda`` binary.  Everything goes through
`py-rattler <https://pypi.org/project/py-rattler/>`_:

1. :func:`load_environment` reads a conda ``environment.yml``.
2. :func:`solve` resolves it against its channels (``https://`` or
   ``file://``) for a linux-64 glibc container.
3. :func:`write_lock` / :func:`read_lock` store the solutions of one or
   more platforms in conda-lock's own lock file format (``conda-lock.yml``
   v1, :mod:`nubladobuild.condalock`).
4. :func:`fetch_packages` puts every package archive, checked against its
   sha256, into a directory of the Docker build context together with a
   ``records.json`` that ``base/build/conda-install`` reads inside the
   build stage to install exactly those packages with no network.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pathlib
import shutil
import ssl
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from nubladobuild.condalock import (
    PLATFORMS,
    content_hash,
    make_lock,
    platform_virtual_packages,
    read_lock_file,
    records_for_platform,
    write_lock_file,
)
from nubladobuild.errors import CondaError

if TYPE_CHECKING:  # py-rattler is the optional ``conda`` extra: import lazily
    from rattler import GenericVirtualPackage, RepoDataRecord

__all__ = [
    "DEFAULT_VIRTUAL_PACKAGES",
    "PIP_REQUIREMENTS_FILE",
    "RATTLER_VERSION",
    "RECORDS_FILE",
    "RECORDS_FORMAT_VERSION",
    "CondaEnvironment",
    "CondaError",
    "environment_hashes",
    "fetch_packages",
    "load_environment",
    "parse_environment",
    "read_lock",
    "solve",
    "virtual_packages",
    "write_lock",
]

#: Name of the file :func:`fetch_packages` writes next to the archives.
RECORDS_FILE = "records.json"
#: Name of the pip requirements file ``conda-install`` looks for.
PIP_REQUIREMENTS_FILE = "pip-requirements.txt"
#: Version of the ``records.json`` layout (checked by ``conda-install``).
RECORDS_FORMAT_VERSION = 1
#: py-rattler version installed in the throwaway venv of a conda build stage.
RATTLER_VERSION = "0.28.0"
#: Virtual packages of the images we build: linux-64, glibc 2.36 (Debian 12
#: and later), generic x86_64 micro-architecture.
DEFAULT_VIRTUAL_PACKAGES: tuple[tuple[str, str, str], ...] = PLATFORMS["linux-64"]

_IGNORED_CHANNELS = frozenset({"nodefaults"})




@dataclass(frozen=True)
class CondaEnvironment:
    """The parts of a conda ``environment.yml`` the build uses.

    Attributes
    ----------
    name : str or None
        The ``name:`` of the environment, if any.
    channels : list of str
        Channel names or URLs, in priority order (``nodefaults`` dropped).
    dependencies : list of str
        Conda match specs.
    pip : list of str
        Requirements from the ``pip:`` subsection of ``dependencies``.

    """

    name: str | None = None
    channels: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)


def load_environment(path: str | os.PathLike[str]) -> CondaEnvironment:
    """Read a conda environment file.

    Parameters
    ----------
    path : str or os.PathLike
        Path of the ``environment.yml``.

    Returns
    -------
    CondaEnvironment
        The parsed environment.

    Raises
    ------
    CondaError
        If the file cannot be read or does not have the expected shape.

    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CondaError(f"{path}: cannot read environment file: {exc}") from exc
    return parse_environment(text, str(path))


def parse_environment(text: str, where: str) -> CondaEnvironment:
    """Parse the text of a conda environment file.

    Parameters
    ----------
    text : str
        The file's contents.
    where : str
        The file's name, for messages.

    Returns
    -------
    CondaEnvironment
        The parsed environment.

    Raises
    ------
    CondaError
        If the text does not have the expected shape.

    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CondaError(f"{where}: cannot read environment file: {exc}") from exc
    if not isinstance(data, dict):
        raise CondaError(f"{where}: an environment file must be a mapping")
    path = pathlib.Path(where)
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise CondaError(f"{path}: 'name' must be a string")
    channels = _string_list(data.get("channels") or [], path, "channels")
    channels = [c for c in channels if c not in _IGNORED_CHANNELS]

    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise CondaError(f"{path}: 'dependencies' must be a list")
    specs: list[str] = []
    pip: list[str] = []
    for i, dep in enumerate(deps):
        if isinstance(dep, str):
            specs.append(dep.strip())
        elif isinstance(dep, dict) and set(dep) == {"pip"}:
            pip.extend(_string_list(dep["pip"] or [], path, f"dependencies[{i}].pip"))
        else:
            raise CondaError(
                f"{path}: dependencies[{i}] must be a match spec or a 'pip:' list"
            )
    if pip and not any(_spec_name(s) == "pip" for s in specs):
        specs.append("pip")
    return CondaEnvironment(name=name, channels=channels, dependencies=specs, pip=pip)


def _string_list(value: Any, path: pathlib.Path, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CondaError(f"{path}: '{where}' must be a list of strings")
    return [v.strip() for v in value]


def _spec_name(spec: str) -> str:
    head = spec.split("::")[-1]
    for sep in (" ", "=", "<", ">", "!", "~", "["):
        head = head.split(sep)[0]
    return head.lower()


def virtual_packages(
    overrides: Iterable[tuple[str, str, str]] = DEFAULT_VIRTUAL_PACKAGES,
) -> list[GenericVirtualPackage]:
    """Build rattler virtual packages from ``(name, version, build)`` triples.

    Parameters
    ----------
    overrides : iterable of tuple of str
        The virtual packages, by default :data:`DEFAULT_VIRTUAL_PACKAGES`.

    Returns
    -------
    list of rattler.GenericVirtualPackage
        Virtual packages for :func:`rattler.solve`.

    """
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    return [
        GenericVirtualPackage(PackageName(n), Version(v), BuildString(b))
        for n, v, b in overrides
    ]


def solve(
    env: CondaEnvironment,
    channels: list[str] | None = None,
    platform: str = "linux-64",
    *,
    virtual: Iterable[tuple[str, str, str]] | None = None,
) -> list[RepoDataRecord]:
    """Resolve an environment for an image.

    Parameters
    ----------
    env : CondaEnvironment
        The environment to solve.
    channels : list of str, optional
        Channel names or URLs (``https://``, ``file:///``) that replace the
        environment's own channels.
    platform : str, optional
        The conda subdir of the image; ``noarch`` is always added.
    virtual : iterable of tuple of str, optional
        Virtual packages as ``(name, version, build)``; default those of
        ``platform`` (:data:`nubladobuild.condalock.PLATFORMS`).

    Returns
    -------
    list of rattler.RepoDataRecord
        The solved records, sorted by package name.

    Raises
    ------
    CondaError
        If there are no channels or the environment cannot be solved.

    """
    from rattler import Channel
    from rattler import solve as rattler_solve
    from rattler.platform import Subdir

    sources = channels if channels is not None else env.channels
    if not sources:
        raise CondaError("no channels to solve the environment against")
    if virtual is None:
        virtual = platform_virtual_packages(platform)
    try:
        records = asyncio.run(
            rattler_solve(
                sources=[Channel(c) for c in sources],
                specs=env.dependencies,
                platforms=[Subdir(platform), Subdir("noarch")],
                virtual_packages=virtual_packages(virtual),
            )
        )
    except Exception as exc:  # rattler raises its own exception types
        raise CondaError(
            f"cannot solve the conda environment for {platform}:\n{exc}"
        ) from exc
    return sorted(records, key=lambda r: (r.name.normalized, r.subdir, r.file_name))


def environment_hashes(
    env: CondaEnvironment, platforms: Iterable[str] = ("linux-64",)
) -> dict[str, str]:
    """Return the lock content hash of ``env`` for each platform.

    Parameters
    ----------
    env : CondaEnvironment
        The environment, with the channels it is solved against.
    platforms : iterable of str, optional
        Conda platforms.

    Returns
    -------
    dict of str to str
        Platform -> :func:`nubladobuild.condalock.content_hash`.

    """
    return {
        p: content_hash(env.channels, env.dependencies, p) for p in sorted(platforms)
    }


def write_lock(
    solutions: Mapping[str, Sequence[RepoDataRecord]],
    env: CondaEnvironment,
    path: str | os.PathLike[str],
    sources: Sequence[str] = ("environment.yml",),
) -> None:
    """Write solved records to a conda-lock v1 lock file.

    Parameters
    ----------
    solutions : mapping of str to sequence of rattler.RepoDataRecord
        Records per platform, from :func:`solve`.
    env : CondaEnvironment
        The environment, with the channels it was solved against; they and
        the content hash of each platform are recorded in the lock.
    path : str or os.PathLike
        Output path (for example ``conda-lock.yml``).
    sources : sequence of str, optional
        The environment file, relative to the lock's directory.

    Raises
    ------
    CondaError
        When a record has no md5 or sha256.

    Notes
    -----
    The output does not depend on the order of the records.  The ``pip:``
    requirements are not locked here (they are resolved by pip in the image).

    """
    lock = make_lock(
        solutions, env.channels, environment_hashes(env, solutions), sources
    )
    write_lock_file(lock, path)


def read_lock(
    path: str | os.PathLike[str], platform: str = "linux-64"
) -> list[RepoDataRecord]:
    """Read the conda records of one platform from a conda-lock v1 file.

    Parameters
    ----------
    path : str or os.PathLike
        A lock file written by :func:`write_lock` or by conda-lock.
    platform : str, optional
        Platform whose records are returned.

    Returns
    -------
    list of rattler.RepoDataRecord
        The locked records, sorted by package name.

    Raises
    ------
    CondaError
        If the file cannot be parsed (a lock in py-rattler's format, as
        older nublado-build versions wrote, says to re-lock) or has no
        records for ``platform``.

    """
    return records_for_platform(read_lock_file(path), platform, str(path))


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    return ssl.create_default_context()


def _sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_one(url: str, target: pathlib.Path, context: ssl.SSLContext) -> None:
    parsed = urllib.parse.urlparse(url)
    tmp = target.with_name(target.name + ".part")
    if parsed.scheme == "file":
        shutil.copyfile(urllib.request.url2pathname(parsed.path), tmp)
    elif parsed.scheme in ("http", "https"):
        # only http(s) reaches urlopen (file:// is copied above)
        with (
            urllib.request.urlopen(url, context=context, timeout=300) as resp,  # noqa: S310 - our own URL
            tmp.open("wb") as out,
        ):
            shutil.copyfileobj(resp, out, 1 << 20)
    else:
        raise CondaError(f"unsupported package URL: {url}")
    tmp.replace(target)


def fetch_packages(
    records: Sequence[RepoDataRecord],
    dest_dir: str | os.PathLike[str],
    pip_requirements: Sequence[str] = (),
) -> None:
    """Put the package archives of ``records`` into ``dest_dir``.

    Each archive is copied (``file://``) or downloaded (``http(s)://``,
    honouring ``SSL_CERT_FILE``) and checked against the record's sha256;
    an archive already present with the right hash is kept.  Then
    ``records.json`` (the input of ``conda-install``) is written, and
    ``pip-requirements.txt`` when ``pip_requirements`` is not empty.
    Package archives in ``dest_dir`` that belong to no record are removed.

    Parameters
    ----------
    records : sequence of rattler.RepoDataRecord
        Solved or locked records.
    dest_dir : str or os.PathLike
        Target directory (created if missing).
    pip_requirements : sequence of str, optional
        Requirement lines for pip, installed after the conda packages.

    Raises
    ------
    CondaError
        If a record has no sha256, a download fails, or a hash differs.

    """
    dest = pathlib.Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    context = _ssl_context()
    ordered = sorted(records, key=lambda r: (r.name.normalized, r.subdir, r.file_name))
    entries: list[dict[str, Any]] = []
    for record in ordered:
        if record.sha256 is None:
            raise CondaError(f"{record.file_name}: record has no sha256")
        expected = record.sha256.hex()
        target = dest / record.file_name
        if not (target.is_file() and _sha256_file(target) == expected):
            try:
                _fetch_one(record.url, target, context)
            except OSError as exc:
                raise CondaError(f"cannot fetch {record.url}: {exc}") from exc
            actual = _sha256_file(target)
            if actual != expected:
                target.unlink()
                raise CondaError(
                    f"{record.file_name}: sha256 mismatch "
                    f"(expected {expected}, got {actual})"
                )
        entries.append(_archive_metadata(json.loads(record.to_json()), target))
    keep = {r.file_name for r in ordered} | {RECORDS_FILE, PIP_REQUIREMENTS_FILE}
    for stale in dest.iterdir():
        if stale.name.endswith((".conda", ".tar.bz2")) and stale.name not in keep:
            stale.unlink()
    doc = {"version": RECORDS_FORMAT_VERSION, "packages": entries}
    _write_atomic(dest / RECORDS_FILE, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    pip_file = dest / PIP_REQUIREMENTS_FILE
    if pip_requirements:
        _write_atomic(pip_file, "".join(f"{line}\n" for line in pip_requirements))
    elif pip_file.exists():
        pip_file.unlink()


def _archive_metadata(entry: dict[str, Any], archive: pathlib.Path) -> dict[str, Any]:
    """Take ``noarch`` and ``build_number`` from the archive's index.json.

    A conda-lock file does not record them (:mod:`nubladobuild.condalock`);
    for solved records they are the same as the repodata's.
    """
    from rattler import IndexJson

    try:
        index = IndexJson.from_package_archive(archive)
    except Exception as exc:  # rattler raises its own exception types
        raise CondaError(f"{archive.name}: cannot read info/index.json: {exc}") from exc
    entry = dict(entry, build_number=index.build_number)
    entry.pop("noarch", None)
    if index.noarch.python:
        entry["noarch"] = "python"
    elif index.noarch.generic:
        entry["noarch"] = "generic"
    return entry


def _write_atomic(path: pathlib.Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
