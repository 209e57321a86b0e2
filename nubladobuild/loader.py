"""Stage 1, load: read and check a payload directory, every file once.

YAML with line numbers, the schema, then each install kind reads and checks
the files it names (:mod:`nubladobuild.kinds`). Every problem is collected
and reported at once (:class:`PayloadInvalid`), each with the file, the
YAML path (``install[0].pip.requirements``) and the line it is on. File
checks run for every step whose own settings are valid, even when other
parts of the payload are not. After this stage nothing reads the payload
directory again.
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nubladobuild.compat import profile_problems
from nubladobuild.errors import InputError, Loc, PayloadInvalid, Problem
from nubladobuild.fields import control_characters
from nubladobuild.interpreter import static_problems
from nubladobuild.kinds import KINDS, StepContext, StepInput
from nubladobuild.kinds._protocol import read_payload_file, special_kind
from nubladobuild.lab import LOCK_FILE as LAB_LOCK
from nubladobuild.schema import INSTALL_KINDS, MISSING_KERNEL, Payload

PAYLOAD_FILE = "payload.yaml"
#: payload.yaml larger than this is refused before parsing.
MAX_PAYLOAD_BYTES = 256 * 1024
#: payload.yaml whose aliases expand to more values than this is refused.
MAX_YAML_NODES = 100_000
#: ... or to more text than this (characters, all values together).
MAX_EXPANDED_CHARS = 1024 * 1024

#: Tags pydantic puts in an error's location for union members.
_UNION_TAGS = ("str", "constrained-str")


def _is_union_tag(part: str) -> bool:
    """Return whether a location part is a pydantic union-member tag."""
    return part in _UNION_TAGS or part.startswith(("function-", "constrained-"))
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
    """A validated payload, where it came from, and what its steps read.

    Attributes
    ----------
    model : Payload
        The validated payload.
    directory : Path
        The payload directory.
    inputs : tuple of StepInput
        What each install step read and parsed, in ``install`` order.
    lines : dict
        YAML location -> line, for problems found in later stages.
    lab_lock : bytes or None
        The lock file of ``lab.extensions`` (:data:`nubladobuild.lab.LOCK_FILE`)
        when the payload has extensions and the file exists; the plan
        checks it against payload.yaml.
    source : bytes
        ``payload.yaml`` as read (with ``inputs``, ``lab_lock`` and
        ``start_script``, every file the loader read; see
        :func:`nubladobuild.resolve.inputs_sha256`).
    start_script : bytes or None
        The start hook's script (``start.script``), when there is one.
    """

    model: Payload
    directory: Path
    inputs: tuple[StepInput, ...] = ()
    lines: dict[Loc, int] = field(default_factory=dict, compare=False)
    lab_lock: bytes | None = None
    source: bytes = field(default=b"", compare=False)
    start_script: bytes | None = None

    def line_for(self, loc: Loc) -> int | None:
        """Return the payload.yaml line of a YAML location."""
        return _line_for(loc, self.lines)

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


def _expanded_chars(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Return the text ``node`` stands for once aliases are expanded (chars).

    Memoized like :func:`_expanded_size`: a long string referenced many
    times costs its expansion here, so it can be refused before anything
    is rendered from it.
    """
    key = id(node)
    if key in sizes:
        return sizes[key]
    sizes[key] = MAX_EXPANDED_CHARS + 1
    if isinstance(node, yaml.ScalarNode):
        total = len(str(node.value))
    elif isinstance(node, yaml.MappingNode):
        total = sum(_expanded_chars(k, sizes) + _expanded_chars(v, sizes)
                    for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total = sum(_expanded_chars(item, sizes) for item in node.value)
    else:
        total = 0
    sizes[key] = min(total, MAX_EXPANDED_CHARS + 1)
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
        if isinstance(name, str) and not name.isascii():
            return (f"unknown field {name!a} (it has non-ASCII characters "
                    "that look like ASCII ones); retype it")
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
                and (p[:1].isupper() or _is_union_tag(p))]
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
                                              and not _is_union_tag(p)))
        where = format_loc(loc)
        problems.append(Problem(file, where, _message(error, loc),
                                _line_for(loc, lines)))
    return problems


