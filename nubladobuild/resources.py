"""Locate the files that ship with nubladobuild (base/, Dockerfile.base, compat/).

In a source checkout they sit at the repository root; in an installed wheel
they are package data under ``nubladobuild/_data``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    """Return the directory holding ``Dockerfile.base``, ``base/`` and ``compat/``."""
    checkout = _PACKAGE.parent
    if (checkout / "Dockerfile.base").is_file() and (checkout / "base").is_dir():
        return checkout
    return _PACKAGE / "_data"


def templates_dir() -> Path:
    """Return the directory of the Jinja templates."""
    return _PACKAGE / "templates"


def contract_dir() -> Path:
    """Return the directory of the shipped image contract test suite."""
    return _PACKAGE / "contract"
