"""Progress of long steps: builds, bootstrap phases, pushes.

Every command shows progress through one :class:`Progress`
(:func:`for_stream`): on a terminal a ``rich`` live display
(:class:`LiveProgress`: one line per build step with a spinner while it
runs and its time, or CACHED, when done); elsewhere (CI, pipes, ``TERM=dumb``)
plain lines (:class:`PlainProgress`: one per finished step with its time).
``--json`` shows none (the CLI passes no progress at all).

A build's output is BuildKit's plain progress (``--progress=plain``):
:func:`parse_line` reads one line, :class:`BuildSteps` follows the steps.
Step names use the payload's terms where the rendered Dockerfile allows:
a step that mounts ``steps/00-pip`` is ``install[0].pip``, the stage
``conda-1`` is ``install[1].conda``, the guard stage is ``isolation guard``.
The raw log stays in the log file ``builder.run_build`` writes; a failed
build's message (step, last lines, log path) is the builder's, which names
the step with the same :func:`step_name`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

#: What a line of BuildKit's plain progress is.
LineKind = Literal["text", "output", "done", "cached", "error", "canceled",
                   "digest", "other"]
#: What state a build step is in.
StepState = Literal["running", "done", "cached", "error", "canceled"]

_VERTEX = re.compile(r"^#(\d+) (.*)$")
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")
_OUTPUT = re.compile(r"^\d+\.\d+(?: (.*))?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_STAGE = re.compile(r"^\[(?:([^\]\s]+)\s+)?\s*(\d+)/(\d+)\] (.*)$")
_MOUNT = re.compile(r"--mount=\S+\s*")
_STEP_DIR = re.compile(r"\bsource=steps/(\d+)-([a-z]+)\b")
#: A script step names itself to run-install-script (its files are shared).
_SCRIPT_STEP = re.compile(r"/run-install-script\s+'?install\[(\d+)\]\.(script)\b")
#: A step name of a payload install step: ``install[N].KIND`` and a detail.
_INSTALL_NAME = re.compile(r"^install\[(\d+)\]\.([a-z]+)\b")
_FROM_STAGE = re.compile(r"--from=(conda|transplant)-(\d+)\b")
_KIND_STAGE = re.compile(r"^(conda|transplant)-(\d+)$")
_HELPER = re.compile(r"(?:/tmp/nb-build|/usr/local/share/jupyterlab/build)/"
                     r"([A-Za-z0-9._-]+)")
#: The payload template's own COPY steps, by how their titles start.
_KNOWN_COPIES = (("COPY [kernel/", "kernel files"), ("COPY [shell/", "shell setup"),
                 ("COPY --from=nublado-guard ", "guard report"))
#: Our image-side scripts say what the user should see with this prefix.
MESSAGE_PREFIX = "nublado-build: "
#: Longest step name shown (a fragment's RUN can be long).
MAX_NAME = 64


@dataclass(frozen=True)
class Line:
    """One parsed line of BuildKit's plain progress output.

    ``vertex`` is the step number (``#N``), None for lines outside any step
    (BuildKit's closing error summary). ``text`` is the rest: a title or
    status text, a line of the step's output, or an error message;
    ``seconds`` the time of a DONE line.
    """

    kind: LineKind
    vertex: int | None = None
    text: str = ""
    seconds: float | None = None


def parse_line(line: str) -> Line:
    """Classify one line of ``docker build --progress=plain`` output."""
    match = _VERTEX.match(line)
    if match is None:
        return Line("other", None, line)
    vertex, rest = int(match.group(1)), match.group(2)
    if (done := _DONE.match(rest)) is not None:
        return Line("done", vertex, seconds=float(done.group(1)))
    if rest == "CACHED":
        return Line("cached", vertex)
    if rest == "CANCELED":
        return Line("canceled", vertex)
    if rest.startswith("ERROR"):
        return Line("error", vertex, rest.removeprefix("ERROR").lstrip(": "))
    if _DIGEST.match(rest):
        return Line("digest", vertex, rest)
    if (output := _OUTPUT.match(rest)) is not None:
        return Line("output", vertex, output.group(1) or "")
    return Line("text", vertex, rest)


def step_name(title: str) -> str | None:
    """Return the name a step is shown by; None for BuildKit's internal steps.

    ``[nublado-payload 2/5] RUN --mount=...,source=steps/00-pip,... install-pip``
    is ``install[0].pip``; a step of no payload install step is named by
    its build helper (``write-manifest``, ``install-lab-venv``) or its
    instruction without mount flags.
    """
    if title.startswith("[internal]"):
        return None
    match = _STAGE.match(title)
    if match is None:
        return "export image" if title == "exporting to image" else _short(title)
    stage, instruction = match.group(1) or "", match.group(4)
    plain = plain_title(instruction)
    kind_stage = _KIND_STAGE.match(stage)
    if plain.startswith("FROM "):
        if kind_stage and kind_stage.group(1) == "transplant":
            return f"install[{int(kind_stage.group(2))}].transplant (pull)"
        return _short(plain)
    step_dir = _STEP_DIR.search(instruction) or _SCRIPT_STEP.search(instruction)
    if step_dir is not None:
        return f"install[{int(step_dir.group(1))}].{step_dir.group(2)}"
    if (from_stage := _FROM_STAGE.search(instruction)) is not None:
        return f"install[{int(from_stage.group(2))}].{from_stage.group(1)} (copy)"
    if kind_stage is not None:
        return f"install[{int(kind_stage.group(2))}].{kind_stage.group(1)} (setup)"
    if "install-lab-extensions" in instruction:
        return "lab.extensions"
    if "/nb-guard/guard.py" in instruction:
        return "isolation guard"
    for start, name in _KNOWN_COPIES:
        if plain.startswith(start):
            return name
    helpers = [str(h) for h in _HELPER.findall(plain) if h != "with-build-secrets"]
    if plain.startswith("RUN ") and helpers:
        return helpers[0]
    return _short(plain)


def install_step(name: str | None) -> tuple[int, str] | None:
    """Return the install step (index, kind) a step name of :func:`step_name` is of.

    ``install[1].conda (copy)`` is ``(1, "conda")``; None for names of
    other steps (``write-manifest``, ``isolation guard``).
    """
    match = _INSTALL_NAME.match(name or "")
    return (int(match.group(1)), match.group(2)) if match else None


def plain_title(title: str) -> str:
    """Return a BuildKit step title without mount flags, spaces folded."""
    return " ".join(_MOUNT.sub("", title).split())


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_NAME else text[:MAX_NAME - 3] + "..."


@dataclass
class Step:
    """A build step as the display shows it."""

    vertex: int
    name: str | None
    state: StepState = "running"
    seconds: float | None = None
    started: float = field(default_factory=time.monotonic)
    last: str = ""
    announced: bool = False

    @property
    def visible(self) -> bool:
        """Return whether the step is shown (BuildKit's internal ones are not)."""
        return self.name is not None


#: What :meth:`BuildSteps.feed` reports: a payload step that started
#: running, a step that finished, or a message of an image-side script.
Update = (tuple[Literal["started"], Step] | tuple[Literal["finished"], Step]
          | tuple[Literal["message"], str])


def _payload_step(step: Step) -> bool:
    """Whether a step is one of the payload's own (long, worth announcing)."""
    return install_step(step.name) is not None or step.name == "lab.extensions"


class BuildSteps:
    """Follow the steps of one build through its plain progress lines."""

    def __init__(self) -> None:
        self.steps: dict[int, Step] = {}

    def feed(self, raw: str) -> list[Update]:
        """Read one line; return what finished, or what a script wants shown."""
        line = parse_line(raw)
        if line.vertex is None:
            return []
        step = self.steps.get(line.vertex)
        if step is None:
            if line.kind != "text":
                return []  # a status before any title: nothing to show
            self.steps[line.vertex] = Step(line.vertex, step_name(line.text))
            return []
        updates: list[Update] = []
        if line.kind == "output":
            if line.text.strip():
                step.last = line.text
            # Its first output says a payload step runs (a cached step has
            # none): plain output announces it, since it may take minutes.
            if not step.announced and step.state == "running" \
                    and _payload_step(step):
                step.announced = True
                updates.append(("started", step))
            if line.text.startswith(MESSAGE_PREFIX):
                updates.append(("message", line.text))
        elif line.kind in ("done", "cached", "error", "canceled") \
                and step.state == "running":
            step.state = line.kind
            step.seconds = line.seconds
            if step.visible:
                updates.append(("finished", step))
        return updates

    @property
    def visible(self) -> list[Step]:
        """Return the shown steps, in the order they started."""
        return [s for s in self.steps.values() if s.visible]


@dataclass
class Phase:
    """A long step outside a build (debootstrap, a push).

    Set ``result`` to say what came of it (shown instead of the name), or
    ``failed`` when it did not succeed without raising.
    """

    name: str
    result: str | None = None
    failed: bool = False
    started: float = field(default_factory=time.monotonic)


def finished_text(step: Step) -> str:
    """Return what a finished step shows after its name: its time, CACHED, ..."""
    if step.state == "cached":
        return "CACHED"
    if step.state == "error":
        return "failed"
    if step.state == "canceled":
        return "canceled"
    return f"{step.seconds or 0.0:.1f} s"


class Progress:
    """Where progress goes; :func:`for_stream` picks the kind.

    A progress is a line sink too: calling it shows a message.
    """

    #: Whether this is a live (terminal) display.
    live = False

    def message(self, text: str) -> None:
        """Show a line of text."""
        raise NotImplementedError

    def __call__(self, text: str) -> None:
        """Show a line of text (a progress is a line sink)."""
        self.message(text)

    @contextlib.contextmanager
    def build(self, what: str) -> Iterator[Callable[[str], None]]:
        """Show a build's steps; yield the sink for its output lines."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Show a long step with its elapsed time."""
        raise NotImplementedError
        yield  # pragma: no cover


class PlainProgress(Progress):
    """Plain lines: one per finished build step or phase, with its time."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def message(self, text: str) -> None:
        """Print a line."""
        print(text, file=self._stream or sys.stderr, flush=True)

    @contextlib.contextmanager
    def build(self, what: str) -> Iterator[Callable[[str], None]]:
        """Print each step of the build when it finishes."""
        steps = BuildSteps()

        def sink(raw: str) -> None:
            for kind, item in steps.feed(raw):
                if kind == "message":
                    assert isinstance(item, str)
                    self.message(item)
                elif kind == "started":
                    assert isinstance(item, Step)
                    self.message(f"  {item.name}  running")
                else:
                    assert isinstance(item, Step)
                    self.message(f"  {item.name}  {finished_text(item)}")

        yield sink

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Print the phase's name and time when it ends."""
        current = Phase(name)
        try:
            yield current
        except BaseException:
            self.message(f"  {name}  failed")
            raise
        seconds = time.monotonic() - current.started
        if current.failed:
            self.message(f"  {name}  failed")
        else:
            self.message(f"  {current.result or name}  {seconds:.1f} s")


class _BuildView:
    """The live display of a build: one row per step."""

    def __init__(self, what: str, steps: BuildSteps) -> None:
        self.what = what
        self.steps = steps
        self.spinners: dict[int, Spinner] = {}
        self.started = time.monotonic()

    def __rich__(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        table.add_column(width=1)
        table.add_column()
        table.add_column(justify="right")
        table.add_column(style="dim", overflow="ellipsis", no_wrap=True,
                         max_width=60)
        for step in self.steps.visible:
            table.add_row(*_step_row(step, self.spinners))
        head = Text(f"{self.what}  {time.monotonic() - self.started:.0f} s",
                    style="bold")
        return Group(head, table)


def _step_row(step: Step, spinners: dict[int, Spinner]) -> tuple[
        RenderableType, str, str, str]:
    name = step.name or ""
    if step.state == "running":
        spinner = spinners.setdefault(step.vertex, Spinner("dots"))
        return (spinner, name, f"{time.monotonic() - step.started:.0f} s",
                step.last.strip())
    mark = {"done": "[green]✓[/]", "cached": "[dim]✓[/]", "error": "[red]✗[/]",
            "canceled": "[yellow]-[/]"}[step.state]
    return (mark, name, finished_text(step), "")


class _PhaseView:
    def __init__(self, phase: Phase) -> None:
        self.phase = phase
        self.spinner = Spinner("dots")
        self.done = False

    def __rich__(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        seconds = f"{time.monotonic() - self.phase.started:.1f} s"
        if not self.done:
            table.add_row(self.spinner, self.phase.name, seconds)
        elif self.phase.failed:
            table.add_row("[red]✗[/]", self.phase.name, "failed")
        else:
            table.add_row("[green]✓[/]", self.phase.result or self.phase.name,
                          seconds)
        return table


class LiveProgress(Progress):
    """A ``rich`` live display on a terminal."""

    live = True

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None

    def message(self, text: str) -> None:
        """Print a line above the live display (markup is not interpreted)."""
        target = self._live.console if self._live is not None else self.console
        target.print(text, markup=False, highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def _showing(self, view: _BuildView | _PhaseView) -> Iterator[Live]:
        with Live(view, console=self.console, refresh_per_second=8,
                  transient=False, redirect_stdout=False,
                  redirect_stderr=False) as live:
            self._live = live
            try:
                yield live
            finally:
                self._live = None
                live.refresh()

    @contextlib.contextmanager
    def build(self, what: str) -> Iterator[Callable[[str], None]]:
        """Show each step: a spinner while it runs, its time when done."""
        steps = BuildSteps()

        with self._showing(_BuildView(what, steps)):

            def sink(raw: str) -> None:
                for kind, item in steps.feed(raw):
                    if kind == "message":
                        assert isinstance(item, str)
                        self.message(item)

            yield sink

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Show a spinner and the elapsed time; the result when it ends."""
        current = Phase(name)
        view = _PhaseView(current)
        with self._showing(view):
            try:
                yield current
            except BaseException:
                current.failed = True
                raise
            finally:
                view.done = True


def for_stream(stream: TextIO | None = None,
               environ: dict[str, str] | None = None) -> Progress:
    """Return the progress for a stream (stderr by default).

    A live display when the stream is a terminal and ``TERM`` is not
    ``dumb``; plain lines otherwise. ``NO_COLOR`` keeps the live display
    without colours.
    """
    env = os.environ if environ is None else environ
    target = stream or sys.stderr
    isatty = getattr(target, "isatty", None)
    if not (callable(isatty) and isatty()) or env.get("TERM") == "dumb":
        return PlainProgress(stream)
    return LiveProgress(Console(file=target, no_color="NO_COLOR" in env,
                                highlight=False))
