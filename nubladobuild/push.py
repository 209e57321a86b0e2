"""Push images to registries (``nublado-build push``, ``build --push``).

An image is pushed by tagging it with the destination's name, then ``docker
push``. When a push fails the destination tag is undone: removed when it
did not exist before, pointed back at its previous image when it did. A
successful push keeps it (as ``docker push`` does). Destinations are
validated (:mod:`nubladobuild.refs`) before anything is tagged or pushed;
credentials never belong in a reference (``docker login`` holds them) and
are masked in every message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nubladobuild.engine import inspect_image, push_reference, tag_image, untag_image
from nubladobuild.errors import InputError, PushFailed
from nubladobuild.progress import Progress
from nubladobuild.refs import BadReference, parse_reference
from nubladobuild.secrets import mask_reference, mask_secrets

#: Registry of references without a registry host.
DEFAULT_REGISTRY = "docker.io"
#: At most this many characters of what the engine said go into a message.
MAX_ENGINE_MESSAGE = 600


@dataclass(frozen=True)
class Destination:
    """A validated push destination: ``repository:tag`` and its registry."""

    repository: str
    tag: str

    @property
    def reference(self) -> str:
        """Return ``repository:tag``."""
        return f"{self.repository}:{self.tag}"

    @property
    def registry(self) -> str:
        """Return the registry host (with port), ``docker.io`` when none is given."""
        first, sep, _ = self.repository.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            return first
        return DEFAULT_REGISTRY


@dataclass(frozen=True)
class Pushed:
    """A destination that was pushed, with the digest the registry reported."""

    reference: str
    digest: str | None


def check_destinations(references: Sequence[str], option: str) -> list[Destination]:
    """Validate push destinations; return them without duplicates, in order.

    Parameters
    ----------
    references
        Image references such as ``registry.example.org:5000/lsst/lab:w_2025_30``;
        without a tag the destination is ``:latest``.
    option
        The option they came from (``--to``, ``--push``), for messages.

    Raises
    ------
    InputError
        Naming the first invalid reference (credentials masked).
    """
    found: list[Destination] = []
    for reference in references:
        masked = mask_reference(reference)
        try:
            ref = parse_reference(reference)
        except BadReference as exc:
            text = str(exc).replace(repr(reference), repr(masked)).replace(
                reference, masked)
            hint = ""
            if masked != reference:
                hint = ("; credentials do not belong in a reference: log in with "
                        "`docker login REGISTRY` and name the image without them")
            raise InputError(f"{option}: {text}{hint}") from None
        if ref.digest:
            raise InputError(f"{option} {masked}: a push destination cannot carry a "
                             "digest (the registry computes it); name a tag, e.g. "
                             f"{ref.repository}:latest")
        destination = Destination(ref.repository, ref.tag_or_latest)
        if destination not in found:
            found.append(destination)
    return found


def _engine_said(output: str) -> str:
    """Return the engine's message on one line, masked and bounded."""
    text = " ".join(mask_secrets(output).split()).rstrip(".")
    if len(text) > MAX_ENGINE_MESSAGE:
        text = text[:MAX_ENGINE_MESSAGE] + " ..."
    return text


def _failure(image: str, destination: Destination, said: str, undone: str) -> str:
    """Return one paragraph: which destination, what the engine said, what to check."""
    host = destination.registry
    path = destination.repository.removeprefix(f"{host}/")
    return (f"push of {image} to {destination.reference} failed; the engine said: "
            f"{said}. Check that the registry {host} is running and reachable from "
            f"the Docker engine's host, that `docker login {host}` was done with an "
            f"account that may push to {path}, and, for a registry without TLS, "
            f"that the engine lists {host} under insecure-registries (loopback "
            f"addresses are by default). {undone}")


def push_image(image: str, destinations: Sequence[Destination], *,
               progress: Callable[[str], None] | None = None) -> list[Pushed]:
    """Push a local image to every destination.

    Every destination is tried; the ones that fail are reported together
    at the end. Each failed destination's local tag is undone.

    Parameters
    ----------
    image
        A local image: a reference or an image ID. It needs a tag of its
        own (undoing a destination tag must not delete it).
    destinations
        From :func:`check_destinations`.
    progress
        Receives a line when each push starts and when it succeeded; a live
        :class:`~nubladobuild.progress.Progress` shows one line per
        destination instead (a spinner, then the digest and the time).

    Returns
    -------
    list of Pushed
        The destinations and their digests, in order.

    Raises
    ------
    InputError
        The image is not on the engine, or has no tag.
    PushFailed
        One paragraph per destination that failed; the others were pushed.
    """
    info = inspect_image(image)
    if info is None:
        raise InputError(f"{image}: no such image on the engine. Build it "
                         "(`nublado-build build`) or pull it first.")
    if not info.tags:
        raise InputError(f"{image}: the image has no tag. Tag it first (`docker tag "
                         f"{info.id[:19]} NAME:TAG`) and push that: undoing a "
                         "failed push must not leave it without a name.")
    pushed: list[Pushed] = []
    failures: list[str] = []
    for destination in destinations:
        target = destination.reference
        before = inspect_image(target)
        previous = before.id if before is not None else None
        if previous != info.id:
            tag_image(info.id, destination.repository, destination.tag)
        live = isinstance(progress, Progress) and progress.live
        if progress is not None and not live:
            progress(f"pushing {image} to {target}")
        ok = False
        try:
            shown = progress.phase(f"pushing {image} to {target}") \
                if isinstance(progress, Progress) and live \
                else contextlib.nullcontext()
            with shown as phase:
                outcome = push_reference(target)
                if phase is not None:
                    phase.failed = not outcome.ok
                    phase.result = f"pushed {target}" + (
                        f" ({outcome.digest})" if outcome.digest else "")
            ok = outcome.ok
        finally:
            if not ok:
                # Undo: the destination tag is as it was before.
                if previous is None:
                    untag_image(target)
                elif previous != info.id:
                    tag_image(previous, destination.repository, destination.tag)
        if outcome.ok:
            pushed.append(Pushed(target, outcome.digest))
            if progress is not None and not live:
                progress(f"pushed {target}" + (f" ({outcome.digest})"
                                              if outcome.digest else ""))
            continue
        if previous is None:
            undone = f"The local tag {target} was removed again."
        elif previous != info.id:
            undone = (f"The local tag {target} points at {previous[:19]} again, "
                      "as before.")
        else:
            undone = f"The local tag {target} was there before and stays."
        failures.append(_failure(image, destination, _engine_said(outcome.output),
                                 undone))
    if failures:
        done = ""
        if pushed:
            done = "\nPushed: " + ", ".join(p.reference for p in pushed) + "."
        raise PushFailed("\n\n".join(failures) + done)
    return pushed
