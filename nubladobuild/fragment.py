r"""Dockerfile fragments (the ``dockerfile`` install kind): parse, check, splice.

A fragment is a short list of Dockerfile instructions that a payload adds to
the generated Dockerfile, in the final stage, as root, on the JupyterLab
base. Only instructions that cannot change how the image starts, which user
it runs as, or read from outside the payload directory are allowed:

``RUN``, ``COPY`` (sources inside the payload directory), ``ENV``, ``ARG``,
``WORKDIR`` and ``LABEL``.

Every other instruction is refused with the file, the line and the reason.

How a fragment is read
----------------------
The fragment is parsed by BuildKit's own Dockerfile parser (the ``dockerfile``
package wraps ``github.com/moby/buildkit/frontend/dockerfile/parser``), in the
context it is spliced into: after a comment line (so a ``# escape=`` or
``# syntax=`` line in the fragment is a plain comment, as it is in the
generated Dockerfile; such lines are refused because they would mislead) and
followed by the instruction nublado-build writes after every fragment (so a
continuation at the end of the fragment is seen swallowing it). Continuation
lines are joined the way BuildKit joins them (with nothing in between),
comment lines inside continued instructions are dropped, instruction names
are case-insensitive, tabs separate words and flags, flag values are
unquoted: the checker sees the flags BuildKit sees.

What is spliced is not the text as written but one line per instruction,
rebuilt from what was checked (``RUN``: the checked flags and the command;
``COPY``: the checked flags, the payload files and the destination, JSON
form; other instructions: BuildKit's own joined line). No continuation,
comment or escape character reaches the generated Dockerfile, so Docker
engines whose parsers differ in those details (older engines treat an
escaped backslash at the end of a line as a continuation) read the same
instructions.

What is refused beyond the instruction allow-list
-------------------------------------------------
- flags other than ``RUN --mount`` (``type=cache``, ``type=tmpfs``; ``type=secret``
  only for secrets the payload was granted) and ``COPY --chown``/``--chmod``
  (no setuid, setgid or sticky bits); mount options are matched
  case-insensitively, with a strict character set (no quotes, no variables)
  so that no later expansion can change them;
- here-documents (``RUN <<EOF``): engines before Dockerfile 1.4 read their
  lines as instructions, so what runs would depend on the engine;
- ``ENV``/``ARG`` names nublado-build, the lab start-up or the Nublado
  controller use, names that reach the JupyterLab server process or the build
  steps that follow (``PYTHON*``, ``LD_*``, ``BASH_ENV``, ``JUPYTER*``, ``HOME``,
  ``XDG_*``, proxies, CA and package index settings, ...), compared
  case-insensitively; a few harmless ones are allowed (``PYTHONUNBUFFERED``,
  ``PIP_NO_CACHE_DIR``, ...). Names and label keys must be written plainly (no
  quotes, escapes or variables, which BuildKit would expand);
- ``PATH``: a payload may put its own directories first
  (``ENV PATH=/opt/x/bin:$PATH`` is how it exposes its tools to kernels and
  terminals), but every entry must be an absolute directory outside the
  protected trees and the world-writable temporary ones, or ``$PATH``
  itself; no other variables and no empty entries (the current directory);
- ``LABEL`` keys under ``io.nublado`` or ``org.opencontainers``;
- ``WORKDIR``, ``COPY`` destinations and mount targets inside protected trees
  (the lab tree, the server configuration, the kernelspecs, the base
  interpreter and its standard library, the loader's preload files);
- control characters (other than tab and newline), invisible format
  characters and non-ASCII spaces anywhere in the file.

What is not refused: what a ``RUN`` does. A payload runs code as root at
build time by design; the isolation guard, not this checker, catches a
``RUN`` that writes into the lab tree.
"""

from __future__ import annotations

import glob
import importlib
import json
import posixpath
import re
import stat
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

#: BuildKit's Dockerfile parser (compiled Go, no type information).
dockerfile: Any = importlib.import_module("dockerfile")

#: Instructions a fragment may use.
ALLOWED = ("RUN", "COPY", "ENV", "ARG", "WORKDIR", "LABEL")
#: Refused instructions and why (other known ones get a generic reason).
REFUSED: dict[str, str] = {
    "FROM": "FROM starts a new build stage, but a fragment runs inside the "
            "payload stage on the JupyterLab base; to use files from another "
            "image, add a 'transplant' install step",
    "USER": "USER is refused: install steps run as root and nublado-build "
            "switches to the lab user at the end; use 'chown' in RUN or "
            "'COPY --chown' for file ownership",
    "ENTRYPOINT": "ENTRYPOINT is refused: the image starts JupyterLab with "
                  "runlab and a payload may not change how the container starts",
    "CMD": "CMD is refused: the image starts JupyterLab with runlab and a "
           "payload may not change how the container starts",
    "ONBUILD": "ONBUILD is refused: its instructions would run in images built "
               "FROM this one, where nothing validates them",
    "HEALTHCHECK": "HEALTHCHECK is refused: the Nublado controller checks the "
                   "lab's health; a payload may not change how the container runs",
    "ADD": "ADD is refused: it can download URLs and silently unpack archives, "
           "bringing in files that were never checked from outside the payload "
           "directory; use COPY for payload files and RUN (curl, tar) for "
           "downloads",
    "SHELL": "SHELL is refused: it changes the shell of every later RUN, "
             "including the steps nublado-build writes after the fragment; "
             "call the shell you need in the RUN command (RUN bash -c '...')",
}
#: Other Dockerfile instructions: known, but not allowed in a fragment.
_KNOWN = ("EXPOSE", "VOLUME", "STOPSIGNAL", "MAINTAINER")

