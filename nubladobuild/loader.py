"""Load and check a payload directory: YAML with line numbers, schema, files.

Every problem is collected and reported at once (:class:`PayloadInvalid`),
each with the file, the YAML path (``install[0].pip.requirements``) and the
line it is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nubladobuild.checks import payload_problems
from nubladobuild.errors import InputError, Loc, PayloadInvalid, Problem
from nubladobuild.schema import INSTALL_KINDS, Payload

PAYLOAD_FILE = "payload.yaml"
#: payload.yaml larger than this is refused before parsing.
MAX_PAYLOAD_BYTES = 256 * 1024
#: payload.yaml whose aliases expand to more values than this is refused.
MAX_YAML_NODES = 100_000
#: Referenced files larger than this are refused (requirements, scripts...).
MAX_INPUT_BYTES = 16 * 1024 * 1024
#: Fields of each install kind that name a file in the payload directory.
FILE_FIELDS: dict[str, tuple[str, ...]] = {
    "pip": ("requirements",),
    "conda": ("environment", "lock"),
    "script": ("path",),
    "dockerfile": ("path",),
    "transplant": (),
}

#: Tags pydantic puts in an error's location for union members.
_UNION_TAGS = ("str", "constrained-str", "function-after[_absolute_path(), str]")
#: What a field's pattern means, for messages (pydantic shows the regex).
_PATTERN_HINTS = {
    "name": "use a DNS label: lowercase letters, digits and '-', at most 63 "
            "characters, starting and ending with a letter or digit (it becomes "
            "the image name); kernel names may also use '.' and '_'",
    "python": "use an absolute path or python3[.N]",
    "image": "use an image reference such as registry.example.org/stack:tag",
    "compat": "use a compat profile name (lowercase letters, digits and '-', "
              "one of the files in compat/) or a mapping {path, target, mode}",
}


@dataclass(frozen=True)
class LoadedPayload:
    """A validated payload and where it came from."""

    model: Payload
    directory: Path

    @property
    def yaml_path(self) -> Path:
        """Return the path of the payload's YAML file."""
        return self.directory / PAYLOAD_FILE

    def file(self, relative: str) -> Path:
        """Return the absolute path of a file named relative to the payload."""
        return self.directory / relative


class _LineLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (YAML would keep the last)."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Return how many nodes ``node`` stands for once aliases are expanded.

    Memoized by node identity, so an alias bomb ("billion laughs") costs its
    size in the file, not its expansion; a recursive alias counts as huge.
    """
    key = id(node)
    if key in sizes:
        return sizes[key]
    sizes[key] = MAX_YAML_NODES + 1  # in progress: a cycle counts as too big
    total = 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            total += _expanded_size(key_node, sizes) + _expanded_size(value_node,
                                                                      sizes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, sizes)
    sizes[key] = min(total, MAX_YAML_NODES + 1)
    return sizes[key]


def _compose_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int],
                   problems: list[tuple[Loc, str, int]]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append((loc + (key,), f"duplicate key {key!r} (first on "
                                 f"line {seen[key]}); keep one", line))
            seen[key] = line
            lines[loc + (key,)] = line
            _compose_lines(value_node, loc + (key,), lines, problems)
            lines[loc + (key,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _compose_lines(item, loc + (index,), lines, problems)


def format_loc(loc: Loc) -> str:
    """Format a location tuple as a YAML path such as ``install[0].pip``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get((), None)


