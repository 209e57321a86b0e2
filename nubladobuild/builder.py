"""Run BuildKit builds and tag the result only when the build succeeded.

A failed or interrupted build leaves no tag: the image is built untagged
(``--iidfile``) and tagged afterwards, so previous tags stay as they were.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nubladobuild.engine import find_build_client, tag_image
from nubladobuild.errors import BuildFailed, InputError
from nubladobuild.progress import Progress, install_step, plain_title, step_name
from nubladobuild.refs import BadReference, parse_reference
from nubladobuild.secrets import BuildSecrets, SecretFiles, mask_secrets

#: Called with each line of build output. A :class:`~nubladobuild.progress.Progress`
#: is one too: it then shows the build's steps instead of its raw lines.
LineSink = Callable[[str], None]

_STEP = re.compile(r"^#(\d+) ")
_ERROR_STEP = re.compile(r"^#(\d+) ERROR")
_DIGEST_LINE = re.compile(r"^#\d+ sha256:[0-9a-f]{64}$")
_FAILED_RUN = re.compile(r"(?:executor failed running|process) \"?\[?(.*?)\]?\"? "
                         r"(?:did not complete successfully: )?.*exit code: (\d+)")


class _Terminated(Exception):
    """SIGTERM arrived during a build: stop it like an interrupt."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` while a build runs (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_tags(tags: Sequence[str]) -> list[tuple[str, str]]:
    """Parse ``--tag`` references into (repository, tag) pairs.

    Raises
    ------
    InputError
        Naming the first invalid reference.
    """
    pairs = []
    for reference in tags:
        try:
            ref = parse_reference(reference)
        except BadReference as exc:
            raise InputError(f"--tag: {exc}") from None
        if ref.digest:
            raise InputError(f"--tag {reference}: a tag cannot carry a digest")
        pairs.append((ref.repository, ref.tag_or_latest))
    return pairs


@dataclass(frozen=True)
class BuildResult:
    """A finished build: the image ID, its tags and how long it took."""

    image_id: str
    tags: tuple[str, ...]
    seconds: float
    log: Path


def _log_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    path = base / "nublado-build" / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class PayloadSource:
    """Where a payload's install steps are written, for failure messages.

    Attributes
    ----------
    file : str
        The payload file (``payloads/x/payload.yaml``).
    lines : mapping of int to int
        The line of each install step in it, by index.
    """

    file: str
    lines: Mapping[int, int]

    def where(self, index: int) -> str:
        """Return ``file:line`` of install step ``index`` (``file`` alone)."""
        line = self.lines.get(index)
        return f"{self.file}:{line}" if line else self.file


def _failure_message(what: str, lines: Sequence[str], log: Path,
                     returncode: int, payload: PayloadSource | None = None) -> str:
    """Name the failing step, show its last lines, say where the log is.

    A step of a payload install step is named as payload.yaml names it
    (``install[1].script``, by :func:`~nubladobuild.progress.step_name`,
    as the progress display does), with the payload file and the line.
    """
    failed_step = None
    for line in lines:
        match = _ERROR_STEP.match(line)
        if match:
            failed_step = match.group(1)
    title, name, detail = "", None, []
    if failed_step is not None:
        step_lines = [ln for ln in lines if ln.startswith(f"#{failed_step} ")]
        if step_lines:
            # The step as the user knows it: without BuildKit mount flags.
            raw_title = step_lines[0].split(" ", 1)[1]
            title = plain_title(raw_title)
            name = step_name(raw_title)
        detail = [ln.split(" ", 2)[-1] if _STEP.match(ln) else ln
                  for ln in step_lines[1:]
                  if not _DIGEST_LINE.match(ln)][-25:]
    else:
        detail = list(lines)[-25:]
    exit_code = next((m.group(2) for ln in reversed(lines)
                      if (m := _FAILED_RUN.search(ln))), None)
    head = f"{what} failed"
    install = install_step(name)
    if install is not None:
        head += f" at step {name}"
        if payload is not None:
            head += f" of {payload.where(install[0])}"
    elif title:
        head += f" at step {title}"
    if exit_code:
        head += f" (exit code {exit_code})"
    head += "."
    if install is not None:
        head += f"\n  Docker step: {title}"
    body = "\n".join(f"  | {ln}" for ln in detail)
    return (f"{head}\n{body}\nNo image was tagged; existing tags are unchanged. "
            f"Full build log: {log}")


