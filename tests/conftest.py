"""Shared test configuration: marks and the Docker-engine rule.

Integration tests need a real Docker engine. Without one they are skipped on
a developer's machine, but with CI=true they FAIL: CI must run them.
"""

from __future__ import annotations

import os

import pytest

#: Tag of every image the tests build; parallel checkouts set their own.
TEST_TAG = os.environ.get("NUBLADO_TEST_TAG", "test")


def in_ci() -> bool:
    """Return whether we run under CI (CI=true or 1)."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a prerequisite is missing."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI=true and {reason}: integration tests must run in CI")
    pytest.skip(reason)
