"""Image references: the one place that parses ``[registry/]name[:tag][@digest]``.

Follows Docker's reference grammar (distribution/reference): lowercase
path components separated by ``/``, an optional registry host with port as
the first component, a tag of at most 128 characters and an optional
``sha256`` digest. Used for ``--base``, ``--tag``, transplant sources and
tagging built images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (r"(?:localhost|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)"
           r"(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?))*)(?::[0-9]+)?")
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>sha256:[a-f0-9]{{64}}))?\Z")
#: A tag on its own (the part after ':').
TAG_PATTERN = re.compile(rf"^{_TAG}\Z")
MAX_LENGTH = 255


class BadReference(ValueError):
    """A string is not a valid image reference.

    A ``ValueError`` so that pydantic validators report it; every CLI path
    turns it into an :class:`~nubladobuild.errors.InputError` (exit 2).
    """


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference.

    Attributes
    ----------
    repository : str
        Registry (when given) and path: ``registry.example.org:5000/x/y``.
    tag : str or None
        The tag, None when the reference has none.
    digest : str or None
        ``sha256:...`` when pinned.
    """

    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def tag_or_latest(self) -> str:
        """Return the tag, ``latest`` when none is given (Docker's default)."""
        return self.tag or "latest"

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _first_is_domain(reference: str) -> bool:
    first, sep, _ = reference.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost"
                          or first != first.lower())


def parse_reference(reference: str) -> ImageRef:
    """Parse an image reference.

    Parameters
    ----------
    reference
        Such as ``sciplat-lab:w_2025_30`` or
        ``registry.example.org:5000/lsst/stack@sha256:...``.

    Returns
    -------
    ImageRef
        Its repository, tag and digest.

    Raises
    ------
    BadReference
        Saying what is wrong, for references Docker would refuse.
    """
    if not reference:
        raise BadReference("an image reference cannot be empty")
    if len(reference) > MAX_LENGTH:
        raise BadReference(f"longer than {MAX_LENGTH} characters")
    match = _REFERENCE.match(reference)
    if match is None or (match.group("domain") is None
                         and _first_is_domain(reference)):
        raise BadReference(
            f"{reference!r} is not a valid image reference: use "
            "[registry[:port]/]name[:tag][@sha256:digest] with a lowercase name "
            "of letters, digits and . _ - /, and a tag of letters, digits, _ . -")
    domain, path = match.group("domain"), match.group("path")
    repository = f"{domain}/{path}" if domain else path
    return ImageRef(repository, match.group("tag"), match.group("digest"))


def _valid(value: str) -> str:
    parse_reference(value)
    return value


#: A pydantic field type for image references.
ImageRefField = Annotated[str, AfterValidator(_valid)]
