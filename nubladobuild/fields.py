"""Validated field types shared by the payload schema and every install kind.

One place for what a path, a prefix, a file name, a shell line or an
environment variable may be, and for the trees of the image that a payload
may never install into (:data:`PROTECTED_TREES`), each with the reason a
message gives.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
    WithJsonSchema,
)

#: The JupyterLab tree that payloads must never write into.
LAB_ROOT = "/usr/local/share/jupyterlab"

#: Trees a payload prefix, transplant path or compat link may not be nor sit
#: inside, with the reason named in the message.
PROTECTED_TREES: tuple[tuple[str, str], ...] = (
    (LAB_ROOT, "the JupyterLab tree (lab venv, start-up, build helpers)"),
    ("/usr/local/etc/jupyter", "the JupyterLab server configuration"),
    ("/etc/jupyter", "a Jupyter configuration directory the server reads"),
    ("/usr/local/share/jupyter", "Jupyter data the server reads (kernelspecs, "
     "lab settings)"),
    ("/usr/share/jupyter", "Jupyter data the server reads"),
    ("/opt/nublado", "nublado-build's own files (the start hook the start-up runs)"),
    ("/usr/local/lib/python3*", "the base interpreter's standard library"),
    ("/usr/local/lib/libpython*", "the base interpreter's library"),
    ("/usr/local/bin/python*", "the base interpreter (the lab venv runs it)"),
    ("/usr/bin/python*", "the system interpreter (a base may run the lab on it)"),
    ("/proc", "a kernel file system"),
    ("/sys", "a kernel file system"),
    ("/dev", "device files"),
    ("/run", "runtime state (secrets are mounted there during builds)"),
    ("/tmp", "scratch space that is a memory file system at run time"),  # noqa: S108 - container path
    ("/var/tmp", "scratch space"),  # noqa: S108 - container path
    ("/boot", "a system directory"),
    ("/etc", "system configuration"),
    ("/bin", "a system directory"),
    ("/sbin", "a system directory"),
    ("/lib", "a system directory"),
    ("/lib64", "a system directory"),
    ("/usr/bin", "a system directory"),
    ("/usr/sbin", "a system directory"),
    ("/usr/lib", "a system directory"),
    ("/usr/lib64", "a system directory (the dynamic loader)"),
    ("/usr/include", "a system directory"),
    ("/root", "root's home"),
)
#: Directories a prefix may sit inside but not be.
SYSTEM_DIRS = frozenset((
    "/", "/usr", "/usr/local", "/usr/local/bin", "/usr/local/lib",
    "/usr/local/sbin", "/usr/local/include", "/usr/local/share", "/usr/share",
    "/opt", "/home", "/var", "/var/lib", "/srv", "/mnt", "/media",
))

_PATH_CHARS = re.compile(r"^/[A-Za-z0-9._+/-]*\Z")  # \Z: "$" allows a final "\n"
_REL_CHARS = re.compile(r"^[A-Za-z0-9._+/-]+\Z")
#: Control characters (C0, DEL, C1) and lone surrogates: never in a
#: Dockerfile, a shell line or a label.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_OR_TAB = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def inside(path: str, root: str) -> bool:
    """Return whether ``path`` is ``root`` or lies below it.

    A ``root`` ending in ``*`` matches every name it starts (``python3.13``,
    ``python3``, ``libpython3.13.so.1.0``) and what lies below those.
    """
    if root.endswith("*"):
        return path.startswith(root[:-1])
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def protected_reason(path: str) -> str | None:
    """Return why ``path`` may not be installed into, or None when it may."""
    for root, reason in PROTECTED_TREES:
        if inside(path, root):
            return f"{root.rstrip('*')} is {reason}"
    if path in SYSTEM_DIRS:
        return f"{path} is a system directory"
    return None


def covers_protected(path: str) -> str | None:
    """Return the protected tree that lies inside ``path`` (or is it), if any.

    A transplanted or linked directory replaces everything below it: one
    that holds a protected tree replaces that tree too.
    """
    for root, reason in PROTECTED_TREES:
        if inside(root.rstrip("*"), path):
            return f"{root.rstrip('*')} ({reason})"
    return None


def control_characters(value: str) -> str | None:
    """Return a description of the first control character in ``value``."""
    match = _CONTROL_OR_TAB.search(value)
    if match is None:
        return None
    char = match.group(0)
    if "\ud800" <= char <= "\udfff":
        return "a lone surrogate (not valid Unicode text)"
    return f"the control character U+{ord(char):04X}"


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path, got {value!r}")
    if not _PATH_CHARS.match(value):
        raise ValueError(
            f"{value!r} contains characters other than letters, digits and ._+-/"
        )
    if ".." in value.split("/") or \
            posixpath.normpath(value) != (value.rstrip("/") or "/"):
        raise ValueError(f"{value!r} must be a normalized path without '..'")
    return value.rstrip("/") or "/"


def _prefix(value: str) -> str:
    value = _absolute_path(value)
    reason = protected_reason(value)
    if reason is not None:
        raise ValueError(
            f"{value!r} cannot be a payload prefix: {reason}; install into a "
            "dedicated directory such as /opt/<payload>"
        )
    return value


def _replaceable(value: str) -> str:
    """Check a path copied whole: no protected tree in it or above it."""
    value = _prefix(value)
    covered = covers_protected(value)
    if covered is not None:
        raise ValueError(f"{value!r} cannot be a payload prefix: it holds "
                         f"{covered}; copy a directory below it")
    return value


def _interpreter(value: str) -> str:
    """Check an interpreter a kernel or step runs: never the lab's own."""
    value = _absolute_path(value)
    if inside(value, LAB_ROOT):
        raise ValueError(f"{value!r} is inside the JupyterLab tree {LAB_ROOT}; a "
                         "kernel must run the payload's interpreter, never the "
                         "lab's")
    return value