def run_build(*, what: str, context: Path, dockerfile: Path,
              build_args: dict[str, str], tags: Sequence[str],
              secrets: BuildSecrets, sink: LineSink | None = None,
              no_cache: bool = False,
              check: Callable[[str], None] | None = None,
              payload: PayloadSource | None = None) -> BuildResult:
    """Build with BuildKit, then tag the image; tag nothing on failure.

    Parameters
    ----------
    what
        A name for messages ("base image", "payload scipy-lab").
    context, dockerfile
        The build context and the Dockerfile to use.
    build_args
        ``--build-arg`` values.
    tags
        Tags to apply once the build succeeded.
    secrets
        Secrets handed to the build (never stored in a layer).
    sink
        Receives each output line; a :class:`~nubladobuild.progress.Progress`
        shows the steps (``Progress.build``); None is quiet.
    no_cache
        Build every step again.
    check
        Called with the built image's ID before anything is tagged; a
        :class:`BuildFailed` it raises leaves the image untagged.
    payload
        The payload file and its install steps' lines: a failed install
        step is named ``install[N].KIND`` at ``payload.yaml:LINE``.

    Raises
    ------
    BuildFailed
        With the failing step and its last lines, when the build fails or is
        interrupted, or what ``check`` raised.
    """
    pairs = check_tags(tags)
    client = find_build_client()
    log = _log_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    with tempfile.TemporaryDirectory(prefix="nublado-build-") as tmp, \
            SecretFiles(secrets) as secret_args:
        iidfile = Path(tmp) / "iid"
        argv = [*client.argv, "--progress=plain", "--iidfile", str(iidfile),
                "-f", str(dockerfile), *secret_args]
        for key, value in sorted(build_args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        if no_cache:
            argv.append("--no-cache")
        argv.append(str(context))
        env = {**os.environ, **client.env}
        tail: deque[str] = deque(maxlen=4000)
        start = time.monotonic()
        with log.open("w", encoding="utf-8") as log_file:
            log_file.write(mask_secrets("$ " + " ".join(argv) + "\n", secrets))
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env=env,
                                    errors="replace", start_new_session=True)
            assert proc.stdout is not None
            display = sink.build(what) if isinstance(sink, Progress) \
                else contextlib.nullcontext(sink)
            with display as line_sink:
                try:
                    with _sigterm_stops():
                        for raw in proc.stdout:
                            raw = mask_secrets(raw, secrets)
                            line = raw.rstrip("\n")
                            log_file.write(raw)
                            tail.append(line)
                            if line_sink is not None:
                                line_sink(line)
                        returncode = proc.wait()
                except (KeyboardInterrupt, _Terminated):
                    os.killpg(proc.pid, signal.SIGINT)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                    raise BuildFailed(f"{what}: build interrupted. No image was "
                                      "tagged; existing tags are unchanged. "
                                      f"Log: {log}") from None
        seconds = time.monotonic() - start
        if returncode != 0 or not iidfile.is_file():
            raise BuildFailed(_failure_message(f"Build of {what}", list(tail), log,
                                               returncode, payload))
        image_id = iidfile.read_text().strip()
    if check is not None:
        check(image_id)
    for repository, tag in pairs:
        tag_image(image_id, repository, tag)
    return BuildResult(image_id=image_id, tags=tuple(tags), seconds=seconds, log=log)


def stderr_sink(line: str) -> None:
    """Print a build output line to stderr (the default progress display)."""
    print(line, file=sys.stderr, flush=True)
