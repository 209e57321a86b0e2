"""Image tag policies: parse, order and check the version part of a tag.

Three policies, chosen per payload with ``tags: {policy: ...}``:

``rsp``
    The Rubin Science Platform scheme (SQR-059), read the way the Nublado
    controller reads it (``nublado.models.images.RSPImageTag``):
    ``w_YYYY_WW`` weekly, ``d_YYYY_MM_DD`` daily, ``rX_Y_Z`` release (and
    the legacy ``rXYZ`` such as ``r170``), ``rX_Y_Z_rcN`` release candidate
    and ``exp_<anything>`` experimental. Weekly, daily, release and
    candidate tags may carry, in this order, a ``_cNNNN.NNN`` cycle, an
    ``_rspN`` build number, an ``_extra`` part and an architecture suffix
    (``w_2025_30_c0047.001_rsp2_extra-amd64``). Any other tag is kept as
    type Unknown, as the controller keeps it; the aliases (``recommended``,
    ``latest``, ``latest_release``, ``latest_weekly``, ``latest_daily``)
    are type Alias.
``semver``
    Semantic Versioning 2.0 (``1.4.2``, ``2.0.0-rc.1``), with an optional
    leading ``v``; ``+build`` metadata is semver but not a Docker tag.
``calver``
    Calendar versions ``YYYY.MM[.MICRO]``, optionally ``-rcN``
    (``2025.07``, ``2025.07.2``, ``2025.7.0-rc1``).

The Nublado controller knows only the rsp scheme. It sees semver and calver
tags as Unknown (display name: the tag itself): they are listed in the
spawner's dropdown but never prepulled nor put on the main menu unless the
controller pins them (``prepuller.pin``) or one is the recommended tag.
Beware a pre-release made of one ``-word`` (``1.0.0-alpha``,
``2025.07.2-rc1``): the controller reads it as an architecture suffix and
hides the tag from the menu and the dropdown; ``2.0.0-rc.1`` is shown.

Parsing and sorting never fail on a tag: a tag that does not follow its
policy parses as kind ``unknown`` with a ``problem``. Only the checks for
``nublado-build build --tag`` (`check_reference`, `check_build_tags`) refuse
tags, and for rsp they accept only the canonical SQR-059 shapes.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import total_ordering
from pathlib import Path

from nubladobuild.errors import InputError, TagError
from nubladobuild.fields import control_characters
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
           "optionally with _cNNNN.NNN, _rspN, _<extra> and -amd64/-arm64 "
           "suffixes",
    "semver": "MAJOR.MINOR.PATCH[-prerelease][+build], e.g. 1.4.2 or v2.0.0-rc.1",
    "calver": "YYYY.MM[.MICRO][-rcN], e.g. 2025.07 or 2025.07.2",
}

# The controller's image types (RSPImageType values), in its menu order.
ALIAS = "Alias"
RELEASE = "Release"
WEEKLY = "Weekly"
DAILY = "Daily"
CANDIDATE = "Release Candidate"
EXPERIMENTAL = "Experimental"
UNKNOWN = "Unknown"
#: Image types in the order the controller lists them (menu, dropdown).
NUBLADO_TYPES = (ALIAS, RELEASE, WEEKLY, DAILY, CANDIDATE, EXPERIMENTAL, UNKNOWN)
#: Architectures the pipelines publish per-architecture tags for.
ARCHITECTURES = ("amd64", "arm64")
#: The controller's prepuller defaults (PrepullerOptions): the recommended
#: tag, then this many of the newest releases, weeklies and dailies.
DEFAULT_RECOMMENDED = "recommended"
DEFAULT_RELEASES = 1
DEFAULT_WEEKLIES = 2
DEFAULT_DAILIES = 3

# rsp kind (our short names) for each controller type.
_KIND = {ALIAS: "alias", RELEASE: "release", WEEKLY: "weekly", DAILY: "daily",
         CANDIDATE: "candidate", EXPERIMENTAL: "experimental", UNKNOWN: "unknown"}
# Oldest-first rank: reversed, tags come out in the controller's order.
_RANK = {name: len(NUBLADO_TYPES) - 1 - i for i, name in enumerate(NUBLADO_TYPES)}

# The optional parts after a version, in the only order the controller
# accepts them. _extra is non-greedy so that an architecture can follow.
_ARCH = r"(?:-(?P<arch>[a-z0-9]+))?"
_TAIL = (r"(?:_c(?P<cycle>\d+)\.(?P<cbuild>\d+))?(?:_rsp(?P<build>\d+))?"
         r"(?:_(?P<rest>.+?))?" + _ARCH)
# Tried in order, as the controller does: candidates before releases (a
# candidate would otherwise be a release with extra "rcN"); the two
# catch-all Unknown forms last, so every string matches one of them.
_FORMS: list[tuple[str, re.Pattern[str]]] = [
    (CANDIDATE, re.compile(
        r"(?P<head>r(?P<major>\d+)_(?P<minor>\d+)_(?P<patch>\d+)_(?P<pre>rc\d+))"
        + _TAIL)),
    (RELEASE, re.compile(
        r"(?P<head>r(?P<major>\d+)_(?P<minor>\d+)_(?P<patch>\d+))" + _TAIL)),
    # Legacy releases (r170 is 17.0): no suffix of any kind.
    (RELEASE, re.compile(r"(?P<head>r(?P<major>\d\d)(?P<minor>\d))")),
    (WEEKLY, re.compile(r"(?P<head>w_(?P<year>\d+)_(?P<week>\d+))" + _TAIL)),
    (DAILY, re.compile(
        r"(?P<head>d_(?P<year>\d+)_(?P<month>\d+)_(?P<day>\d+))" + _TAIL)),
    (EXPERIMENTAL, re.compile(r"exp_(?P<rest>.+)")),
    # recommended_c0027: aliases carry a bare cycle number (no .build).
    (UNKNOWN, re.compile(r"(?P<base>.*?)_c(?P<cycle>\d+)" + _ARCH)),
    (UNKNOWN, re.compile(r"(?P<base>.*?)" + _ARCH)),
]
_WEEKLY_FORM = next(pattern for kind, pattern in _FORMS if kind == WEEKLY)
# Canonical SQR-059 shapes that `nublado-build build --tag` insists on; the
# controller also reads w_25_7 or d_2025_7_1, but our pipelines never
# publish them.
_CANONICAL = {
    WEEKLY: re.compile(r"w_\d{4}_\d{2}(?:[_-]|\Z)"),
    DAILY: re.compile(r"d_\d{4}_\d{2}_\d{2}(?:[_-]|\Z)"),
}
_LOOKS_WEEKLY = re.compile(r"w_(\d+)_(\d+)(?:[_-]|\Z)")
_LOOKS_DAILY = re.compile(r"d_(\d+)_(\d+)_(\d+)(?:[_-]|\Z)")

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")
_CALVER = re.compile(
    r"^(?P<year>\d{4})\.(?P<month>\d{1,2})(?:\.(?P<micro>\d+))?(?:-rc(?P<rc>\d+))?$")

#: Version of a release, candidate, weekly (year, week, 0) or daily tag:
#: major, minor, patch and pre-release (``rc1``) as the controller builds it.
Version = tuple[int, int, int, str | None]


@total_ordering
@dataclass(frozen=True, eq=False)
class Tag:
    """A parsed tag: its policy's view and the Nublado controller's view.

    ``kind`` and ``key`` belong to the policy: ``key`` sorts older versions
    first within a policy, and ``kind`` is ``unknown`` (with ``problem``
    saying why) when the tag does not follow the policy. The other fields
    are what the Nublado controller makes of the tag whatever the policy:
    ``nublado_type`` is one of `NUBLADO_TYPES` and ``display_name`` is the
    name the spawner shows.
    """

    text: str
    policy: str
    kind: str
    key: tuple[object, ...]
    nublado_type: str = UNKNOWN
    display_name: str = ""
    base: str | None = None
    version: Version | None = None
    cycle: int | None = None
    cycle_build: int | None = None
    build: int | None = None
    architecture: str | None = None
    extra: str | None = None
    date: datetime.date | None = None
    problem: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tag):
            return NotImplemented
        return (self.policy, self.key, self.text) == (other.policy, other.key,
                                                      other.text)

    def __hash__(self) -> int:
        return hash((self.policy, self.text))

    def __lt__(self, other: Tag) -> bool:
        return (self.key, self.text) < (other.key, other.text)


@dataclass(frozen=True)
class _View:
    """What the controller makes of a tag (RSPImageTag's fields)."""

    nublado_type: str
    display_name: str
    base: str | None = None
    version: Version | None = None
    cycle: int | None = None
    cycle_build: int | None = None
    build: int | None = None
    architecture: str | None = None
    extra: str | None = None
    date: datetime.date | None = None

    def key(self) -> tuple[object, ...]:
        """Return the oldest-first sort key of the controller's comparison."""
        # Within a type the controller compares versions when both tags have
        # one and base names otherwise (no base, i.e. versioned, first);
        # then cycle, cycle build, build and extra, a missing value first;
        # and the architecture with a missing one last, so that a generic
        # tag comes before its per-architecture tags when listed newest first.
        if self.version is not None:
            major, minor, patch, pre = self.version
            main: tuple[object, ...] = (0, (major, minor, patch), _pre_key(pre))
        else:
            main = (1, _str_key(self.base))
        arch = (1, "") if self.architecture is None else (0, self.architecture)
        return (_RANK[self.nublado_type], main, _int_key(self.cycle),
                _int_key(self.cycle_build), _int_key(self.build),
                _str_key(self.extra), arch)


def _int_key(value: int | None) -> tuple[int, int]:
    return (0, 0) if value is None else (1, value)


def _str_key(value: str | None) -> tuple[int, str]:
    return (0, "") if value is None else (1, value)


def _pre_key(pre: str | None) -> tuple[object, ...]:
    # SemVer 11: a version without pre-release ranks above any pre-release;
    # numeric identifiers compare numerically and below alphanumeric ones.
    # (So rc10 sorts before rc2, exactly as the controller's semver does.)
    if pre is None:
        return (1,)
    parts: list[tuple[int, int, str]] = []
    for item in pre.split("."):
        parts.append((0, int(item), "") if item.isdigit() else (1, 0, item))
    return (0, tuple(parts))


def _title(name: str) -> str:
    return name.replace("_", " ").title()


def _alias_view(text: str) -> _View:
    # An alias's display name is its title-cased base name, then the cycle
    # and architecture it may carry (recommended_c0027-amd64).
    match = _FORMS[-2][1].fullmatch(text) or _FORMS[-1][1].fullmatch(text)
    assert match is not None  # the last form matches every string
    base, arch = match.group("base"), match.group("arch")
    cycle = match.groupdict().get("cycle")
    name = _title(base)
    if cycle is not None:
        name += f" (SAL Cycle {cycle})"
    if arch:
        name += f" [{arch}]"
    return _View(ALIAS, name, base=base, cycle=int(cycle) if cycle else None,
                 architecture=arch)


def _versioned(kind: str, groups: dict[str, str | None]
               ) -> tuple[str, Version, datetime.date | None]:
    # Display name, version and date of a release, candidate, weekly or daily.
    if kind in (RELEASE, CANDIDATE):
        major, minor = int(groups["major"] or 0), int(groups["minor"] or 0)
        patch, pre = int(groups.get("patch") or 0), groups.get("pre")
        name = f"{kind} r{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")
        return name, (major, minor, patch, pre), None
    year = groups["year"] or ""
    if kind == WEEKLY:
        week = groups["week"] or ""
        # Weeklies are built on Thursday, ISO weekday 4; a week the year does
        # not have raises, and the caller falls back to Unknown.
        when = datetime.date.fromisocalendar(int(year), int(week), 4)
        return f"{kind} {year}_{week}", (int(year), int(week), 0, None), when
    month, day = groups["month"] or "", groups["day"] or ""
    when = datetime.date(int(year), int(month), int(day))
    return (f"{kind} {year}_{month}_{day}", (int(year), int(month), int(day), None),
            when)