def _step_problems(data: dict[str, Any], directory: Path, file: str,
                   lines: dict[Loc, int], model: Payload | None, locking: bool
                   ) -> tuple[list[Problem], list[StepInput]]:
    """Let each kind read and check the files of every step that parsed."""
    problems: list[Problem] = []
    inputs: list[StepInput] = []
    name = data.get("name") if isinstance(data.get("name"), str) else "payload"
    kernel_python = model.kernel_python if model is not None else None
    tests = data.get("tests") if isinstance(data.get("tests"), str) else None
    exclude = ("payload.yaml",) + ((tests.strip("/"),) if tests else ())
    install = data.get("install")
    for index, step in enumerate(install if isinstance(install, list) else []):
        if not isinstance(step, dict) or len(step) != 1:
            continue
        kind_name, raw = next(iter(step.items()))
        kind = KINDS.get(kind_name)
        if kind is None:
            continue
        try:
            spec = kind.model.model_validate(raw)
        except ValidationError:
            # The schema reports what is wrong; the files that are named
            # well are still checked, so that every problem shows at once.
            for name in kind.files:
                value = raw.get(name) if isinstance(raw, dict) else None
                if isinstance(value, str) and value and not value.startswith("/") \
                        and ".." not in value.split("/"):
                    loc: Loc = ("install", index, kind_name, name)

                    def report(msg: str, loc: Loc = loc) -> None:
                        problems.append(Problem(file, format_loc(loc), msg,
                                                _line_for(loc, lines)))

                    read_payload_file(directory, value, report)
            continue
        ctx = StepContext(index=index, kind=kind_name, directory=directory,
                          file=file, line_for=lambda loc: _line_for(loc, lines),
                          kernel_python=kernel_python, payload_name=str(name),
                          exclude=exclude, locking=locking)
        kind.load(spec, ctx)
        problems.extend(ctx.problems)
        inputs.append(ctx.input)
    if isinstance(tests, str):
        problems.extend(_tests_problems(tests, directory, file, lines))
    return problems, inputs


def _tests_problems(tests: str, directory: Path, file: str,
                    lines: dict[Loc, int]) -> list[Problem]:
    if tests.startswith("/") or ".." in tests.split("/"):
        return []  # the schema reports these
    line = _line_for(("tests",), lines)
    path = directory / tests
    try:
        resolved = path.resolve(strict=True)
        resolved.relative_to(directory.resolve())
    except (OSError, RuntimeError):
        return [Problem(file, "tests", f"directory {tests!r} does not exist in "
                        f"{directory}; create it or fix the path", line)]
    except ValueError:
        return [Problem(file, "tests", f"{tests!r} resolves outside the payload "
                        f"directory {directory}", line)]
    if not resolved.is_dir():
        return [Problem(file, "tests", f"{tests!r} is not a directory; name the "
                        "directory of the payload's test_*.py files", line)]
    return []


@dataclass(frozen=True)
class RawPayload:
    """A payload.yaml read and parsed as YAML, before any schema check."""

    #: The file's path, for messages.
    file: str
    #: The top-level mapping, as YAML gave it.
    data: dict[str, Any]
    #: The line of every YAML location.
    lines: dict[Loc, int]
    #: Duplicate keys: location, message, line.
    dupes: list[tuple[Loc, str, int]]
    #: The file's text, as read.
    text: str = ""