def _relative_file(value: str) -> str:
    if value.startswith("/") or not _REL_CHARS.match(value):
        raise ValueError(
            f"{value!r} must be a path relative to the payload directory, "
            "made of letters, digits and ._+-/"
        )
    if ".." in value.split("/"):
        raise ValueError(f"{value!r} escapes the payload directory ('..')")
    return posixpath.normpath(value)


def _one_line(value: str) -> str:
    found = control_characters(value.replace("\t", " "))
    if found:
        raise ValueError(f"must be a single line of text; it contains {found}")
    return value


def _text(value: str) -> str:
    """Plain text on one line: YAML's multi-line forms fold to spaces."""
    found = control_characters(value.replace("\t", " ").replace("\n", " ")
                               .replace("\r", " "))
    if found:
        raise ValueError(f"must be plain text; it contains {found}")
    return " ".join(value.split())


# What the JSON Schema (``nublado-build schema``) says of each field type:
# the character rules an editor can check as the user types. The
# validators above stay the authority (protected trees, '..', lab paths);
# WithJsonSchema changes only the published schema, never validation.
_ABS_JSON = WithJsonSchema({"type": "string", "pattern": r"^/[A-Za-z0-9._+/-]*$"})
_REL_JSON = WithJsonSchema({"type": "string",
                            "pattern": r"^[A-Za-z0-9._+-][A-Za-z0-9._+/-]*$"})
_LINE_PATTERN = r"^[^\u0000-\u0008\u000a-\u001f\u007f-\u009f]*$"

AbsPath = Annotated[str, AfterValidator(_absolute_path), _ABS_JSON]
Prefix = Annotated[str, AfterValidator(_prefix), _ABS_JSON]
#: A prefix copied whole into the image (transplant paths).
WholePath = Annotated[str, AfterValidator(_replaceable), _ABS_JSON]
#: An interpreter a kernel or install step names.
Interpreter = Annotated[str, AfterValidator(_interpreter), _ABS_JSON]
RelFile = Annotated[str, AfterValidator(_relative_file), _REL_JSON]
Line = Annotated[str, AfterValidator(_one_line),
                 WithJsonSchema({"type": "string", "pattern": _LINE_PATTERN})]
EnvValue = Annotated[str, StringConstraints(max_length=8192),
                     AfterValidator(_one_line),
                     WithJsonSchema({"type": "string", "maxLength": 8192,
                                     "pattern": _LINE_PATTERN})]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                           max_length=128)]
Text = Annotated[str, AfterValidator(_text)]
DnsLabel = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"),
]
KernelName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
]


#: Build secrets a script or fragment step may ask for (``secrets:``); pip
#: and conda steps always get them. ``ca``: the CA bundle; ``index``: the
#: package index URLs, credentials included.
SecretName = Literal["ca", "index"]
#: BuildKit secret ids behind each name.
SECRET_IDS: dict[str, tuple[str, ...]] = {
    "ca": ("ca",), "index": ("pip_index_url", "pip_extra_index_url")}


class Strict(BaseModel):
    """Base of every payload model: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)