def _from_match(kind: str, match: re.Match[str]) -> _View:
    groups = match.groupdict()
    if kind == EXPERIMENTAL:
        # exp_<tag>: the rest is usually a tag of its own; its parts and
        # display name carry over (exp_random reads as "Experimental random").
        inner = _nublado_view(groups["rest"] or "")
        return replace(inner, nublado_type=EXPERIMENTAL,
                       display_name=f"{EXPERIMENTAL} {inner.display_name}")
    cycle, cbuild = groups.get("cycle"), groups.get("cbuild")
    build, extra, arch = groups.get("build"), groups.get("rest"), groups.get("arch")
    version: Version | None = None
    date = None
    if kind == UNKNOWN:
        name = base = groups["base"] or ""
    else:
        base = None
        name, version, date = _versioned(kind, groups)
    # The display name keeps the digits as written (Cycle 0047, Build 001).
    if cycle is not None:
        name += (f" (SAL Cycle {cycle}, Build {cbuild})" if cbuild is not None
                 else f" (SAL Cycle {cycle})")
    if build is not None:
        name += f" (RSP Build {build})"
    if extra:
        name += f" [{extra}]"
    if arch:
        name += f" [{arch}]"
    return _View(kind, name, base=base, version=version,
                 cycle=int(cycle) if cycle else None,
                 cycle_build=int(cbuild) if cbuild else None,
                 build=int(build) if build else None, architecture=arch,
                 extra=extra, date=date)


