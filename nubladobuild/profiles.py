"""Base profiles: the named, hash-locked contents of the lab venv.

A profile is ``base/profiles/NAME.in`` (top-level requirements, ``-r`` may
include another profile). Each JupyterHub major a site may run has its
constraint in ``base/profiles/hub/N.in``; ``scripts/lock-base`` compiles
every profile with every hub constraint into ``base/profiles/NAME-hubN.txt``
(pip-tools, hashes, wheels only, on the base's own Python). The base image
installs one of those locks and records which (:data:`PROFILE_LABEL`, and
the lock itself under :data:`IMAGE_PROFILE_DIR`), so that later steps can
read what the lab venv was locked to.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from nubladobuild.errors import InputError, LockOutdated
from nubladobuild.fields import LAB_ROOT
from nubladobuild.requirements import canonical
from nubladobuild.resources import data_root

#: The profile ``nublado-build base`` installs unless told otherwise.
DEFAULT_PROFILE = "standard"
#: The image label that names the base's profile.
PROFILE_LABEL = "io.nublado.base.profile"
#: Where the base keeps the lock its lab venv was installed from
#: (``requirements.txt``) and the profile's name (``name``).
IMAGE_PROFILE_DIR = f"{LAB_ROOT}/profile"
#: The file names inside :data:`IMAGE_PROFILE_DIR`.
IMAGE_LOCK_NAME = "requirements.txt"
IMAGE_NAME_FILE = "name"
#: What a profile may be called (it reaches a file name and a build arg).
PROFILE_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_INCLUDE = re.compile(r"^(-r|--requirement)\s*=?\s*(\S+)$")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*(\\)?$")
_HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}\s*(\\)?$")
_COMMAND = re.compile(r"^#\s+(pip-compile\s.*)$")
#: A "# via -r FILE.in" annotation (one line, or one line of a "# via" list).
_VIA_INPUT = re.compile(r"^\s+#\s+(via\s+)?-r\s+\S+\.in\s*$")


def profiles_dir() -> Path:
    """Return ``base/profiles`` of the checkout or the installed package."""
    return data_root() / "base" / "profiles"


def profile_names(directory: Path | None = None) -> tuple[str, ...]:
    """Return the names of the base profiles, sorted."""
    directory = directory or profiles_dir()
    return tuple(sorted(path.stem for path in directory.glob("*.in")
                        if PROFILE_NAME.fullmatch(path.stem)))


def hub_majors(directory: Path | None = None) -> tuple[int, ...]:
    """Return the JupyterHub majors that have a constraint (``hub/N.in``)."""
    directory = directory or profiles_dir()
    return tuple(sorted(int(path.stem) for path in (directory / "hub").glob("*.in")
                        if path.stem.isdigit()))


def lock_name(profile: str, hub: int) -> str:
    """Return the file name of a profile's lock for a JupyterHub major."""
    return f"{profile}-hub{hub}.txt"


def check_profile(name: str, directory: Path | None = None) -> str:
    """Return ``name`` if it is a base profile; raise InputError otherwise.

    Raises
    ------
    InputError
        The profile does not exist; the message lists those that do.
    """
    known = profile_names(directory)
    if name not in known:
        where = directory or profiles_dir()
        raise InputError(f"--profile {name!r}: no such base profile (no "
                         f"{where / (name + '.in')}). Profiles: {', '.join(known)}. "
                         "Pick one of them, or add base/profiles/NAME.in and run "
                         "scripts/lock-base.")
    return name


def top_level_names(path: Path) -> frozenset[str]:
    """Return the normalized project names an ``.in`` file asks for.

    ``-r FILE`` lines are followed (relative to the including file), so a
    profile built on another one names everything both ask for.
    """
    names: set[str] = set()
    seen: set[Path] = set()

    def read(file: Path) -> None:
        if file in seen:
            return
        seen.add(file)
        for raw in file.read_text(encoding="utf-8").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            include = _INCLUDE.match(line)
            if include:
                read((file.parent / include.group(2)).resolve())
                continue
            match = _REQUIREMENT.match(line)
            if match:
                names.add(canonical(match.group(1)))

    read(path.resolve())
    return frozenset(names)


