"""The ``apt`` kind: Debian packages for the payload, installed as root.

``- apt: {packages: [gfortran, libhdf5-dev]}`` or ``- apt: {file: apt.txt}``
(repo2docker's format: one package a line, ``#`` comments), exactly one of
the two. Names follow Debian's rule; ``name=version`` pins a version. No
options, URLs or local files: apt installs from the image's own sources.

Apt steps come first in ``install``: the payload's other steps can build
against what they add. An apt step after another kind is refused (at plan
time, which ``validate`` runs too). The build looks every name up after
``apt-get update`` and names all unknown ones at once before installing
(``base/build/install-payload-apt``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from nubladobuild.errors import PayloadInvalid, Problem
from nubladobuild.fields import RelFile, Strict, control_characters
from nubladobuild.kinds._protocol import (
    Environment,
    Kind,
    StepContext,
    StepInput,
    StepPlan,
)

if TYPE_CHECKING:
    from nubladobuild.schema import Payload

#: At most this many packages in one step.
MAX_PACKAGES = 256
#: The longest package specification (name and version) accepted.
MAX_SPEC = 200
#: Debian's package-name rule, and an optional ``=version`` (Debian's
#: version syntax: an optional numeric epoch, an upstream version starting
#: with a digit, an optional revision).
_NAME = r"[a-z0-9][a-z0-9+.-]+"
_VERSION = r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*"
PACKAGE_RE = re.compile(rf"^{_NAME}(?:={_VERSION})?\Z")
#: Where the package list goes in the step's context directory.
PACKAGES_FILE = "packages.txt"


def package_problem(value: str) -> str | None:
    """Return why ``value`` is not a package specification, or None."""
    found = control_characters(value)
    if found:
        return f"{value!a} contains {found}; name one Debian package"
    if len(value) > MAX_SPEC:
        return f"{value[:40]!r}... is longer than {MAX_SPEC} characters"
    if PACKAGE_RE.match(value):
        return None
    if value.startswith("-"):
        why = "options are not allowed"
    elif "://" in value or value.startswith(("/", ".")):
        why = "URLs and local .deb files are not allowed"
    elif "=" in value:
        why = ("the version after '=' must be a Debian version "
               "([epoch:]upstream[-revision], starting with a digit)")
    else:
        why = ("use lowercase letters, digits and +-. (at least two, "
               "starting with a letter or digit)")
    return f"{value!r} is not a Debian package name: {why}"


def _package(value: str) -> str:
    problem = package_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Package = Annotated[str, AfterValidator(_package), WithJsonSchema(
    {"type": "string", "maxLength": MAX_SPEC,
     "pattern": rf"^{_NAME}(={_VERSION})?$"})]


class AptStep(Strict):
    """Debian packages, from a list or an ``apt.txt`` file (one of the two)."""

    # Exactly one of the two, said in the JSON Schema too (for editors).
    model_config = ConfigDict(json_schema_extra={"minProperties": 1,
                                                 "maxProperties": 1})

    packages: list[Package] | None = Field(default=None, min_length=1,
                                           max_length=MAX_PACKAGES)
    file: RelFile | None = None

    @model_validator(mode="after")
    def _one_source(self) -> AptStep:
        if (self.packages is None) == (self.file is None):
            raise ValueError("give exactly one of packages (a list) or file "
                             "(an apt.txt: one package a line)")
        return self


def parse_apt_txt(text: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Return the packages of an ``apt.txt`` and its problems (line, message).

    One package a line; blank lines and ``#`` comments (whole lines or after
    a name) are skipped; CRLF line ends are accepted; a name listed twice
    counts once.
    """
    packages: list[str] = []
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        found = control_characters(line.replace("\t", " "))
        if found:
            problems.append((number, f"the line contains {found}"))
            continue
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        if len(spec.split()) > 1:
            problems.append((number, f"{spec!r}: one package a line"))
            continue
        problem = package_problem(spec)
        if problem is not None:
            problems.append((number, problem))
        elif spec not in packages:
            packages.append(spec)
    if len(packages) > MAX_PACKAGES:
        problems.append((0, f"{len(packages)} packages; at most {MAX_PACKAGES}"))
    return packages, problems


def load(spec: AptStep, ctx: StepContext) -> None:
    """Read and check the ``apt.txt`` (when given); keep the package list."""
    location = (ctx.file, ctx.line_for(ctx.loc()))
    if spec.packages is not None:
        ctx.input.extra = (list(dict.fromkeys(spec.packages)), location)
        return
    assert spec.file is not None
    data = ctx.read("file", spec.file)
    if data is None:
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        ctx.problem("file", f"{spec.file!r} is not UTF-8 text")
        return
    packages, problems = parse_apt_txt(text)
    for number, message in problems:
        where = f"{spec.file}:{number}: " if number else f"{spec.file}: "
        ctx.problem("file", where + message)
    if not packages and not problems:
        ctx.problem("file", f"{spec.file!r} names no package; list one a line "
                    "or remove the step")
    ctx.input.extra = (packages, location)


def _check_order(index: int, payload: Payload, location: tuple[str, Any]) -> None:
    """Refuse an apt step after a step of another kind."""
    before = [f"install[{i}] ({s.kind})" for i, s in
              enumerate(payload.steps()[:index]) if s.kind != KIND.name]
    if before:
        file, line = location
        raise PayloadInvalid([Problem(
            file, f"install[{index}].apt",
            f"apt steps come first in install (Debian packages are installed "
            f"before the payload's other steps, which may build on them); "
            f"move it before {before[0]}", line)])


def plan(index: int, spec: AptStep, step: StepInput, payload: Payload) -> StepPlan:
    """Plan the step: the package list, one name a line."""
    packages, location = step.extra
    _check_order(index, payload, location)
    return StepPlan(
        index=index,
        kind=KIND.name,
        dir=KIND.step_dir(index),
        files={PACKAGES_FILE: "".join(f"{p}\n" for p in packages).encode()},
        vars={"packages": PACKAGES_FILE},
        data={"packages": list(packages)},
    )


def environment(spec: AptStep, payload_name: str) -> Environment | None:
    """Return None: Debian packages provide no payload Python environment."""
    return None


KIND = Kind(name="apt", model=AptStep, load=load, plan=plan,
            environment=environment, files=("file",))