def _nublado_view(text: str) -> _View:
    # Docker's implicit tag: the controller reads "" as "latest".
    text = text or "latest"
    for kind, pattern in _FORMS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        try:
            return _from_match(kind, match)
        except (ValueError, OverflowError):
            # Not a real week or date (w_2025_54, d_2025_02_30): the
            # controller falls through to the next form, ending at Unknown.
            continue
    # Only a string with a line break gets here ("." stops at one); the
    # controller keeps it too, as an Unknown tag with no base name.
    return _View(UNKNOWN, text)


def nublado_view(text: str, aliases: Collection[str] | None = None) -> Tag:
    """Parse a tag exactly as the Nublado controller does.

    Parameters
    ----------
    text
        The tag after the colon; any string (the controller reads ``""``
        as ``latest``).
    aliases
        Tags that are aliases: the controller's ``recommendedTag`` plus its
        ``aliasTags``. Default: the rsp aliases in `ALIASES`.

    Returns
    -------
    Tag
        An rsp tag whose ``kind`` follows its ``nublado_type``; never fails.

    """
    alias_set = set(ALIASES["rsp"] if aliases is None else aliases)
    view = _alias_view(text) if text in alias_set else _nublado_view(text)
    tag = Tag(text or "latest", "rsp", _KIND[view.nublado_type], view.key())
    return _with_view(tag, view)