def parse_lock(text: str) -> dict[str, str]:
    """Return ``{normalized name: version}`` of a pip-compile hash lock."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


@dataclass(frozen=True)
class Lock:
    """One profile's lock for one JupyterHub major."""

    profile: str
    hub: int
    path: Path

    @property
    def inputs(self) -> tuple[str, ...]:
        """Return the input files the lock must be compiled from, in order."""
        return (f"{self.profile}.in", f"hub/{self.hub}.in")

    def problems(self) -> list[str]:
        """Return why the lock is not current with its inputs (empty: current).

        Checked without the network: the lock exists, its pip-compile
        command names exactly its inputs and output (and hashes, wheels
        only), every pin carries sha256 hashes, every top-level name of the
        inputs is pinned, and no pin is there for an input that dropped it.
        """
        if not self.path.is_file():
            return [f"{self.path}: missing"]
        text = self.path.read_text(encoding="utf-8")
        problems: list[str] = []
        commands = [m.group(1) for m in map(_COMMAND.match, text.splitlines()) if m]
        if len(commands) != 1:
            problems.append(f"{self.path}: no pip-compile command in its header")
        else:
            words = shlex.split(commands[0])
            files = sorted(w for w in words[1:] if not w.startswith("-"))
            output = [w.split("=", 1)[1] for w in words
                      if w.startswith("--output-file=")]
            if files != sorted(self.inputs) or output != [self.path.name]:
                problems.append(f"{self.path}: compiled from {' '.join(files)} into "
                                f"{' '.join(output)}, not from "
                                f"{' '.join(self.inputs)} into {self.path.name}")
            for option in ("--generate-hashes", "--pip-args=--only-binary=:all:"):
                if option not in words:
                    problems.append(f"{self.path}: compiled without {option}")
        problems.extend(_unhashed(self.path, text))
        pins = parse_lock(text)
        wanted: set[str] = set()
        for name in self.inputs:
            wanted |= top_level_names(self.path.parent / name)
        missing = sorted(wanted - pins.keys())
        if missing:
            problems.append(f"{self.path}: does not pin {', '.join(missing)} "
                            "(asked for by its inputs)")
        dropped = sorted(_asked_for(text) - wanted)
        if dropped:
            problems.append(f"{self.path}: pins {', '.join(dropped)} for an input "
                            "that no longer asks for it")
        return problems


def _asked_for(text: str) -> set[str]:
    """Return the pins whose ``# via`` annotation names an ``.in`` file."""
    asked: set[str] = set()
    current = ""
    for line in text.splitlines():
        pin = _PIN.match(line.strip())
        if pin:
            current = canonical(pin.group(1))
        elif current and _VIA_INPUT.search(line):
            asked.add(current)
    return asked


def _unhashed(path: Path, text: str) -> list[str]:
    """Return the pins of a lock that are not followed by a sha256 hash."""
    problems: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        pin = _PIN.match(line.strip())
        if not pin:
            continue
        follows = lines[number] if number < len(lines) else ""
        if not pin.group(3) or not _HASH.match(follows.strip()):
            problems.append(f"{path}:{number}: {pin.group(1)}=={pin.group(2)} "
                            "has no --hash")
    return problems


def locks(directory: Path | None = None) -> list[Lock]:
    """Return every lock the profiles and hub constraints call for."""
    directory = directory or profiles_dir()
    return [Lock(profile, hub, directory / lock_name(profile, hub))
            for profile in profile_names(directory) for hub in hub_majors(directory)]


def require_current(profile: str, hub: int, directory: Path | None = None) -> Path:
    """Return the lock a base build installs, after checking it is current.

    Raises
    ------
    LockOutdated
        The lock is missing or does not match its inputs.
    """
    directory = directory or profiles_dir()
    lock = Lock(profile, hub, directory / lock_name(profile, hub))
    problems = lock.problems()
    if problems:
        raise LockOutdated(f"base profile {profile!r} for JupyterHub {hub}: "
                           + "; ".join(problems)
                           + ". Run scripts/lock-base to re-lock it.")
    return lock.path
