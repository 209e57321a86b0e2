"""Image tag policies: parse, order and check the version part of a tag.

Three policies, chosen per payload with ``tags: {policy: ...}``:

``rsp``
    The Rubin Science Platform scheme (SQR-059): ``w_YYYY_WW`` weekly,
    ``d_YYYY_MM_DD`` daily, ``rX_Y_Z`` release, ``rX_Y_Z_rcN`` release
    candidate and ``exp_<name>`` experimental. Weekly, daily and release
    tags may carry a ``_cNNNN.NNN`` cycle and an ``_rspN`` build suffix
    (``w_2025_30_c0047.001_rsp2``).
``semver``
    Semantic Versioning 2.0 (``1.4.2``, ``2.0.0-rc.1+build.5``), with an
    optional leading ``v``.
``calver``
    Calendar versions ``YYYY.MM[.MICRO]``, optionally ``-rcN``
    (``2025.07``, ``2025.07.2``, ``2025.7.0-rc1``).

Every policy also accepts the floating alias ``latest``; ``rsp`` also
accepts ``recommended``, ``latest_release``, ``latest_weekly`` and
``latest_daily``. Aliases sort before every version.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import total_ordering
from pathlib import Path

from nubladobuild.errors import InputError, TagError
from nubladobuild.refs import TAG_PATTERN, BadReference, parse_reference
from nubladobuild.schema import Payload

#: Policies payload.yaml may name.
POLICIES = ("rsp", "semver", "calver")
#: Docker's own rule for the tag part of an image reference.
DOCKER_TAG = TAG_PATTERN
#: Floating tags accepted by each policy (never versions themselves).
ALIASES: dict[str, tuple[str, ...]] = {
    "rsp": ("latest", "recommended", "latest_release", "latest_weekly",
            "latest_daily"),
    "semver": ("latest",),
    "calver": ("latest",),
}
#: What each policy's tags look like, for messages.
EXPECTED: dict[str, str] = {
    "rsp": "w_YYYY_WW (weekly), d_YYYY_MM_DD (daily), rX_Y_Z (release), "
           "rX_Y_Z_rcN (release candidate) or exp_<name> (experimental), "
           "optionally with _cNNNN.NNN and _rspN suffixes",
    "semver": "MAJOR.MINOR.PATCH[-prerelease][+build], e.g. 1.4.2 or v2.0.0-rc.1",
    "calver": "YYYY.MM[.MICRO][-rcN], e.g. 2025.07 or 2025.07.2",
}

_SUFFIX = r"(?:_c(?P<cycle>\d+)\.(?P<cbuild>\d+))?(?:_rsp(?P<rsp>\d+))?"
_RSP = [
    ("release", re.compile(
        rf"^r(?P<a>\d+)_(?P<b>\d+)_(?P<c>\d+){_SUFFIX}$")),
    ("candidate", re.compile(
        rf"^r(?P<a>\d+)_(?P<b>\d+)_(?P<c>\d+)_rc(?P<rc>\d+){_SUFFIX}$")),
    ("weekly", re.compile(rf"^w_(?P<a>\d{{4}})_(?P<b>\d{{2}}){_SUFFIX}$")),
    ("daily", re.compile(
        rf"^d_(?P<a>\d{{4}})_(?P<b>\d{{2}})_(?P<c>\d{{2}}){_SUFFIX}$")),
    ("experimental", re.compile(r"^exp_(?P<rest>[A-Za-z0-9_.-]+)$")),
]
#: Sort rank of rsp kinds (oldest-first order); candidates and releases
#: share one rank and order by version, a candidate before its release.
_RSP_RANK = {"experimental": 1, "daily": 2, "weekly": 3, "candidate": 4,
             "release": 4}
_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")
_CALVER = re.compile(
    r"^(?P<year>\d{4})\.(?P<month>\d{1,2})(?:\.(?P<micro>\d+))?(?:-rc(?P<rc>\d+))?$")


@total_ordering
@dataclass(frozen=True, eq=False)
class Tag:
    """A parsed tag: its policy, kind and a key that orders versions.

    ``key`` sorts older versions first within a policy; aliases and
    experimental tags sort before every version (they name no release).
    """

    text: str
    policy: str
    kind: str
    key: tuple[object, ...]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tag):
            return NotImplemented
        return (self.policy, self.key, self.text) == (other.policy, other.key,
                                                      other.text)

    def __hash__(self) -> int:
        return hash((self.policy, self.text))

    def __lt__(self, other: Tag) -> bool:
        return (self.key, self.text) < (other.key, other.text)


def _suffix_key(match: re.Match[str]) -> tuple[int, int, int]:
    cycle, cbuild, rsp = (match.group(n) for n in ("cycle", "cbuild", "rsp"))
    return (int(cycle or 0), int(cbuild or 0), int(rsp or 0))


def _parse_rsp(text: str) -> Tag:
    for kind, pattern in _RSP:
        match = pattern.match(text)
        if not match:
            continue
        if kind == "experimental":
            return Tag(text, "rsp", kind, (1, 0, (), ()))
        a, b = int(match.group("a")), int(match.group("b"))
        if kind == "weekly":
            if not 1 <= b <= 53:
                raise TagError(f"{text!r}: week {b} is not 01..53")
            when: tuple[int, ...] = (a, b)
        elif kind == "daily":
            c = int(match.group("c"))
            try:
                datetime.date(a, b, c)
            except ValueError:
                raise TagError(f"{text!r}: {a:04d}-{b:02d}-{c:02d} is not a "
                               "date") from None
            when = (a, b, c)
        else:
            c = int(match.group("c"))
            # A candidate precedes its release: rc sorts below "final" (inf).
            rc = int(match.group("rc")) if kind == "candidate" else 10**9
            when = (a, b, c, rc)
        return Tag(text, "rsp", kind, (_RSP_RANK[kind], 0, when, _suffix_key(match)))
    raise TagError(f"{text!r} is not an rsp tag; expected {EXPECTED['rsp']}")


def _pre_key(pre: str | None) -> tuple[object, ...]:
    # SemVer 11: a version without pre-release ranks above any pre-release;
    # numeric identifiers compare numerically and below alphanumeric ones.
    if pre is None:
        return (1,)
    parts: list[tuple[int, int, str]] = []
    for item in pre.split("."):
        parts.append((0, int(item), "") if item.isdigit() else (1, 0, item))
    return (0, tuple(parts))


def _parse_semver(text: str) -> Tag:
    match = _SEMVER.match(text)
    if not match:
        raise TagError(f"{text!r} is not a semver tag; expected "
                       f"{EXPECTED['semver']}")
    version = tuple(int(match.group(n)) for n in ("major", "minor", "patch"))
    kind = "prerelease" if match.group("pre") else "release"
    return Tag(text, "semver", kind, (2, 0, version, _pre_key(match.group("pre"))))


def _parse_calver(text: str) -> Tag:
    match = _CALVER.match(text)
    if not match:
        raise TagError(f"{text!r} is not a calver tag; expected "
                       f"{EXPECTED['calver']}")
    year, month = int(match.group("year")), int(match.group("month"))
    if not 1 <= month <= 12:
        raise TagError(f"{text!r}: month {month} is not 1..12")
    micro = int(match.group("micro") or 0)
    rc = match.group("rc")
    kind = "candidate" if rc else "release"
    return Tag(text, "calver", kind,
               (2, 0, (year, month, micro), (0, int(rc)) if rc else (1, 0)))


_PARSERS = {"rsp": _parse_rsp, "semver": _parse_semver, "calver": _parse_calver}


def parse_tag(text: str, policy: str) -> Tag:
    """Parse the version part of an image tag under a policy.

    Parameters
    ----------
    text
        The tag after the colon (``w_2025_30``, ``1.2.3``...).
    policy
        ``rsp``, ``semver`` or ``calver``.

    Returns
    -------
    Tag
        The parsed tag; tags of one policy sort oldest first.

    Raises
    ------
    TagError
        When the tag does not follow the policy, with what was expected.

    """
    if policy not in _PARSERS:
        raise TagError(f"unknown tag policy {policy!r}; use one of "
                       f"{', '.join(POLICIES)}")
    if not DOCKER_TAG.match(text):
        raise TagError(f"{text!r} is not a valid Docker tag (letters, digits, "
                       "'_', '.', '-', at most 128, not starting with '.' or '-')")
    if text in ALIASES[policy]:
        return Tag(text, policy, "alias", (0, 0, (), ()))
    return _PARSERS[policy](text)


def sort_tags(tags: list[str], policy: str, newest_first: bool = False) -> list[str]:
    """Return ``tags`` ordered by version under ``policy``.

    Parameters
    ----------
    tags
        Tags to order; every one must follow the policy.
    policy
        ``rsp``, ``semver`` or ``calver``.
    newest_first
        Reverse the order (newest release first, aliases last).

    Returns
    -------
    list of str
        For rsp, by kind (aliases, experimental, daily, weekly, then
        candidates and releases in version order), then by date or version.

    Raises
    ------
    TagError
        When a tag does not follow the policy.

    """
    parsed = sorted(parse_tag(t, policy) for t in tags)
    ordered = [t.text for t in parsed]
    return ordered[::-1] if newest_first else ordered


def split_reference(reference: str) -> tuple[str, str]:
    """Split ``[registry/]name[:tag]`` into name and tag (``latest`` if none).

    Raises
    ------
    InputError
        When ``reference`` is not a valid image reference.
    """
    try:
        ref = parse_reference(reference)
    except BadReference as exc:
        raise InputError(f"--tag {reference!r}: {exc}") from None
    return ref.repository, ref.tag_or_latest


def check_reference(reference: str, policy: str) -> Tag:
    """Check the tag of an image reference against a policy.

    Parameters
    ----------
    reference
        An image reference as given to ``--tag`` (``sciplat-lab:w_2025_30``).
    policy
        The payload's tag policy.

    Returns
    -------
    Tag
        The parsed tag.

    Raises
    ------
    TagError
        With a message naming the reference, the policy and what it expects.

    """
    _, tag = split_reference(reference)
    try:
        return parse_tag(tag, policy)
    except TagError as exc:
        raise TagError(f"--tag {reference}: {exc}") from None


def check_build_tags(payload: Payload, yaml_path: Path,
                     references: Sequence[str]) -> list[Tag]:
    """Check ``--tag`` references against the payload's tag policy.

    The policy applies when payload.yaml declares ``tags:``; payloads that
    do not (scratch and test payloads) may use any valid Docker tag.

    Parameters
    ----------
    payload
        The validated payload.
    yaml_path
        Its payload.yaml, for messages.
    references
        The image references given to ``nublado-build build --tag``.

    Returns
    -------
    list of Tag
        The parsed tags (empty when the payload declares no policy).

    Raises
    ------
    InputError
        Naming the reference, the payload's policy and what it expects.

    """
    if "tags" not in payload.model_fields_set:
        for reference in references:
            _, tag = split_reference(reference)
            if not DOCKER_TAG.match(tag):
                raise InputError(f"--tag {reference}: {tag!r} is not a valid Docker "
                                 "tag (letters, digits, '_', '.', '-', at most 128)")
        return []
    policy = payload.tags.policy
    parsed = []
    for reference in references:
        try:
            parsed.append(check_reference(reference, policy))
        except TagError as exc:
            raise InputError(f"{exc} ({yaml_path}: tags.policy is {policy})") \
                from None
    return parsed