def _with_view(tag: Tag, view: _View) -> Tag:
    return replace(tag, nublado_type=view.nublado_type, display_name=view.display_name,
                   base=view.base, version=view.version, cycle=view.cycle,
                   cycle_build=view.cycle_build, build=view.build,
                   architecture=view.architecture, extra=view.extra, date=view.date)


def _bad_date(text: str) -> str | None:
    # Why a weekly- or daily-looking tag names no real week or day, if so.
    if weekly := _LOOKS_WEEKLY.match(text):
        week = int(weekly.group(2))
        if not 1 <= week <= 53:
            return f"week {week} is not 01..53"
    elif daily := _LOOKS_DAILY.match(text):
        try:
            datetime.date(*(int(part) for part in daily.groups()))
        except ValueError:
            return "-".join(daily.groups()) + " is not a date"
    return None


def _rsp_problem(tag: Tag) -> str | None:
    # Why `build --tag` refuses an rsp tag the controller may still read.
    text = tag.text
    if tag.nublado_type == UNKNOWN:
        if tag.base in ALIASES["rsp"] and tag.architecture in (None, *ARCHITECTURES):
            return None  # an alias with a cycle or architecture
        weekly = _WEEKLY_FORM.fullmatch(text)
        if (weekly and _CANONICAL[WEEKLY].match(text) and _bad_date(text) is None
                and weekly.group("arch") in (None, *ARCHITECTURES)):
            # Week 53 of a 52-week year (w_2025_53): builds always accepted
            # it, so they still do, though the controller lists it as Unknown.
            return None
        if reason := _bad_date(text):
            return f"{text!r}: {reason}"
        return f"{text!r} is not an rsp tag; expected {EXPECTED['rsp']}"
    canonical = _CANONICAL.get(tag.nublado_type)
    if canonical is not None and not canonical.match(text):
        return f"{text!r} is not an rsp tag; expected {EXPECTED['rsp']}"
    if tag.nublado_type != EXPERIMENTAL and tag.architecture not in (None,
                                                                     *ARCHITECTURES):
        return (f"{text!r}: architecture {tag.architecture!r} is not one of "
                f"{', '.join(ARCHITECTURES)}")
    return None