def _message(error: Any, loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        name = loc[-1] if loc else "?"
        if len(loc) == 3 and loc[0] == "install" and isinstance(loc[1], int):
            return (f"unknown install kind {name!r}; use one of "
                    f"{', '.join(INSTALL_KINDS)}")
        return f"unknown field {name!r}; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch":
        field = next((p for p in reversed(loc) if isinstance(p, str)), "")
        hint = _PATTERN_HINTS.get(field)
        if hint:
            return f"{error.get('input')!r} is not valid: {hint}"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _pydantic_problems(exc: ValidationError, file: str,
                       lines: dict[Loc, int]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        # A union member the input plainly is not (a mapping given where a
        # name could go, or a name where a mapping could) is noise.
        tags = [p for p in error["loc"] if isinstance(p, str)
                and (p[:1].isupper() or p in _UNION_TAGS)]
        if tags and ((error["type"] == "string_type"
                      and isinstance(error["input"], dict))
                     or (error["type"] == "model_type"
                         and isinstance(error["input"], str))):
            continue
        # Drop pydantic's union-member tags (e.g. 'str', 'CompatLink').
        # Keys such as env names (OMP_NUM_THREADS) stay: tags are CamelCase.
        loc = tuple(p for p in error["loc"]
                    if isinstance(p, int) or (not (p[:1].isupper()
                                                   and not p.isupper())
                                              and p not in _UNION_TAGS))
        where = format_loc(loc)
        problems.append(Problem(file, where, _message(error, loc),
                                _line_for(loc, lines)))
    return problems


def _file_problems(data: dict[str, Any], directory: Path, file: str,
                   lines: dict[Loc, int]) -> list[Problem]:
    """Check every referenced file exists inside the payload directory."""
    problems: list[Problem] = []
    root = directory.resolve()

    def check(loc: Loc, value: object, want_dir: bool = False) -> None:
        if not isinstance(value, str) or not value or value.startswith("/") \
                or ".." in value.split("/"):
            return  # the schema reports these
        path = (directory / value)
        line = _line_for(loc, lines)
        where = format_loc(loc)
        try:
            resolved = path.resolve()
            resolved.relative_to(root)
        except ValueError:
            problems.append(Problem(file, where, f"{value!r} resolves outside the "
                                    f"payload directory {directory}", line))
            return
        if want_dir:
            if not resolved.is_dir():
                problems.append(Problem(file, where, f"directory {value!r} does not "
                                        f"exist in {directory}; create it or fix "
                                        "the path", line))
            return
        if not resolved.is_file():
            problems.append(Problem(file, where, f"file {value!r} does not exist in "
                                    f"{directory}; create it or fix the path", line))
        elif resolved.stat().st_size > MAX_INPUT_BYTES:
            problems.append(Problem(file, where, f"file {value!r} is larger than "
                                    f"{MAX_INPUT_BYTES // (1024 * 1024)} MiB", line))

    install = data.get("install")
    if isinstance(install, list):
        for index, step in enumerate(install):
            if not isinstance(step, dict):
                continue
            for kind, fields in FILE_FIELDS.items():
                spec = step.get(kind)
                if isinstance(spec, dict):
                    for name in fields:
                        check(("install", index, kind, name), spec.get(name))
    if "tests" in data:
        check(("tests",), data["tests"], want_dir=True)
    return problems


def load_payload(directory: Path) -> LoadedPayload:
    """Load, validate and check a payload directory.

    Parameters
    ----------
    directory
        The directory holding ``payload.yaml`` and the files it names.

    Returns
    -------
    LoadedPayload
        The validated model and its directory.

    Raises
    ------
    InputError
        When the directory or file cannot be read.
    PayloadInvalid
        With every schema and file problem found, when there is any.
    """
    if not directory.is_dir():
        raise InputError(f"{directory}: payload directory does not exist. Pass the "
                         f"directory that holds {PAYLOAD_FILE}.")
    path = directory / PAYLOAD_FILE
    file = str(path)
    if not path.is_file():
        raise InputError(f"{file}: no {PAYLOAD_FILE} in {directory}. Create one "
                         "(see the README for an example).")
    size = path.stat().st_size
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadInvalid([Problem(file, "", f"file is {size} bytes; a payload "
                                      f"description is at most {MAX_PAYLOAD_BYTES}")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadInvalid([Problem(file, "", f"not UTF-8 text ({exc.reason} at "
                                      f"byte {exc.start})")]) from None
    if not text.strip():
        raise PayloadInvalid([Problem(file, "", "file is empty; it needs at least "
                                      "name, install and kernel")])
    lines: dict[Loc, int] = {}
    dupes: list[tuple[Loc, str, int]] = []
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise PayloadInvalid([Problem(file, "", f"invalid YAML: {reason}", line)]) \
            from None
    except RecursionError:
        raise PayloadInvalid([Problem(file, "", "invalid YAML: nested too deeply")]) \
            from None
    if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
        raise PayloadInvalid([Problem(file, "", "YAML aliases expand to more than "
                                      f"{MAX_YAML_NODES} values (or refer to "
                                      "themselves); write the values out", 1)])
    if node is not None:
        _compose_lines(node, (), lines, dupes)
    if not isinstance(data, dict):
        raise PayloadInvalid([Problem(file, "", "the top level must be a mapping "
                                      "with name, install and kernel", 1)])
    problems = [Problem(file, format_loc(loc), msg, line) for loc, msg, line in dupes]
    model: Payload | None = None
    try:
        model = Payload.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, file, lines))
    problems.extend(_file_problems(data, directory, file, lines))
    if model is not None:
        problems.extend(payload_problems(model, directory, file,
                                         lambda loc: _line_for(loc, lines)))
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.location))
        raise PayloadInvalid(problems)
    assert model is not None
    return LoadedPayload(model=model, directory=directory)
