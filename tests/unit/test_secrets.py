"""Build secrets come from explicit flags first, then pip's own configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from nubladobuild.errors import InputError
from nubladobuild.secrets import SecretFiles, host_secrets


def test_pip_config_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                 ) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("# test bundle\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\ncert = {bundle}\nindex-url = https://u:t@index.test/simple\n"
                    "extra-index-url = file:///local/simple https://extra.test/simple\n")
    for var in ("PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    secrets = host_secrets()
    assert secrets.ca_bundle == bundle
    assert secrets.index_url == "https://u:t@index.test/simple"
    # A file:// index on this host is unreachable from inside a build.
    assert secrets.extra_index_url == "https://extra.test/simple"


def test_explicit_values_win_and_no_host_config(tmp_path: Path) -> None:
    bundle = tmp_path / "mine.pem"
    bundle.write_text("x")
    secrets = host_secrets(bundle, "https://i.test/simple", use_host_config=False)
    assert secrets.ca_bundle == bundle and secrets.index_url == "https://i.test/simple"
    assert secrets.extra_index_url is None


def test_missing_bundle_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--ca-bundle"):
        host_secrets(tmp_path / "nope.pem")


def test_secret_files_are_private_and_removed(tmp_path: Path) -> None:
    files = SecretFiles(host_secrets(None, "https://u:secret@i.test/simple",
                                     use_host_config=False))
    args = files.__enter__()
    src = Path(args[args.index("--secret") + 1].split("src=")[1])
    assert src.read_text() == "https://u:secret@i.test/simple"
    assert src.stat().st_mode & 0o077 == 0
    files.__exit__(None, None, None)
    assert not src.exists()