def _parse_semver(text: str) -> tuple[str, tuple[object, ...]] | str:
    match = _SEMVER.match(text)
    if not match:
        return f"{text!r} is not a semver tag; expected {EXPECTED['semver']}"
    version = tuple(int(match.group(n)) for n in ("major", "minor", "patch"))
    kind = "prerelease" if match.group("pre") else "release"
    return kind, (2, 0, version, _pre_key(match.group("pre")))


def _parse_calver(text: str) -> tuple[str, tuple[object, ...]] | str:
    match = _CALVER.match(text)
    if not match:
        return f"{text!r} is not a calver tag; expected {EXPECTED['calver']}"
    year, month = int(match.group("year")), int(match.group("month"))
    if not 1 <= month <= 12:
        return f"{text!r}: month {month} is not 1..12"
    micro = int(match.group("micro") or 0)
    rc = match.group("rc")
    kind = "candidate" if rc else "release"
    return kind, (2, 0, (year, month, micro), (0, int(rc)) if rc else (1, 0))


_PARSERS = {"semver": _parse_semver, "calver": _parse_calver}


def parse_tag(text: str, policy: str,
              aliases: Collection[str] | None = None) -> Tag:
    """Parse the version part of an image tag under a policy.

    Parameters
    ----------
    text
        The tag after the colon (``w_2025_30``, ``1.2.3``...).
    policy
        ``rsp``, ``semver`` or ``calver``.
    aliases
        Tags the Nublado controller treats as aliases (see `nublado_view`).

    Returns
    -------
    Tag
        The parsed tag; tags of one policy sort oldest first. A tag that
        does not follow the policy is kind ``unknown`` and says why in
        ``problem``; the Nublado fields are filled in whatever the policy.

    Raises
    ------
    TagError
        When ``policy`` is not a known policy (never because of the tag).

    """
    if policy not in POLICIES:
        raise TagError(f"unknown tag policy {policy!r}; use one of "
                       f"{', '.join(POLICIES)}")
    view = nublado_view(text, aliases)
    if policy == "rsp":
        tag = replace(view, text=text)
        problem = _rsp_problem(view)
    elif text in ALIASES[policy]:
        tag, problem = replace(view, text=text, policy=policy, kind="alias",
                               key=(0, 0, (), ())), None
    else:
        parsed = _PARSERS[policy](text)
        if isinstance(parsed, str):
            # Unknown tags sort before the aliases and versions of a policy.
            tag, problem = replace(view, text=text, policy=policy, kind="unknown",
                                   key=(-1, 0, (text,), ())), parsed
        else:
            tag = replace(view, text=text, policy=policy, kind=parsed[0],
                          key=parsed[1])
            problem = None
    if not DOCKER_TAG.match(text):
        problem = (f"{text!r} is not a valid Docker tag (letters, digits, '_', "
                   "'.', '-', at most 128, not starting with '.' or '-')")
    return replace(tag, problem=problem)


