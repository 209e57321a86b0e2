"""Build secrets: the CA bundle and package index settings.

They reach a build only as BuildKit secrets (``--secret id=...``), mounted
under /run/secrets for the RUN steps that install packages, and never land
in a layer. Defaults come from pip's own configuration on the host.
"""

from __future__ import annotations

import configparser
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nubladobuild.errors import InputError
from nubladobuild.fields import control_characters

_SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt",
                   "/etc/pki/tls/certs/ca-bundle.crt")


@dataclass(frozen=True)
class BuildSecrets:
    """What to hand to a build as secrets; every field is optional."""

    ca_bundle: Path | None = None
    index_url: str | None = None
    extra_index_url: str | None = None


def _pip_config_files() -> list[Path]:
    """Return pip's configuration files in pip's order (later ones win)."""
    xdg_dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d]
    files.append(Path("/etc/pip.conf"))
    config_home = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    files += [Path.home() / ".pip" / "pip.conf", config_home / "pip" / "pip.conf",
              Path(sys.prefix) / "pip.conf"]
    env_file = os.environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    if env_file:
        files.append(Path(env_file))
    return files


def _pip_config() -> dict[str, str]:
    """Return the host's pip settings from pip's own files, [global] then [install].

    Read directly (configparser) rather than through ``pip config list``: a
    pip subprocess costs a few hundred milliseconds on every command.
    """
    config: dict[str, str] = {}
    for path in _pip_config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                config.update(parser.items(section))
    return config


def _remote(urls: str | None) -> str | None:
    """Keep only URLs a build can reach (not file:// paths on this host)."""
    if not urls:
        return None
    kept = [u for u in urls.split() if u.startswith(("http://", "https://"))]
    return " ".join(kept) or None


def host_secrets(ca_bundle: Path | None = None, index_url: str | None = None,
                 use_host_config: bool = True) -> BuildSecrets:
    """Return the secrets for a build: explicit values first, then pip's config.

    Parameters
    ----------
    ca_bundle
        A PEM bundle to trust inside the build (a corporate proxy's CA).
    index_url
        A package index URL, credentials included if needed.
    use_host_config
        Fall back on pip's configuration, ``PIP_CERT``/``SSL_CERT_FILE`` and
        the system bundle.
    """
    config = _pip_config() if use_host_config else {}
    if ca_bundle is None and use_host_config:
        for candidate in (os.environ.get("PIP_CERT"), config.get("cert"),
                          os.environ.get("SSL_CERT_FILE"), *_SYSTEM_BUNDLES):
            if candidate and Path(candidate).is_file():
                ca_bundle = Path(candidate)
                break
    if ca_bundle is not None and not ca_bundle.is_file():
        what = "file does not exist"
        if ca_bundle.exists():
            kinds = {stat.S_ISFIFO: "is a named pipe (FIFO)", stat.S_ISSOCK:
                     "is a socket", stat.S_ISDIR: "is a directory",
                     stat.S_ISCHR: "is a device file", stat.S_ISBLK: "is a device file"}
            mode = ca_bundle.stat().st_mode
            what = next((v for k, v in kinds.items() if k(mode)), "is not a file")
        raise InputError(f"--ca-bundle {ca_bundle}: {what}. Pass a PEM file with "
                         "the certificates to trust inside the build.")
    if index_url is not None:
        found = control_characters(index_url)
        if found:
            raise InputError(f"--index-url: contains {found}; pass one URL")
    if index_url is None and use_host_config:
        index_url = _remote(os.environ.get("PIP_INDEX_URL") or config.get("index-url"))
    extra = _remote(os.environ.get("PIP_EXTRA_INDEX_URL")
                    or config.get("extra-index-url")) if use_host_config else None
    return BuildSecrets(ca_bundle=ca_bundle, index_url=index_url, extra_index_url=extra)


class SecretFiles:
    """Materialize secrets as private temporary files for ``--secret`` flags."""

    def __init__(self, secrets: BuildSecrets) -> None:
        self._secrets = secrets
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> list[str]:
        """Write the files and return the ``--secret`` arguments."""
        self._dir = tempfile.TemporaryDirectory(prefix="nublado-secrets-")
        root = Path(self._dir.name)
        args: list[str] = []
        if self._secrets.ca_bundle is not None:
            args += ["--secret", f"id=ca,src={self._secrets.ca_bundle}"]
        for name, value in (("pip_index_url", self._secrets.index_url),
                            ("pip_extra_index_url", self._secrets.extra_index_url)):
            if value:
                path = root / name
                path.touch(mode=0o600)
                path.write_text(value)
                args += ["--secret", f"id={name},src={path}"]
        return args

    def __exit__(self, *exc: object) -> None:
        """Remove the files."""
        if self._dir is not None:
            self._dir.cleanup()


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def mask_url(text: str) -> str:
    """Replace the credentials of every URL in ``text`` with ``***``."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)


def mask_secrets(text: str, secrets: BuildSecrets | None = None) -> str:
    """Mask URL credentials and the exact secret values in ``text``.

    Parameters
    ----------
    text
        A log line, message or document.
    secrets
        The build's secrets; their index URLs are masked wherever they
        appear, with or without credentials.
    """
    if secrets is not None:
        for value in (secrets.index_url, secrets.extra_index_url):
            for url in (value or "").split():
                if "@" in url:
                    text = text.replace(url, mask_url(url))
    return mask_url(text)


_REF_USERINFO = re.compile(r"^[^/@\s]+@(?!sha256:)")


def mask_reference(reference: str) -> str:
    """Mask credentials in an image reference or registry URL.

    ``user:token@registry/x`` and ``https://user:token@registry/x`` become
    ``***@registry/x`` and ``https://***@registry/x``; a digest
    (``name@sha256:...``) is kept.
    """
    return _REF_USERINFO.sub("***@", mask_url(reference))