#: Trees of the image a fragment may not write to, work in or mount over.
PROTECTED_TREES = (
    "/usr/local/share/jupyterlab",     # lab venv, runlab, build helpers, records
    "/usr/local/etc/jupyter",          # the server's configuration
    "/etc/jupyter",                    # system Jupyter configuration
    "/usr/local/share/jupyter",        # kernelspecs, lab extensions
    "/opt/lsst/software/jupyterlab",   # compat start script the old controller runs
    "/etc/nublado",                    # the controller's start-up files
)
#: Paths outside those trees that reach every process, the lab server included.
_PROTECTED_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^/usr(?:/local)?/lib/python3[^/]*(?:/|$)"),
     "the base Python's standard library"),
    (re.compile(r"^/usr(?:/local)?/bin/python[^/]*$"), "the base Python interpreter"),
    (re.compile(r"^/usr(?:/local)?/lib/(?:[^/]+/)?libpython[^/]*$"),
     "the base Python's shared library"),
    (re.compile(r"^/etc/ld\.so\.(?:preload|conf|conf\.d)(?:/|$)"),
     "the dynamic loader's configuration"),
    (re.compile(r"^/etc/profile\.d/zz-nublado[^/]*$"), "the lab's shell hook"),
    (re.compile(r"^/etc/bash\.bashrc$"), "the lab's shell hook"),
)
#: Merged-/usr aliases: /lib/x is /usr/lib/x in the base image.
_USR_ALIASES = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

#: Secrets a payload can be granted, and the BuildKit secret ids they mean.
SECRET_GRANTS: dict[str, tuple[str, ...]] = {
    "ca": ("ca",),
    "index": ("pip_index_url", "pip_extra_index_url"),
}

#: ENV/ARG names nublado-build, runlab or the Nublado controller use.
_RESERVED_NAMES: dict[str, str] = {
    "LAB_USER": "nublado-build's ARG for the final USER",
    "LAB_UID": "nublado-build's ARG for the lab user",
    "LAB_GID": "nublado-build's ARG for the lab user",
    "BASE_IMAGE": "nublado-build's ARG for the base image",
    "EXTRA_APT_PACKAGES": "nublado-build's ARG of the base build",
    "RUNNING_INSIDE_JUPYTERLAB": "the sentinel runlab exports for terminals",
    "HOME": "the lab server reads its configuration and data under HOME",
    "USER": "the user name comes from the container's /etc/passwd",
    "LOGNAME": "the user name comes from the container's /etc/passwd",
    "SHELL": "the lab's terminal shell is set by the server configuration",
    "BASH_ENV": "bash runs the file it names in every script, the lab start "
                "script and the build steps after the fragment included",
    "ENV": "sh runs the file it names in every shell",
    "SHELLOPTS": "it changes every bash script, the lab start script included",
    "BASHOPTS": "it changes every bash script, the lab start script included",
    "PS4": "it runs commands in traced bash scripts",
    "IFS": "it changes how every shell script splits words",
    "CDPATH": "it changes where 'cd' goes in every shell script",
    "GLOBIGNORE": "it changes every bash script's globbing",
    "PROMPT_COMMAND": "set shell prompts in shell.setup instead",
    "GCONV_PATH": "it loads shared libraries into every process",
    "DEBUG": "the Nublado controller sets it",
    "RESET_USER_ENV": "the Nublado controller sets it",
    "CPU_LIMIT": "the Nublado controller sets it",
    "MEM_LIMIT": "the Nublado controller sets it",
    "IMAGE_DIGEST": "the Nublado controller sets it",
    "ACCESS_TOKEN": "the Nublado controller sets it",
    "SSL_CERT_FILE": "it changes which CAs the lab server and the later "
                     "install steps trust; the operator's CA arrives as a "
                     "build secret",
    "SSL_CERT_DIR": "it changes which CAs the lab server and the later install "
                    "steps trust",
    "REQUESTS_CA_BUNDLE": "it changes which CAs the lab server and the later "
                          "install steps trust",
    "CURL_CA_BUNDLE": "it changes which CAs the later install steps trust",
    "HTTP_PROXY": "it routes the later install steps (and the operator's "
                  "index credentials) through another host",
    "HTTPS_PROXY": "it routes the later install steps (and the operator's "
                   "index credentials) through another host",
    "FTP_PROXY": "it routes the later install steps through another host",
    "ALL_PROXY": "it routes the later install steps through another host",
    "NO_PROXY": "it changes how the later install steps reach the index",
}
#: Name prefixes refused for ENV and ARG, and why.
_RESERVED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("NUBLADO_", "nublado-build's own variables"),
    ("JUPYTER", "Jupyter, JupyterLab and JupyterHub read it in the lab server"),
    ("JPY_", "JupyterHub's single-user server reads it"),
    ("PYTHON", "the JupyterLab server's Python reads it"),
    ("LD_", "the dynamic loader reads it in every process, the lab server "
            "included"),
    ("BASH_", "bash reads it in every script, the lab start script included"),
    ("XDG_", "Jupyter finds configuration, data and extensions through it"),
    ("PIP_", "it changes the later pip install steps (the operator's index "
             "settings must win)"),
    ("UV_", "it changes the later uv install steps (the operator's index "
            "settings must win)"),
    ("BUILDKIT_", "BuildKit reads it"),
    ("EXTERNAL_", "the Nublado controller sets it"),
)
#: Names under those prefixes that reach nothing that matters.
_HARMLESS_NAMES = frozenset({
    "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING",
    "PYTHONUTF8", "PYTHONFAULTHANDLER", "PYTHONHASHSEED",
    "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_ROOT_USER_ACTION",
    "PIP_PROGRESS_BAR", "PIP_NO_INPUT", "PIP_DEFAULT_TIMEOUT",
    "UV_LINK_MODE", "UV_COMPILE_BYTECODE", "UV_NO_CACHE",
})
#: Where a payload sets what the refused names would have done.
_NAME_HINT = ("set kernel variables with kernel.env or kernel.setup and terminal "
              "ones with shell.setup in payload.yaml; those reach kernels and "
              "terminals, never the lab server or the build")