def sort_tags(tags: list[str], policy: str, newest_first: bool = False) -> list[str]:
    """Return ``tags`` ordered by version under ``policy``.

    Parameters
    ----------
    tags
        Tags to order; tags that do not follow the policy are kept.
    policy
        ``rsp``, ``semver`` or ``calver``.
    newest_first
        Reverse the order.

    Returns
    -------
    list of str
        For rsp, newest first is the controller's order: by type (aliases,
        releases, weeklies, dailies, release candidates, experimental,
        unknown), then newest first within each type; oldest first is its
        reverse. For semver and calver, oldest first: tags that do not
        follow the policy, aliases, then versions.

    Raises
    ------
    TagError
        When ``policy`` is not a known policy.

    """
    parsed = sorted(parse_tag(t, policy) for t in tags)
    ordered = [t.text for t in parsed]
    return ordered[::-1] if newest_first else ordered


def tags_by_type(tags: Iterable[str],
                 aliases: Collection[str] | None = None) -> dict[str, list[Tag]]:
    """Group tags by the controller's image type, newest first in each.

    Parameters
    ----------
    tags
        Tags as a registry lists them, in any order and under any policy.
    aliases
        Tags the controller treats as aliases (see `nublado_view`).

    Returns
    -------
    dict of str to list of Tag
        Every type of `NUBLADO_TYPES`, in that order, to its tags (possibly
        none), newest first and each generic tag before its per-architecture
        ones, as the controller keeps them.

    """
    grouped: dict[str, list[Tag]] = {name: [] for name in NUBLADO_TYPES}
    seen: set[str] = set()
    for text in tags:
        if text not in seen:
            seen.add(text)
            tag = nublado_view(text, aliases)
            grouped[tag.nublado_type].append(tag)
    for group in grouped.values():
        group.sort(reverse=True)
    return grouped


@dataclass(frozen=True)
class SpawnerView:
    """What the Nublado controller would offer for a list of tags.

    ``prepull`` is the set it caches on every node and ``menu`` the spawner's
    main menu (the recommended tag first, then the rest of ``prepull`` in
    controller order); ``dropdown`` lists every other choice, and ``tags``
    every tag, per-architecture ones included, grouped by type.
    """

    tags: dict[str, list[Tag]]
    prepull: list[Tag]
    menu: list[Tag]
    dropdown: list[Tag]


def spawner_view(tags: Iterable[str], *, recommended: str = DEFAULT_RECOMMENDED,
                 releases: int = DEFAULT_RELEASES, weeklies: int = DEFAULT_WEEKLIES,
                 dailies: int = DEFAULT_DAILIES,
                 aliases: Collection[str] | None = None, pin: Iterable[str] = (),
                 cycle: int | None = None) -> SpawnerView:
    """Compute the menu and prepull set the controller would build from ``tags``.

    Follows the controller's prepuller: aliases are ``recommended`` plus
    ``aliases``; with ``cycle`` only tags of that SAL cycle are kept; the
    prepull set is the newest ``releases`` releases, ``weeklies`` weeklies
    and ``dailies`` dailies, plus ``recommended`` and ``pin`` when present;
    per-architecture tags are never prepulled nor shown.

    Parameters
    ----------
    tags
        All tags in the registry, in any order.
    recommended
        The controller's ``recommendedTag``.
    releases, weeklies, dailies
        The controller's ``numReleases``, ``numWeeklies``, ``numDailies``.
    aliases
        The controller's ``aliasTags``. Default: the rsp aliases in
        `ALIASES` (the controller's own default is none).
    pin
        The controller's ``pin`` list.
    cycle
        The controller's ``cycle``, or None for every tag.

    Returns
    -------
    SpawnerView
        The prepull set, the menu, the dropdown and every tag by type.

    Raises
    ------
    InputError
        When a count is negative.

    """
    counts = {"releases": releases, "weeklies": weeklies, "dailies": dailies}
    for name, count in counts.items():
        if count < 0:
            raise InputError(f"--{name} must be 0 or more, got {count}")
    alias_set = {recommended, *(ALIASES["rsp"] if aliases is None else aliases)}
    grouped = tags_by_type(tags, alias_set)
    if cycle is not None:
        grouped = {name: [t for t in group if t.cycle == cycle]
                   for name, group in grouped.items()}
    generic = {name: [t for t in group if t.architecture is None]
               for name, group in grouped.items()}
    chosen = {t.text for t in generic[RELEASE][:releases]}
    chosen |= {t.text for t in generic[WEEKLY][:weeklies]}
    chosen |= {t.text for t in generic[DAILY][:dailies]}
    chosen |= {recommended, *pin}
    # The controller walks its types in order, newest first, dropping
    # per-architecture tags even when pinned.
    prepull = [t for name in NUBLADO_TYPES for t in generic[name] if t.text in chosen]
    menu = ([t for t in prepull if t.text == recommended]
            + [t for t in prepull if t.text != recommended])
    dropdown = [t for name in NUBLADO_TYPES for t in generic[name]]
    return SpawnerView(tags=grouped, prepull=prepull, menu=menu, dropdown=dropdown)