def read_payload_yaml(directory: Path) -> RawPayload:
    """Read a payload directory's ``payload.yaml`` as YAML, with every YAML guard.

    The file must be a regular UTF-8 file inside the directory, of bounded
    size, without control characters, alias bombs or a top level other than
    a mapping. Nothing is validated against the schema here.

    Parameters
    ----------
    directory
        The directory holding ``payload.yaml``.

    Returns
    -------
    RawPayload
        The parsed mapping with its line numbers and duplicate keys.

    Raises
    ------
    InputError
        When the directory or file cannot be read.
    PayloadInvalid
        When the file is not a YAML mapping within the limits.
    """
    if not directory.is_dir():
        raise InputError(f"{directory}: payload directory does not exist. Pass the "
                         f"directory that holds {PAYLOAD_FILE}.")
    path = directory / PAYLOAD_FILE
    file = str(path)
    if path.is_symlink():
        try:
            path.resolve(strict=True).relative_to(directory.resolve())
        except (OSError, RuntimeError):
            raise InputError(f"{file}: is a symbolic link that loops or points to "
                             f"nothing. Make {PAYLOAD_FILE} a regular file.") from None
        except ValueError:
            raise InputError(f"{file}: is a symbolic link that resolves outside "
                             f"the payload directory. Copy the file into "
                             f"{directory}.") from None
    if not path.exists():
        from nubladobuild.init import repo2docker_files  # init imports the schema

        binder = repo2docker_files(directory)
        hint = (f" It holds repo2docker files ({', '.join(binder)}): `nublado-build "
                f"init {directory}` writes a {PAYLOAD_FILE} from them."
                if binder else "")
        raise InputError(f"{file}: no {PAYLOAD_FILE} in {directory}. Create one "
                         f"(see the README for an example).{hint}")
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        what = special_kind(mode) or "a directory"
        raise InputError(f"{file}: is {what}, not a regular file. Make "
                         f"{PAYLOAD_FILE} a YAML file.")
    size = path.stat().st_size
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadInvalid([Problem(file, "", f"file is {size} bytes; a payload "
                                      f"description is at most {MAX_PAYLOAD_BYTES}")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadInvalid([Problem(file, "", f"not UTF-8 text ({exc.reason} at "
                                      f"byte {exc.start})")]) from None
    found = control_characters(text.replace("\t", " ").replace("\n", " ")
                               .replace("\r", " "))
    if found:
        bad = next(i for i, ln in enumerate(text.splitlines(), 1)
                   if control_characters(ln.replace("\t", " ")))
        raise PayloadInvalid([Problem(file, "", f"the file contains {found}; "
                                      "remove it", bad)])
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
    if node is not None and _expanded_chars(node, {}) > MAX_EXPANDED_CHARS:
        raise PayloadInvalid([Problem(file, "", "the YAML expands to more than "
                                      f"{MAX_EXPANDED_CHARS // 1024} KiB of text "
                                      "(aliases repeating long values?); a payload "
                                      "description is far smaller", 1)])
    if node is not None:
        _compose_lines(node, (), lines, dupes)
    if not isinstance(data, dict):
        raise PayloadInvalid([Problem(file, "", "the top level must be a mapping "
                                      "with name, install and kernel", 1)])
    return RawPayload(file=file, data=data, lines=lines, dupes=dupes, text=text)


def load_payload(directory: Path, *, locking: bool = False) -> LoadedPayload:
    """Load, validate and check a payload directory.

    Parameters
    ----------
    directory
        The directory holding ``payload.yaml`` and the files it names.
    locking
        Load for ``nublado-build lock``: a pip step's lock file may be
        missing or stale.

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
    logging.getLogger("nubladobuild.stages").info("load %s", directory)
    raw = read_payload_yaml(directory)
    file, data, lines = raw.file, raw.data, raw.lines
    dupes = raw.dupes
    problems = [Problem(file, format_loc(loc), msg, line) for loc, msg, line in dupes]
    model: Payload | None = None
    try:
        model = Payload.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, file, lines))
        # The schema says "no kernel" only once the fields are valid (a model
        # check); say it with the other problems, so every one shows at once.
        if isinstance(data, dict) and "kernel" not in data \
                and "kernels" not in data \
                and not any(p.location in ("kernel", "kernels") for p in problems):
            problems.append(Problem(file, "kernel", MISSING_KERNEL, None))
    step_problems, inputs = _step_problems(data, directory, file, lines, model,
                                           locking)
    problems.extend(step_problems)
    # python3.N older than the kernel stack supports: refused without an engine
    problems.extend(Problem(file, format_loc(loc), msg, _line_for(loc, lines))
                    for loc, msg in static_problems(data.get("install")))
    problems.extend(profile_problems(data.get("compat"), file,
                                     lambda loc: _line_for(loc, lines)))
    lab_lock = None
    if model is not None and model.lab.extensions \
            and (directory / LAB_LOCK).exists():
        def report(msg: str) -> None:
            problems.append(Problem(file, "lab.extensions", msg,
                                    _line_for(("lab", "extensions"), lines)))

        lab_lock = read_payload_file(directory, LAB_LOCK, report)
    start_script = _start_script(data.get("start"), directory, file, lines,
                                 problems)
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.location))
        raise PayloadInvalid(problems)
    assert model is not None
    return LoadedPayload(model=model, directory=directory, inputs=tuple(inputs),
                         lines=lines, lab_lock=lab_lock,
                         source=raw.text.encode("utf-8"),
                         start_script=start_script)


def _start_script(start: object, directory: Path, file: str, lines: dict[Loc, int],
                  problems: list[Problem]) -> bytes | None:
    """Read ``start.script`` (even when other start settings are invalid)."""
    script = start.get("script") if isinstance(start, dict) else None
    if not isinstance(script, str) or not script or script.startswith("/") \
            or ".." in script.split("/"):
        return None  # the schema reports these

    def report(msg: str) -> None:
        problems.append(Problem(file, "start.script", msg,
                                _line_for(("start", "script"), lines)))

    return read_payload_file(directory, script, report)