_MOUNT_TYPES = ("cache", "tmpfs", "secret")
_MOUNT_KEYS: dict[str, frozenset[str]] = {
    "cache": frozenset({"type", "target", "dst", "destination", "id", "sharing",
                        "mode", "uid", "gid", "ro", "readonly", "rw", "readwrite"}),
    "tmpfs": frozenset({"type", "target", "dst", "destination", "size"}),
    "secret": frozenset({"type", "target", "dst", "destination", "id", "required",
                         "mode", "uid", "gid"}),
}
_BARE_MOUNT_KEYS = frozenset({"ro", "readonly", "rw", "readwrite", "required"})
_MOUNT_VALUE = re.compile(r"^[A-Za-z0-9_.,=/:@+-]+$")
_FLAG = re.compile(r"^--([A-Za-z0-9-]*)(?:=(.*))?$", re.DOTALL)
_CHOWN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
_CHMOD = re.compile(r"^0?[0-7]{3}$")  # no setuid, setgid or sticky bits
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_PATH_ENTRY = re.compile(r"^/[A-Za-z0-9._+@%,=~/-]*$")
_PATH_SELF = ("$PATH", "${PATH}")
#: Characters a COPY path or WORKDIR may not hold (quoting, escapes, variables).
_PATH_UNSAFE = re.compile(r"[\s\"'`\\${}\[\]]")
_GLOB_CHARS = re.compile(r"[*?]")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=", re.IGNORECASE)
_DIRECTIVES = ("syntax", "escape", "check")
#: A word BuildKit (Dockerfile 1.4+) may read as a here-document.
_HEREDOC_WORD = re.compile(r"(?:^|\s)\d*<<(?!<)-?[\"']?[A-Za-z0-9_]")
_HEREDOC_MESSAGE = (
    "{} with a here-document (<<) is refused: Docker engines before "
    "Dockerfile 1.4 read its lines as instructions, so what runs would depend "
    "on the engine; write the commands on continued lines or COPY a script and "
    "RUN it")
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")  # noqa: S108 - image paths

#: Limits: BuildKit's scanner stops silently at longer lines (64 KiB).
MAX_LINE_CHARS = 8192
MAX_FRAGMENT_BYTES = 256 * 1024

#: What the generated Dockerfile has around a fragment (see steps/dockerfile.j2).
_PREFIX = "# nublado-build: fragment\n"
_SUFFIX_LINES = ("# nublado-build: end of fragment", "USER root")


class _Command(NamedTuple):
    cmd: str
    sub_cmd: str | None
    json: bool
    original: str
    start_line: int
    end_line: int
    flags: tuple[str, ...]
    value: tuple[str, ...]
    heredocs: tuple[Any, ...]


@dataclass(frozen=True)
class Instruction:
    """One instruction of a fragment, as BuildKit's parser reads it.

    Attributes
    ----------
    line : int
        The line (1-based) it starts on.
    keyword : str
        The instruction, upper case (``RUN``).
    args : str
        Its arguments (after the keyword), continuation lines joined the way
        BuildKit joins them.
    lines : tuple of str
        The line spliced into the generated Dockerfile (one, rebuilt from
        what was checked).
    end_line : int
        The line it ends on.
    flags : tuple of str
        Its flags, unquoted, as BuildKit reads them (``--mount=type=cache,...``).
    value : tuple of str
        Its arguments as BuildKit's parser splits them.
    json : bool
        Whether it is written in JSON (exec) form.
    heredoc : bool
        Whether BuildKit reads a here-document in it.
    command : str
        For ``RUN``: the command as spliced (shell text, or a JSON array).

    """

    line: int
    keyword: str
    args: str
    lines: tuple[str, ...]
    end_line: int = 0
    flags: tuple[str, ...] = ()
    value: tuple[str, ...] = ()
    json: bool = False
    heredoc: bool = False
    command: str = ""


@dataclass(frozen=True)
class CopySpec:
    """A checked ``COPY``: flags, sources relative to the payload, destination."""

    flags: tuple[str, ...]
    sources: tuple[str, ...]
    dest: str


@dataclass(frozen=True)
class FragmentProblem:
    """A refused line of a fragment."""

    line: int
    message: str


@dataclass(frozen=True)
class Fragment:
    """A parsed and checked fragment.

    Attributes
    ----------
    instructions : tuple of Instruction
        Every instruction, in order.
    copies : dict of int to CopySpec
        The checked ``COPY`` instructions, by their index in ``instructions``.
    files : tuple of str
        Payload-relative paths of every file the ``COPY`` sources match.
    problems : tuple of FragmentProblem
        Refused lines; empty when the fragment can be spliced.

    """

    instructions: tuple[Instruction, ...]
    copies: dict[int, CopySpec]
    files: tuple[str, ...]
    problems: tuple[FragmentProblem, ...]

    @property
    def sets_workdir(self) -> bool:
        """Whether the fragment changes the working directory."""
        return any(i.keyword == "WORKDIR" for i in self.instructions)