def _tag_json(tag: Tag) -> dict[str, object]:
    return {"tag": tag.text, "type": tag.nublado_type,
            "display_name": tag.display_name}


def tags_report(tags: Sequence[str], policy: str = "rsp", *,
                recommended: str = DEFAULT_RECOMMENDED,
                releases: int = DEFAULT_RELEASES, weeklies: int = DEFAULT_WEEKLIES,
                dailies: int = DEFAULT_DAILIES) -> tuple[dict[str, object], str]:
    """Describe tags the way ``nublado-build tags`` prints them.

    Parameters
    ----------
    tags
        The tags to describe, as a registry would list them.
    policy
        The payload policy to check each tag against.
    recommended, releases, weeklies, dailies
        The controller's prepuller settings (see `spawner_view`).

    Returns
    -------
    tuple of dict and str
        The JSON document (without ``ok``) and the text report: each tag's
        policy verdict, Nublado type and display name, then the menu and
        the prepull set.

    Raises
    ------
    InputError
        When no tag is given, a tag is empty or holds a control character,
        or a count is negative.

    """
    if not tags:
        raise InputError("no tags given; pass one or more tags, e.g. "
                         "nublado-build tags w_2025_30 r29_0_0 recommended")
    for text in tags:
        found = control_characters(text)
        if found:
            raise InputError(f"tag {text!r} contains {found}; pass one tag per "
                             "argument")
        if not text:
            raise InputError("an empty tag was given; Docker reads it as "
                             "'latest', so pass 'latest' if you mean it")
    if policy not in POLICIES:
        raise InputError(f"unknown tag policy {policy!r}; use one of "
                         f"{', '.join(POLICIES)}")
    view = spawner_view(tags, recommended=recommended, releases=releases,
                        weeklies=weeklies, dailies=dailies)
    alias_set = {recommended, *ALIASES["rsp"]}
    rows: list[dict[str, object]] = []
    for text in dict.fromkeys(tags):
        parsed = parse_tag(text, policy, alias_set)
        rows.append({**_tag_json(parsed), "kind": parsed.kind,
                     "accepted": parsed.problem is None, "problem": parsed.problem,
                     "architecture": parsed.architecture, "cycle": parsed.cycle,
                     "cycle_build": parsed.cycle_build, "build": parsed.build,
                     "extra": parsed.extra,
                     "date": parsed.date.isoformat() if parsed.date else None})
    data: dict[str, object] = {
        "policy": policy, "recommended": recommended,
        "counts": {"releases": releases, "weeklies": weeklies, "dailies": dailies},
        "tags": rows, "menu": [_tag_json(t) for t in view.menu],
        "prepull": [_tag_json(t) for t in view.prepull],
        "dropdown": [_tag_json(t) for t in view.dropdown]}
    width = max(len(str(r["tag"])) for r in rows)
    lines = [f"{'TAG':<{width}}  {'TYPE':<17}  DISPLAY NAME"]
    for row in rows:
        verdict = "" if row["accepted"] else f"  (not for build: {row['problem']})"
        lines.append(f"{row['tag']!s:<{width}}  {row['type']!s:<17}  "
                     f"{row['display_name']}{verdict}")
    lines.append(f"menu ({recommended} first, then {releases} release(s), "
                 f"{weeklies} weekly(ies), {dailies} daily(ies)):")
    lines += ([f"  {t.text:<{width}}  {t.display_name}" for t in view.menu]
              or ["  (empty)"])
    lines.append("prepull:")
    lines += [f"  {t.text}" for t in view.prepull] or ["  (none)"]
    return data, "\n".join(lines)



