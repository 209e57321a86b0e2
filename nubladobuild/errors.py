"""Errors that the CLI turns into one clear message and an exit code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: Exit code for bad input: payload files, flags, missing files.
EXIT_INPUT = 2
#: Exit code when the machine lacks something (no Docker engine, no BuildKit).
EXIT_ENVIRONMENT = 3
#: Exit code when a build or test step ran and failed.
EXIT_FAILED = 1


class NubladoError(Exception):
    """Base class for errors reported to the user without a traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(NubladoError):
    """The user's input (payload, flags, files) is wrong."""

    exit_code = EXIT_INPUT


class EnvironmentProblem(NubladoError):
    """The machine lacks something the command needs."""

    exit_code = EXIT_ENVIRONMENT


class BuildFailed(NubladoError):
    """A build step ran and failed."""

    exit_code = EXIT_FAILED


class TestFailed(NubladoError):
    """An image was checked and a check failed (contract, browser)."""

    __test__ = False  # not a pytest test class
    exit_code = EXIT_FAILED


class LockOutdated(NubladoError):
    """A lock file is missing or no longer matches its input (``lock --check``)."""

    exit_code = EXIT_FAILED


class CondaError(InputError):
    """A conda environment file, lock file or package could not be used."""


class CompatError(InputError):
    """A compat entry cannot be resolved for this payload."""


class TagError(InputError):
    """A tag does not follow its policy."""


#: A location in payload.yaml: keys and list indices from the top.
Loc = tuple[str | int, ...]
#: Maps a location to its line in payload.yaml (None when unknown).
LineFor = Callable[[Loc], int | None]


@dataclass(frozen=True)
class Problem:
    """One problem found in a payload: where it is and what to do."""

    file: str
    location: str
    message: str
    line: int | None = None

    def render(self) -> str:
        """Return the problem as one line: file:line: location: message."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        loc = f" {self.location}:" if self.location else ""
        return f"{where}:{loc} {self.message}"


class PayloadInvalid(InputError):
    """A payload has one or more problems; all are reported at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        plural = "s" if count != 1 else ""
        head = f"{count} problem{plural} in payload; nothing was built."
        body = "\n".join(f"  {p.render()}" for p in problems)
        super().__init__(f"{head}\n{body}")


class PushFailed(NubladoError):
    """An image could not be pushed to a registry (unreachable, refused)."""

    exit_code = EXIT_FAILED