# --------------------------------------------------------------------------
# Characters and parsing
# --------------------------------------------------------------------------

def _char_problem(ch: str) -> str | None:
    """Describe a character a fragment may not hold, or return None."""
    if ch in (" ", "\t"):
        return None
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cs", "Cn"):
        name = unicodedata.name(ch, "")
        what = f"U+{ord(ch):04X}" + (f" ({name.lower()})" if name else "")
        if ch == "\r":
            return (f"{what}: save the file with LF line endings; BuildKit and "
                    "nublado-build must see the same lines")
        if ch == "\ufeff":
            return f"{what}: save the file without a byte-order mark"
        if category == "Zs":
            return f"{what}: a space BuildKit may split words on; use a plain space"
        return (f"{what}: control, invisible or line-separator characters are "
                "refused (they can hide or split instructions); only tab and "
                "newline may appear")
    return None


def _scan_characters(lines: list[str]) -> tuple[list[str], list[FragmentProblem]]:
    """Refuse bad characters and over-long lines; return lines safe to parse."""
    clean: list[str] = []
    problems: list[FragmentProblem] = []
    first: dict[str, tuple[int, str]] = {}  # each character once, first line
    counts: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        bad = sorted({(ch, msg) for ch in line if (msg := _char_problem(ch))})
        for ch, msg in bad:
            first.setdefault(ch, (number, msg))
            counts[ch] = counts.get(ch, 0) + 1
        if len(line) > MAX_LINE_CHARS:
            problems.append(FragmentProblem(number, (
                f"the line is {len(line)} characters long (at most "
                f"{MAX_LINE_CHARS}); split it with continuation lines or COPY a "
                "script and RUN it")))
            clean.append("")
            continue
        clean.append("".join(" " if _char_problem(ch) else ch for ch in line)
                     if bad else line)
    for ch, (number, msg) in first.items():
        more = counts[ch] - 1
        problems.append(FragmentProblem(number, f"character {msg}" + (
            f" (on {more} more line{'s' if more > 1 else ''})" if more else "")))
    return clean, problems


def _parse(text: str) -> tuple[list[_Command] | None, str]:
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        return None, str(exc)
    # The wrapper gives None for empty strings (an empty line's "original").
    return [_Command(c.cmd or "", c.sub_cmd, bool(c.json), c.original or "",
                     c.start_line, c.end_line, tuple(c.flags or ()),
                     tuple(v or "" for v in c.value or ()), tuple(c.heredocs or ()))
            for c in commands], ""


def _parse_error_line(lines: list[str]) -> int:
    """Find the first line at which BuildKit's parser fails (bisection)."""
    low, high = 1, len(lines)
    while low < high:
        middle = (low + high) // 2
        commands, _ = _parse(_PREFIX + "\n".join(lines[:middle]) + "\n")
        if commands is None:
            high = middle
        else:
            low = middle + 1
    return low


def _run_command(cmd: _Command) -> str:
    """Return a RUN's command as spliced: the shell text, or the JSON array."""
    if cmd.json:
        return json.dumps(list(cmd.value))
    return cmd.value[0] if cmd.value else ""


def _canonical(cmd: _Command, keyword: str) -> str:
    """Rebuild the single line spliced for an instruction (not COPY)."""
    if keyword == "RUN":
        flags = "".join(f"{f} " for f in cmd.flags)
        return f"RUN {flags}{_run_command(cmd)}"
    return cmd.original.strip()