def _slots(text: str) -> tuple[str, re.Match[str]] | None:
    # The version form (with its _rspN slot) of a tag, looking inside exp_.
    prefix = ""
    if text.startswith("exp_"):
        prefix, text = "exp_", text[4:]
    for kind, pattern in _FORMS[:5]:
        match = pattern.fullmatch(text)
        if match is not None and "build" in pattern.groupindex:
            view = _nublado_view(text)
            if view.nublado_type == kind:
                return prefix, match
    return None


def rebuild_tag(tag: str) -> str:
    """Return the tag for a maintenance rebuild: the next ``_rspN`` number.

    ``w_2025_30`` becomes ``w_2025_30_rsp1``, ``w_2025_30_rsp1`` becomes
    ``w_2025_30_rsp2``; the cycle, extra part and architecture stay where
    the controller expects them (``r29_0_0_c0047.001_rsp3_extra-amd64``).

    Parameters
    ----------
    tag
        A release, release candidate, weekly or daily tag, or an
        experimental tag built on one of those.

    Returns
    -------
    str
        The rebuild's tag.

    Raises
    ------
    TagError
        When the tag has no build number slot (aliases, unknown tags,
        legacy releases) or the result would be too long for Docker.

    """
    found = _slots(tag)
    if found is None:
        raise TagError(f"{tag!r} has no _rspN build number; only release, "
                       "release candidate, weekly and daily tags (or exp_ on "
                       "one of them) are rebuilt")
    prefix, match = found
    text = match.string
    if match.group("build") is not None:
        start, end = match.span("build")
        number = int(match.group("build")) + 1
        new = f"{text[:start]}{number}{text[end:]}"
    else:
        # The build number follows the cycle, or the version when none.
        at = match.end("cbuild") if match.group("cbuild") is not None \
            else match.end("head")
        new = f"{text[:at]}_rsp1{text[at:]}"
    result = prefix + new
    if not DOCKER_TAG.match(result):
        raise TagError(f"{result!r} (rebuild of {tag!r}) is not a valid Docker tag")
    return result


def architecture_tags(tag: str,
                      architectures: Sequence[str] = ARCHITECTURES) -> list[str]:
    """Return the per-architecture tags published next to a generic tag.

    Parameters
    ----------
    tag
        The generic tag (``w_2025_30``); it must carry no architecture.
    architectures
        Architectures to tag, by default ``amd64`` and ``arm64``.

    Returns
    -------
    list of str
        ``<tag>-<arch>`` for each architecture, in the order given.

    Raises
    ------
    TagError
        When the tag already names an architecture, an architecture is not
        lower-case letters and digits, or a result is too long for Docker.

    """
    existing = nublado_view(tag).architecture
    if existing is not None:
        raise TagError(f"{tag!r} already names architecture {existing!r}")
    result = []
    for arch in architectures:
        if not re.fullmatch(r"[a-z0-9]+", arch):
            raise TagError(f"architecture {arch!r} is not lower-case letters "
                           "and digits (amd64, arm64)")
        candidate = f"{tag}-{arch}"
        if not DOCKER_TAG.match(candidate):
            raise TagError(f"{candidate!r} is not a valid Docker tag")
        result.append(candidate)
    return result


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
    parsed = parse_tag(tag, policy)
    if parsed.problem is not None:
        raise TagError(f"--tag {reference}: {parsed.problem}")
    return parsed


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