def parse_fragment(text: str) -> tuple[list[Instruction], list[FragmentProblem]]:
    """Read fragment text with BuildKit's parser, in its spliced context.

    Parameters
    ----------
    text
        The fragment's text.

    Returns
    -------
    tuple
        The instructions and the problems found while reading (characters,
        parser directives, parse errors, a continuation at the end).

    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    clean, problems = _scan_characters(lines)
    for number, line in enumerate(clean, start=1):
        stripped = line.strip()
        match = _DIRECTIVE.match(stripped)
        if match and match.group(1).lower() in _DIRECTIVES:
            problems.append(FragmentProblem(number, (
                f"parser directives ({stripped}) have no effect in a fragment, "
                "which is spliced into a generated Dockerfile; remove the line")))
    body = "\n".join(clean)
    commands, error = _parse(_PREFIX + body + "\n")
    if commands is None and "no instructions" in error:
        return [], problems
    if commands is None:
        where = min(_parse_error_line(clean), max(len(clean), 1))
        problems.append(FragmentProblem(where, _HEREDOC_MESSAGE.format("RUN")
                                        if "heredoc" in error else
                                        f"BuildKit cannot parse the fragment: {error}"))
        return [], problems
    # The same text followed by what nublado-build writes after a fragment:
    # the last instruction must end where the fragment ends.
    spliced, _ = _parse(_PREFIX + body + "\n" + "\n".join(_SUFFIX_LINES) + "\n")
    sentinel_line = len(clean) + len(_SUFFIX_LINES) + 1
    last = spliced[-1] if spliced else None
    if commands and (last is None or last.cmd.upper() != "USER"
                     or last.start_line != sentinel_line or last.value != ("root",)):
        problems.append(FragmentProblem(max(commands[-1].start_line - 1, 1), (
            "the instruction runs past the end of the fragment (a line "
            "continuation '\\' or a here-document at the end of the file): it "
            "would swallow the instruction nublado-build writes after the "
            "fragment; end the instruction on its last line")))
    instructions = []
    for cmd in commands:
        keyword = cmd.cmd.upper()
        args = cmd.original.strip()[len(cmd.cmd):].strip()
        instructions.append(Instruction(
            line=cmd.start_line - 1, keyword=keyword, args=args,
            lines=(_canonical(cmd, keyword),), end_line=min(cmd.end_line - 1,
                                                            len(clean)),
            flags=tuple(cmd.flags), value=tuple(cmd.value), json=bool(cmd.json),
            command=_run_command(cmd) if keyword == "RUN" else "",
            heredoc=bool(cmd.heredocs) or (keyword in ("RUN", "COPY", "ADD")
                                           and bool(_HEREDOC_WORD.search(args)))))
    return instructions, problems


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------

def _normal(path: str) -> str:
    """Normalize an absolute image path, resolving merged-/usr aliases."""
    normal = posixpath.normpath("/" + path.lstrip("/"))
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    for alias in _USR_ALIASES:
        if normal == alias or normal.startswith(alias + "/"):
            return "/usr" + normal
    return normal


def protected_reason(path: str) -> str | None:
    """Say why an absolute image path is protected, or return None.

    Parameters
    ----------
    path
        An absolute path in the image (normalized here; ``/lib`` is read as
        ``/usr/lib``, as in the merged-/usr base).

    Returns
    -------
    str or None
        What the path holds (``inside the protected tree /etc/jupyter``), or
        None when a payload may use it.

    """
    normal = _normal(path)
    for tree in PROTECTED_TREES:
        if normal == tree or normal.startswith(tree + "/"):
            return f"inside the protected tree {tree}"
    for pattern, what in _PROTECTED_PATTERNS:
        if pattern.match(normal):
            return f"{what} ({normal})"
    return None


def _is_inside(path: str, root: Path) -> bool:
    try:
        path_obj = Path(path).resolve()
        path_obj.relative_to(root)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


# --------------------------------------------------------------------------
# Per-instruction checks
# --------------------------------------------------------------------------

@dataclass
class _State:
    """What the checks carry from one instruction to the next."""

    directory: Path
    secret_ids: frozenset[str]
    workdir: str | None = None
    files: list[str] = field(default_factory=list)


def _split_flag(flag: str) -> tuple[str, str | None] | None:
    match = _FLAG.match(flag)
    if not match:
        return None
    return match.group(1), match.group(2)


def _flag_problems(instr: Instruction, allowed: tuple[str, ...]) -> list[str]:
    """Refuse unknown, repeated or unreadable flags."""
    out: list[str] = []
    seen: set[str] = set()
    for flag in instr.flags:
        if not flag.isascii() or not flag.isprintable() or " " in flag:
            out.append(f"{instr.keyword} flag {flag!r} holds spaces or characters "
                       "outside printable ASCII; write flags in plain ASCII")
            continue
        parts = _split_flag(flag)
        name = parts[0].lower() if parts else flag
        if parts is None or not parts[0]:
            out.append(f"{instr.keyword} flag {flag!r} is not a flag BuildKit knows")
            continue
        if name == "from" and instr.keyword == "COPY":
            out.append("COPY --from is refused: it copies from another image or "
                       "stage, outside the payload directory; use a transplant "
                       "step to copy from an image")
            continue
        if parts[0] not in allowed:
            allowed_text = (" and ".join(f"--{a}" for a in allowed) if allowed
                            else "none")
            out.append(f"{instr.keyword} --{parts[0]} is refused (allowed flags: "
                       f"{allowed_text})" + (
                           "; a fragment's RUN has the build's default network and "
                           "security" if name in ("network", "security") else ""))
            continue
        if parts[0] in seen and parts[0] != "mount":
            out.append(f"{instr.keyword} --{parts[0]} is given twice")
        seen.add(parts[0])
    return out


def _mount_problem(value: str | None, state: _State) -> str | None:
    """Check one ``--mount`` value as BuildKit reads it (keys case-insensitive)."""
    if not value:
        return "RUN --mount needs a value (--mount=type=cache,target=DIR)"
    if not _MOUNT_VALUE.match(value):
        return (f"RUN --mount={value} is refused: mount options may hold only "
                "letters, digits and . _ , = / : @ + - (no quotes, spaces or "
                "variables, so that BuildKit reads them as they are checked)")
    options: dict[str, str | None] = {}
    for part in value.split(","):
        key, eq, val = part.partition("=")
        key = key.lower()
        if not key:
            return f"RUN --mount={value} has an empty option"
        if key in options:
            return f"RUN --mount={value} gives {key!r} twice"
        if not eq and key not in _BARE_MOUNT_KEYS:
            return f"RUN --mount={value}: option {key!r} needs a value ({key}=...)"
        options[key] = val if eq else None
    kind = (options.get("type") or "bind").lower()
    if "from" in options:
        return ("RUN --mount with from= is refused: it reads another image or "
                "stage; use a transplant step")
    if kind not in _MOUNT_TYPES:
        return (f"RUN --mount=type={kind} is refused: it can read another image, "
                "the build context or the host outside the payload; use COPY "
                "(payload files) or a transplant step (other images); allowed "
                f"mount types: {', '.join(_MOUNT_TYPES)}")
    extra = sorted(set(options) - _MOUNT_KEYS[kind])
    if extra:
        return (f"RUN --mount=type={kind}: option {extra[0]!r} is refused "
                f"(allowed: {', '.join(sorted(_MOUNT_KEYS[kind]))})")
    target = options.get("target") or options.get("dst") or options.get("destination")
    if sum(k in options for k in ("target", "dst", "destination")) > 1:
        return f"RUN --mount={value} names its target twice"
    if target is not None:
        if not target.startswith("/"):
            return (f"RUN --mount target {target!r} must be an absolute path")
        reason = protected_reason(target)
        if reason:
            return f"RUN --mount target {target} is refused: it is {reason}"
    elif kind != "secret":
        return f"RUN --mount=type={kind} needs target=DIR"
    if kind == "secret":
        secret = options.get("id") or (posixpath.basename(target) if target else "")
        if not secret:
            return "RUN --mount=type=secret needs id=NAME"
        if secret not in state.secret_ids:
            granted = ", ".join(sorted(state.secret_ids)) or "none"
            return (f"RUN --mount=type=secret,id={secret} is refused: a fragment "
                    "gets the operator's secrets only when payload.yaml asks for "
                    "them and the operator allows it (granted ids here: "
                    f"{granted})")
    return None


def _check_run(instr: Instruction, state: _State) -> list[str]:
    out = _flag_problems(instr, ("mount",))
    for flag in instr.flags:
        parts = _split_flag(flag)
        if parts and parts[0] == "mount":
            problem = _mount_problem(parts[1], state)
            if problem:
                out.append(problem)
    if not instr.value or not "".join(instr.value).strip():
        out.append("RUN needs a command")
    elif not instr.json and instr.value[0].startswith("-"):
        out.append("RUN command may not start with '-' (it would be read as a "
                   "flag once spliced)")
    return out


def _check_copy(instr: Instruction, state: _State
                ) -> tuple[CopySpec | None, list[str]]:
    out = _flag_problems(instr, ("chown", "chmod"))
    flags: list[str] = []
    for flag in instr.flags:
        parts = _split_flag(flag)
        if not parts or parts[0] not in ("chown", "chmod"):
            continue
        name, value = parts
        pattern = _CHOWN if name == "chown" else _CHMOD
        if value is None or not pattern.match(value):
            out.append(f"COPY --{name}={value or ''} is refused: use "
                       + ("USER[:GROUP] (names or numbers, no variables)"
                          if name == "chown" else
                          "an octal mode without setuid, setgid or sticky bits "
                          "(0755)"))
            continue
        flags.append(f"--{name}={value}")
    if out:
        return None, out
    args = list(instr.value)
    if len(args) < 2:
        return None, ["COPY needs at least one source and a destination"]
    *sources, dest = args
    for arg in args:
        bad = _PATH_UNSAFE.search(arg)
        if bad or not arg:
            return None, [f"COPY argument {arg!r} holds {bad.group() if bad else ''!r}"
                          ": write paths literally, without quotes, escapes, "
                          "variables, brackets or spaces"]
    root = state.directory.resolve()
    matched: list[str] = []  # payload-relative entries (files or directories)
    for source in sources:
        problem = _source_problem(source)
        if problem:
            return None, [problem]
        normal = posixpath.normpath(source)
        if _GLOB_CHARS.search(normal):
            hits = sorted(glob.glob(normal, root_dir=root, include_hidden=True))
            if not hits:
                return None, [f"COPY source {source!r} matches no file in the "
                              f"payload directory {state.directory}"]
        else:
            hits = [normal]
        for hit in hits:
            if _PATH_UNSAFE.search(hit) or _GLOB_CHARS.search(hit):
                return None, [f"COPY source {hit!r}: the file name holds characters "
                              "BuildKit reads as patterns or quoting; rename it"]
            path = root / hit
            if not _is_inside(str(path), root):
                return None, [f"COPY source {source!r} resolves outside the "
                              "payload directory (through a symbolic link)"]
            if not path.exists():
                return None, [f"COPY source {source!r} does not exist in the "
                              f"payload directory {state.directory}"]
            if not (path.is_file() or path.is_dir()):
                return None, [f"COPY source {hit!r} is a special file (not a "
                              "regular file or directory); remove it or name "
                              "the files to copy"]
            matched.append(hit)
    if dest.startswith("/"):
        dest_abs = dest
    elif state.workdir is not None:
        dest_abs = posixpath.join(state.workdir, dest)
    else:
        return None, [f"COPY destination {dest!r} is relative; write an absolute "
                      "path (or set WORKDIR first in the fragment)"]
    if len(matched) > 1 and not dest.endswith("/"):
        return None, ["COPY with more than one source (or a pattern) needs a "
                      f"destination directory ending in '/', not {dest!r}"]
    problem = _dest_problem(dest_abs, dest.endswith("/") or len(matched) > 1,
                            matched, root)
    if problem:
        return None, [problem]
    for hit in matched:
        state.files.extend(_files_under(root / hit, root))
    return CopySpec(tuple(flags), tuple(matched), dest), []


def _dest_problem(dest: str, is_dir: bool, matched: list[str],
                  root: Path) -> str | None:
    """Refuse a COPY whose destination or any file it writes is protected."""
    reason = protected_reason(dest)
    if reason:
        return (f"COPY destination {dest} is refused: it is {reason}; payload "
                "files belong in the payload's own prefix (e.g. /opt/<name>)")
    for hit in matched:
        path = root / hit
        if path.is_dir():
            targets = [posixpath.join(dest, rel) for rel in
                       _relative_entries(path)]
        else:
            targets = [posixpath.join(dest, posixpath.basename(hit)) if is_dir
                       else dest]
        for target in targets:
            reason = protected_reason(target)
            if reason:
                return (f"COPY of {hit!r} to {dest} is refused: it writes "
                        f"{_normal(target)}, {reason}")
    return None


def _relative_entries(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def _source_problem(source: str) -> str | None:
    if "://" in source:
        return f"COPY source {source!r} is a URL; COPY takes payload files only"
    if source.startswith("/"):
        return (f"COPY source {source!r} is absolute; sources are paths relative "
                "to the payload directory")
    normal = posixpath.normpath(source)
    if normal == ".." or normal.startswith("../"):
        return f"COPY source {source!r} escapes the payload directory ('..')"
    return None


def _files_under(path: Path, root: Path) -> list[str]:
    if path.is_file():
        return [path.relative_to(root).as_posix()]
    found = []
    for item in sorted(path.rglob("*")):
        if item.is_file() and _is_inside(str(item), root):
            found.append(item.relative_to(root).as_posix())
    return found


def name_problem(name: str, keyword: str = "ENV") -> str | None:
    """Say why an ENV or ARG name is refused, or return None.

    Parameters
    ----------
    name
        The variable name as written.
    keyword
        ``ENV`` or ``ARG``, for the message.

    Returns
    -------
    str or None
        The reason, or None when a payload may set the variable.

    """
    if not _ENV_NAME.match(name):
        return (f"{keyword} name {name!r} is refused: write names as letters, "
                "digits and '_' without quotes, escapes or variables")
    upper = name.upper()
    if upper == "PATH" and keyword == "ARG":
        return "ARG PATH is refused: set PATH with ENV (entries are checked there)"
    if upper in _RESERVED_NAMES:
        return (f"{keyword} {name} is refused: {_RESERVED_NAMES[upper]}; "
                f"{_NAME_HINT}")
    if upper in _HARMLESS_NAMES:
        return None
    for prefix, why in _RESERVED_PREFIXES:
        if upper.startswith(prefix):
            return f"{keyword} {name} is refused ({prefix}*: {why}); {_NAME_HINT}"
    return None


def _path_value_problem(value: str) -> str | None:
    """Check ``ENV PATH``: absolute entries outside protected trees, or $PATH."""
    if value.startswith('"') and value.endswith('"') and len(value) > 1:
        value = value[1:-1]  # double quotes: BuildKit still expands $PATH
    for entry in value.split(":"):
        if entry in _PATH_SELF:
            continue
        if not _PATH_ENTRY.match(entry):
            return (f"ENV PATH entry {entry!r} is refused: PATH must be absolute "
                    "directories and $PATH joined with ':' (no other variables, "
                    "quotes or empty entries, which mean the current directory)")
        reason = protected_reason(entry)
        if reason:
            return (f"ENV PATH entry {entry} is refused: it is {reason}; commands "
                    "found there would shadow the system's for kernels, terminals "
                    "and the build steps")
        if any(_normal(entry) == w or _normal(entry).startswith(w + "/")
               for w in _WORLD_WRITABLE):
            return (f"ENV PATH entry {entry} is refused: anyone can write there")
    return None


def _check_env(instr: Instruction) -> list[str]:
    out: list[str] = []
    if instr.flags:
        out.append(f"ENV takes no flags ({instr.flags[0]})")
    value = instr.value
    if not value:
        return ["ENV needs arguments"]
    for name, val in zip(value[::2], value[1::2], strict=False):
        problem = name_problem(name, "ENV")
        if problem:
            out.append(problem)
        elif name.upper() == "PATH":
            problem = _path_value_problem(val)
            if problem:
                out.append(problem)
    return out


def _check_arg(instr: Instruction) -> list[str]:
    out: list[str] = []
    if instr.flags:
        out.append(f"ARG takes no flags ({instr.flags[0]})")
    if not instr.value:
        return ["ARG needs arguments"]
    for item in instr.value:
        problem = name_problem(item.partition("=")[0], "ARG")
        if problem:
            out.append(problem)
    return out


def _check_label(instr: Instruction) -> list[str]:
    out: list[str] = []
    if instr.flags:
        out.append(f"LABEL takes no flags ({instr.flags[0]})")
    if not instr.value:
        return ["LABEL needs arguments"]
    for key in instr.value[::2]:
        if not _LABEL_KEY.match(key):
            out.append(f"LABEL key {key!r} is refused: write keys as letters, "
                       "digits and . _ / - without quotes, escapes or variables")
            continue
        lower = key.lower()
        for prefix in ("io.nublado", "org.opencontainers"):
            if lower == prefix or lower.startswith(prefix + "."):
                out.append(f"LABEL {key} is refused: {prefix}.* labels are "
                           "written by nublado-build and read by the Nublado "
                           "controller; use your own namespace "
                           "(e.g. org.example.payload.*)")
    return out


def _check_workdir(instr: Instruction, state: _State) -> list[str]:
    if instr.flags:
        return [f"WORKDIR takes no flags ({instr.flags[0]})"]
    if len(instr.value) != 1 or not instr.value[0]:
        return ["WORKDIR needs one directory"]
    path = instr.value[0]
    bad = _PATH_UNSAFE.search(path)
    if bad:
        return [f"WORKDIR {path!r} holds {bad.group()!r}: write the directory "
                "literally, without quotes, escapes, variables or spaces"]
    if not path.startswith("/"):
        return [f"WORKDIR {path!r} is relative; write an absolute path"]
    reason = protected_reason(path)
    if reason:
        return [f"WORKDIR {path} is refused: it is {reason}"]
    state.workdir = _normal(path)
    return []


def _check(instr: Instruction, state: _State) -> tuple[CopySpec | None, list[str]]:
    keyword = instr.keyword
    if keyword in REFUSED:
        return None, [REFUSED[keyword]]
    if keyword in _KNOWN:
        return None, [f"{keyword} is not allowed in a payload fragment "
                      f"(allowed: {', '.join(ALLOWED)})"]
    if keyword not in ALLOWED:
        return None, [f"unknown instruction {keyword!r} (a fragment may use "
                      f"{', '.join(ALLOWED)})"]
    if instr.heredoc:
        return None, [_HEREDOC_MESSAGE.format(keyword)]
    canonical = instr.lines[0] if instr.lines else ""
    if canonical.rstrip().endswith("\\"):
        return None, [f"{keyword} ends with a backslash: Docker engines disagree "
                      "on whether that continues the instruction; end the line "
                      "with something else"]
    if keyword == "COPY":
        return _check_copy(instr, state)
    if keyword == "RUN":
        return None, _check_run(instr, state)
    if keyword == "ENV":
        return None, _check_env(instr)
    if keyword == "ARG":
        return None, _check_arg(instr)
    if keyword == "LABEL":
        return None, _check_label(instr)
    return None, _check_workdir(instr, state)


def _read(path: Path) -> tuple[str | None, str]:
    try:
        info = path.stat()
    except OSError as exc:
        return None, f"cannot read the fragment: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode):
        return None, "the fragment is not a regular file"
    if info.st_size > MAX_FRAGMENT_BYTES:
        return None, (f"the fragment is {info.st_size} bytes (at most "
                      f"{MAX_FRAGMENT_BYTES}); COPY scripts and RUN them instead")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read the fragment: {exc.strerror or exc}"
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason})"


def secret_ids(grants: Iterable[str]) -> frozenset[str]:
    """Return the BuildKit secret ids that granted secret names stand for.

    Parameters
    ----------
    grants
        Names from :data:`SECRET_GRANTS` (``ca``, ``index``) that the payload
        asked for and the operator allowed.

    Returns
    -------
    frozenset of str
        The secret ids a fragment's ``RUN --mount=type=secret`` may use.

    """
    return frozenset(i for g in grants for i in SECRET_GRANTS.get(g, ()))


def check_fragment(path: Path, directory: Path, *,
                   secrets: Collection[str] = ()) -> Fragment:
    """Parse and check a fragment file of a payload.

    Parameters
    ----------
    path
        The fragment file.
    directory
        The payload directory; ``COPY`` sources must stay inside it.
    secrets
        Secret grants (``ca``, ``index``; see :data:`SECRET_GRANTS`) the
        payload asked for and the operator allowed. Without a grant every
        ``RUN --mount=type=secret`` is refused.

    Returns
    -------
    Fragment
        The instructions, the files they copy, and every refused line.

    """
    text, error = _read(path)
    if text is None:
        return Fragment((), {}, (), (FragmentProblem(1, error),))
    instructions, problems = parse_fragment(text)
    if not instructions and not problems:
        problems.append(FragmentProblem(1, "the fragment has no instructions"))
    state = _State(directory=directory, secret_ids=secret_ids(secrets))
    copies: dict[int, CopySpec] = {}
    for index, instr in enumerate(instructions):
        spec, found = _check(instr, state)
        problems.extend(FragmentProblem(instr.line, p) for p in found)
        if spec is not None:
            copies[index] = spec
    problems.sort(key=lambda p: p.line)
    return Fragment(tuple(instructions), copies, tuple(sorted(set(state.files))),
                    tuple(problems))


@dataclass(frozen=True)
class Spliced:
    """One fragment instruction as the payload template writes it.

    Either ``lines`` (one line, rebuilt from what was checked) or a ``COPY``
    with ``copy_flags`` and ``copy_args`` (sources rewritten into the build
    context, JSON form). A ``RUN`` also has ``run_flags`` and
    ``run_command`` (``lines`` is ``RUN <run_flags> <run_command>``), so that
    a template can add its own mounts (``RUN <mounts> <run_flags>
    <run_command>``) to the payload's commands.
    """

    line: int
    lines: tuple[str, ...] = ()
    copy_flags: tuple[str, ...] = ()
    copy_args: tuple[str, ...] = ()
    run_flags: tuple[str, ...] = ()
    run_command: str = ""


def splice(fragment: Fragment, context_dir: str) -> tuple[Spliced, ...]:
    """Return the fragment's instructions for the payload Dockerfile template.

    Each instruction becomes one line rebuilt from what was checked (no
    continuation, comment or escape character reaches the generated
    Dockerfile). ``COPY`` sources are moved under ``context_dir`` (where the
    payload files are put in the build context), patterns expanded to the
    files they matched.

    Parameters
    ----------
    fragment
        A fragment without problems.
    context_dir
        The build-context directory holding the copied payload files.

    Returns
    -------
    tuple of Spliced
        One entry per instruction, in order.

    Raises
    ------
    ValueError
        If the fragment has problems.

    """
    if fragment.problems:
        raise ValueError("a fragment with problems cannot be spliced")
    out: list[Spliced] = []
    for index, instr in enumerate(fragment.instructions):
        spec = fragment.copies.get(index)
        if instr.keyword == "RUN":
            out.append(Spliced(instr.line, lines=instr.lines,
                               run_flags=instr.flags, run_command=instr.command))
        elif spec is None:
            out.append(Spliced(instr.line, lines=instr.lines))
        else:
            args = tuple(posixpath.join(context_dir, s) for s in spec.sources)
            out.append(Spliced(instr.line, copy_flags=spec.flags,
                               copy_args=(*args, spec.dest)))
    return tuple(out)
