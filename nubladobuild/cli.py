"""The ``nublado-build`` command line: a thin layer over the modules."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from nubladobuild import __version__
from nubladobuild.builder import check_tags
from nubladobuild.condalock import PLATFORMS as CONDA_PLATFORMS
from nubladobuild.errors import (
    EXIT_INPUT,
    EnvironmentProblem,
    InputError,
    LockOutdated,
    NubladoError,
    PayloadInvalid,
    PushFailed,
    TagError,
    TestFailed,
)
from nubladobuild.fields import control_characters
from nubladobuild.images import (
    PYTHON_IMAGE_CHOICES,
    BaseOptions,
    PayloadBuild,
    build_base,
    build_payload,
    plan_payload,
    prepare_context,
    resolve_python_image,
    up_to_date,
)
from nubladobuild.init import check_written, plan_init, write_payload
from nubladobuild.interpreter import (
    BaseCheck,
    check_against_base,
    needs_base,
    step_facts,
)
from nubladobuild.loader import LoadedPayload, load_payload
from nubladobuild.payload_schema import schema_text
from nubladobuild.plan import DEFAULT_BASE_IMAGE, check_base_reference, check_grants
from nubladobuild.profiles import (
    DEFAULT_PROFILE,
    check_profile,
    hub_majors,
    profile_names,
)
from nubladobuild.progress import Progress, for_stream
from nubladobuild.push import Destination, Pushed, check_destinations, push_image
from nubladobuild.secrets import host_secrets, mask_secrets
from nubladobuild.tags import (
    DEFAULT_DAILIES,
    DEFAULT_RECOMMENDED,
    DEFAULT_RELEASES,
    DEFAULT_WEEKLIES,
    POLICIES,
    architecture_tags,
    check_build_tags,
    rebuild_tag,
    tags_report,
)

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_BASE_TAG = DEFAULT_BASE_IMAGE


class Output:
    """Where results go: human text on stderr/stdout, or one JSON document.

    Progress (``nubladobuild.progress``) goes to stderr: a live display on a
    terminal, plain lines otherwise, nothing in JSON mode.
    """

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._display = None if as_json else for_stream()

    def progress(self, line: str) -> None:
        """Show a progress line (not in JSON mode)."""
        if self._display is not None:
            self._display.message(line)

    @property
    def sink(self) -> Progress | None:
        """Return the build progress (a line sink): None (quiet) in JSON mode."""
        return self._display

    def result(self, data: dict[str, Any], text: str) -> None:
        """Print the command's result."""
        if self.as_json:
            click.echo(json.dumps({"ok": True, **data}, indent=2, sort_keys=True))
        else:
            click.echo(text)


def _one_line_values(ctx: click.Context, param: click.Parameter,
                     value: Any) -> Any:
    """Refuse control characters in flag values before anything runs."""
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        found = control_characters(item) if isinstance(item, str) else None
        if found:
            raise InputError(f"--{(param.name or '').replace('_', '-')}: contains "
                             f"{found}; pass a single line")
    return value


def json_option(func: F) -> F:
    """Add ``--json`` (machine-readable output) to a command."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON document instead of text.")(func)


def secret_options(func: F) -> F:
    """Add the options that feed BuildKit secrets."""
    func = click.option("--ca-bundle", type=click.Path(path_type=Path),
                        help="PEM CA bundle trusted inside the build (a BuildKit "
                        "secret). Default: pip's cert setting or the system one.")(func)
    func = click.option("--index-url", callback=_one_line_values,
                        help="Package index URL for pip inside the "
                        "build, credentials included (a BuildKit secret).")(func)
    return click.option("--no-host-config", is_flag=True, help="Do not read pip's "
                        "configuration and CA bundle from this host.")(func)


def allow_secret_option(func: F) -> F:
    """Add ``--allow-secret`` (grant secrets to script and fragment steps)."""
    return click.option("--allow-secret", "allow_secrets", multiple=True,
                        type=click.Choice(["ca", "index"]),
                        help="Hand this secret to the script and fragment steps "
                        "that ask for it (`secrets:` in payload.yaml); pip and "
                        "conda steps always get them. Repeat for both.")(func)


def conda_channel_option(func: F) -> F:
    """Add ``--conda-channel`` (replaces the channels of every conda step)."""
    return click.option("--conda-channel", "conda_channels", multiple=True,
                        callback=_one_line_values,
                        envvar="NUBLADO_CONDA_CHANNEL", help="Conda channel name or "
                        "URL (https://, file:///) to solve against instead of the "
                        "payload's; repeat for several. Env: NUBLADO_CONDA_CHANNEL "
                        "(space-separated).")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nublado-build")
def cli() -> None:
    """Build two-Python JupyterLab images for Nublado.

    A locked JupyterLab server environment (the base) and a payload
    environment for kernels and terminals, described by payload.yaml.
    """


@cli.command()
@click.argument("payload_dirs", nargs=-1, required=True,
                type=click.Path(path_type=Path))
@click.option("--base", "base_image", default=DEFAULT_BASE_IMAGE, show_default=True,
              help="The base image a pip step's python3.N is checked against "
              "(when it exists on the engine).")
@json_option
def validate(payload_dirs: tuple[Path, ...], base_image: str, as_json: bool) -> None:
    """Check payload.yaml files and the files they name; report every problem.

    A pip step's python3.N is checked against the --base image's Python
    when that image is on the engine; when it is not, validate says the
    check was not done (stderr, and "interpreter" under --json).
    """
    out = Output(as_json)
    results: list[dict[str, Any]] = []
    failed: list[NubladoError] = []
    check_base_reference(base_image)
    for directory in payload_dirs:
        try:
            loaded = load_payload(directory)
            plan_payload(loaded, base_image)  # compat links need the plan
            checked = _check_interpreters(loaded, base_image)
            if checked.status == "not done":
                click.echo(f"nublado-build: {directory}: the interpreter check "
                           f"against the base was not done: {checked.reason}",
                           err=True)
            results.append({"payload": str(directory), "name": loaded.model.name,
                            "valid": True, "interpreter": checked.as_json()})
        except NubladoError as exc:
            failed.append(exc)
            results.append({"payload": str(directory), "valid": False,
                            "error": exc.message})
    if failed:
        invalid = [e for e in failed if isinstance(e, PayloadInvalid)]
        if len(failed) == 1 or len(invalid) != len(failed):
            raise failed[0]
        raise PayloadInvalid([p for e in invalid for p in e.problems])
    out.result({"payloads": results},
               "\n".join(f"{r['payload']}: valid ({r['name']})" for r in results))


def _check_interpreters(loaded: LoadedPayload, base_image: str) -> BaseCheck:
    """Check a pip step's python3.N against the base, when the base is here.

    Raises
    ------
    PayloadInvalid
        When the base cannot run a requested interpreter.
    """
    from nubladobuild.engine import inspect_image  # the Docker SDK, when needed

    if not needs_base(step_facts(loaded)):
        return BaseCheck("not needed")
    try:
        info = inspect_image(base_image)
    except EnvironmentProblem:
        return BaseCheck("not done", "no Docker engine answers; "
                         "build and render check it against the base")
    if info is None:
        return BaseCheck("not done", f"the base image {base_image} is not on this "
                         "engine; build it with `nublado-build base` or pass --base "
                         "(build and render check it)")
    return check_against_base(loaded, base_image, info)


@cli.command("schema")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write the schema to this file instead of standard output.")
def schema_cmd(output: Path | None) -> None:
    """Print the JSON Schema of payload.yaml (for editors and CI checks).

    The package ships the same schema as nubladobuild/data/payload.schema.json;
    point the YAML language server at it with a first line
    `# yaml-language-server: $schema=PATH` in payload.yaml.
    """
    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
        return
    if output.is_dir():
        raise InputError(f"--output {output}: is a directory; name a file such as "
                         f"{output / 'payload.schema.json'}")
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--output {output}: cannot write it ({exc.strerror}); "
                         "name a writable file") from None
    click.echo(f"wrote {output}", err=True)


@cli.command("render")
@click.argument("payload_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Directory to write the Dockerfile and build context to.")
@click.option("--base", "base_image", default=DEFAULT_BASE_IMAGE, show_default=True,
              help="Base image the Dockerfile builds on.")
@click.option("--no-fetch", is_flag=True, help="Do not solve and fetch conda "
              "packages into the context (it is then not buildable as is).")
@conda_channel_option
@json_option
def render_cmd(payload_dir: Path, output: Path, base_image: str, no_fetch: bool,
               conda_channels: tuple[str, ...], as_json: bool) -> None:
    """Write the Dockerfile and build context for a payload; build nothing.

    Conda steps: their packages are solved (or read from the lock) and
    fetched into the context too, unless --no-fetch.
    """
    plan = plan_payload(load_payload(payload_dir), check_base_reference(base_image))
    resolved, _ = prepare_context(plan, output, conda_channels=conda_channels,
                                  fetch=not no_fetch)
    fetched = resolved.conda
    note = "".join(f"\ninstall[{f.index}].conda: {f.packages} packages fetched "
                   f"({f.source})" for f in fetched)
    if no_fetch and any(s.kind == "conda" for s in plan.steps):
        note = "\nconda packages not fetched (--no-fetch): the context is not " \
            "buildable until they are"
    Output(as_json).result({"context": str(output), "dockerfile":
                            str(output / "Dockerfile"),
                            "conda_packages": {str(f.index): f.packages
                                               for f in fetched}},
                           f"rendered {plan.name} into {output}{note}")


@cli.command("bootstrap")
@click.option("--suite", default="trixie", show_default=True,
              type=click.Choice(["trixie", "bookworm"]), help="Debian suite.")
@click.option("--mirror", help="Debian mirror URL (debootstrap's default if unset).")
@click.option("--tag", help="Image tag (default "
              "nublado-build/python:<ver>-slim-<suite>).")
@json_option
def bootstrap_cmd(suite: str, mirror: str | None, tag: str | None,
                  as_json: bool) -> None:
    """Make a local python:3.x-slim stand-in from Debian packages (debootstrap)."""
    from nubladobuild.bootstrap import bootstrap

    out = Output(as_json)
    out.progress(f"debootstrap Debian {suite} (about a minute)...")
    result = bootstrap(suite, mirror, tag, progress=out.sink)
    out.result(asdict(result), f"{result.tag}: Python {result.python}")


@cli.command()
@click.option("--tag", "tags", multiple=True,
              help=f"Tag(s) for the base image (default {DEFAULT_BASE_TAG}).")
@click.option("--python-image", default="auto", show_default=True,
              help="Python image to build on: auto, official, local (debootstrap "
              "stand-in) or an image reference.")
@click.option("--mirror", help="Debian mirror for the local stand-in.")
@click.option("--apt", "extra_apt", default="", help="Extra Debian packages, "
              "space-separated (e.g. 'git less vim').")
@click.option("--profile", default=DEFAULT_PROFILE, show_default=True,
              help="Base profile of the lab venv (base/profiles/NAME.in): "
              f"{', '.join(profile_names())}.")
@click.option("--jupyterhub", "hub_major",
              type=click.Choice([str(major) for major in hub_majors()]), default="6",
              show_default=True, help="JupyterHub major version of the lab venv "
              "(match the site's hub; every profile has a hash lock for each, "
              "base/profiles/PROFILE-hubN.txt).")
@click.option("--minimal", is_flag=True, help="No terminal tools (git, less, "
              "editors, curl, ...): tini only.")
@click.option("--user", "lab_user", default="lab", show_default=True,
              help="Name of the lab user.")
@click.option("--uid", type=click.IntRange(1, 2**31 - 2), default=1000,
              show_default=True, help="UID of the lab user (the image's USER).")
@click.option("--gid", type=click.IntRange(0, 2**31 - 2), default=100,
              show_default=True, help="GID of the lab user.")
@click.option("--home", "lab_home", default="/home/lab", show_default=True,
              help="Home directory of the lab user (Zero-to-JupyterHub mounts "
              "its volume at /home/jovyan).")
@click.option("--no-cache", is_flag=True, help="Rebuild every step.")
@secret_options
@json_option
def base(tags: tuple[str, ...], python_image: str, mirror: str | None,
         extra_apt: str, profile: str, hub_major: str, minimal: bool,
         lab_user: str, uid: int,
         gid: int, lab_home: str, no_cache: bool, ca_bundle: Path | None,
         index_url: str | None, no_host_config: bool, as_json: bool) -> None:
    """Build the JupyterLab base image (nublado-jupyterlab-base)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", lab_user):
        raise click.BadParameter("a user name: lowercase letters, digits, _ and -, "
                                 "starting with a letter or _, at most 32",
                                 param_hint="--user")
    if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", lab_home) or "/../" in lab_home + "/" \
            or "/./" in lab_home + "/":
        raise click.BadParameter("an absolute directory path such as /home/jovyan "
                                 "(letters, digits, . _ -)", param_hint="--home")
    check_profile(profile)
    options = BaseOptions(profile=profile, jupyterhub=int(hub_major), minimal=minimal,
                          user=lab_user, uid=uid, gid=gid, home=lab_home)
    out = Output(as_json)
    secrets = host_secrets(ca_bundle, index_url, not no_host_config)
    image = resolve_python_image(python_image, mirror=mirror, progress=out.sink) \
        if python_image in PYTHON_IMAGE_CHOICES else resolve_python_image(python_image)
    out.progress(f"building the base on {image}")
    result = build_base(python_image=image, tags=list(tags) or [DEFAULT_BASE_TAG],
                        secrets=secrets, sink=out.sink, extra_apt=extra_apt,
                        no_cache=no_cache, options=options)
    out.result({"image_id": result.image_id, "tags": list(result.tags),
                "python_image": image, "seconds": round(result.seconds, 1),
                "profile": options.profile, "jupyterhub": options.jupyterhub,
                "minimal": options.minimal,
                "user": options.user, "uid": options.uid, "gid": options.gid,
                "home": options.home},
               f"built {', '.join(result.tags)} ({result.image_id[:19]}) on {image} "
               f"with profile {options.profile} in {result.seconds:.0f} s")


@cli.command()
@click.argument("payload_dir", type=click.Path(path_type=Path))
@click.option("--base", "base_image", default=DEFAULT_BASE_IMAGE, show_default=True,
              help="The JupyterLab base image to build on.")
@click.option("--tag", "tags", multiple=True,
              help="Tag(s) for the image (default <name>:latest).")
@click.option("--context-dir", type=click.Path(path_type=Path),
              help="Keep the rendered build context here.")
@click.option("--no-cache", is_flag=True, help="Rebuild every step.")
@click.option("--test", "test_first", is_flag=True, help="Run the image contract "
              "(`nublado-build test IMAGE PAYLOAD_DIR`) on the built image before "
              "tagging it; when it fails nothing is tagged or pushed.")
@click.option("--push", "push_refs", multiple=True, callback=_one_line_values,
              metavar="REF", help="After the build (and --test) succeeded, push "
              "the image to this registry reference; repeat for several.")
@conda_channel_option
@allow_secret_option
@secret_options
@json_option
def build(payload_dir: Path, base_image: str, tags: tuple[str, ...],
          context_dir: Path | None, no_cache: bool, test_first: bool,
          push_refs: tuple[str, ...], conda_channels: tuple[str, ...],
          allow_secrets: tuple[str, ...], ca_bundle: Path | None,
          index_url: str | None, no_host_config: bool, as_json: bool) -> None:
    """Build a payload image on the JupyterLab base.

    With --test the image contract runs on the untagged image and tags
    are applied only when it passes; --push destinations are pushed last.
    """
    out = Output(as_json)
    destinations = check_destinations(push_refs, "--push")  # before anything
    loaded = load_payload(payload_dir)
    plan = plan_payload(loaded, check_base_reference(base_image))  # input errors first
    check_tags(tags)
    check_build_tags(loaded.model, loaded.yaml_path, tags)
    check_grants(plan, allow_secrets)
    secrets = host_secrets(ca_bundle, index_url, not no_host_config)
    tested: list[dict[str, Any]] = []
    gate = _contract_gate(payload_dir, plan.name, out, tested) if test_first else None
    with tempfile.TemporaryDirectory(prefix="nublado-context-") as tmp:
        built = build_payload(plan=plan, tags=list(tags), secrets=secrets,
                              sink=out.sink, workdir=context_dir or Path(tmp),
                              no_cache=no_cache, conda_channels=conda_channels,
                              test=gate)
    result = built.result
    _pairing_warnings(built)
    pushed = _push_built(result.tags or (f"{plan.name}:latest",), result.image_id,
                         destinations, out)
    out.result({"image_id": result.image_id, "tags": list(result.tags),
                "payload": built.plan.name, "base": base_image,
                "kernel": built.plan.kernel.name, "python": built.plan.python,
                "seconds": round(result.seconds, 1), "log": str(result.log),
                "pairing": _pairing_json(built),
                "test": tested[0] if tested else None,
                "pushed": [_pushed_json(p) for p in pushed]},
               f"built {', '.join(result.tags)} ({result.image_id[:19]}) in "
               f"{result.seconds:.0f} s"
               + (f"; {tested[0]['passed']} contract checks passed"
                  if tested else "")
               + "".join(f"\npushed {p.reference}" for p in pushed))


def _pairing_warnings(built: PayloadBuild) -> None:
    """Print the pairing mismatches a ``lab.pairing: warn`` build let through."""
    for message in built.pairing.warnings:
        click.echo(f"nublado-build: warning: payload {built.plan.name}: {message}",
                   err=True)


def _pairing_json(built: PayloadBuild) -> dict[str, Any]:
    """Return the pairing check's result for ``--json``."""
    return {"mode": built.pairing.mode, "warnings": built.pairing.warnings,
            "seconds": round(built.pairing.seconds, 2)}


@cli.command("lock")
@click.argument("payload_dir", type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a lock "
              "file is missing or stale (conda: content_hash of another environment "
              "or channels, or a --platform missing; lab: "
              "made for other lab.extensions or another base lab venv).")
@click.option("--base", "base_image", default=DEFAULT_BASE_IMAGE, show_default=True,
              help="The JupyterLab base whose lab venv constrains lab.extensions.")
@click.option("--platform", "platforms", multiple=True,
              type=click.Choice(list(CONDA_PLATFORMS)), default=("linux-64",),
              show_default=True, help="Conda platform to lock conda steps for "
              "(repeat for several; all go into one conda-lock.yml).")
@conda_channel_option
@secret_options
@json_option
def lock_cmd(payload_dir: Path, check: bool, base_image: str,
             platforms: tuple[str, ...],
             conda_channels: tuple[str, ...], ca_bundle: Path | None,
             index_url: str | None, no_host_config: bool, as_json: bool) -> None:
    """Lock each conda step, pip step with a lock file, and lab.extensions.

    Conda steps are solved with py-rattler for each --platform into a lock
    in conda-lock's format (conda-lock.yml, version 1); the build installs
    its linux-64 packages. A pip step that names a `lock`
    file is resolved with pip-compile --generate-hashes in a container of
    the base image, for the step's interpreter, into that file (the build
    then installs it with --require-hashes). lab.extensions are resolved
    the same way, the lab venv's installed versions as constraints, into
    lab-requirements.txt. With --check nothing is resolved: each lock is
    compared with its input (conda: the content_hash of each --platform)
    and exit 1 names every stale one.
    """
    from nubladobuild.condabuild import lock_payload
    from nubladobuild.lab import lock_lab
    from nubladobuild.loader import format_loc
    from nubladobuild.piplock import PipLockResult, lock_pip_steps
    from nubladobuild.resources import data_root

    loaded = load_payload(payload_dir, locking=True)
    stale: list[str] = []
    try:
        results = lock_payload(loaded, conda_channels, check=check,
                               platforms=platforms)
    except LockOutdated as exc:  # only with --check: go on, name every stale lock
        stale.append(exc.message)
        results = []
    lines = [f"install[{r.index}].conda: {r.lock} "
             f"{'written' if r.written else 'up to date'} ({r.packages} packages"
             + ("" if r.platforms == ("linux-64",)
                else f" for linux-64; platforms {', '.join(r.platforms)}") + ")"
             + (f"; {r.hint}" if r.hint else "") for r in results]
    pip_locked = any(s.kind == "pip" and s.spec.lock is not None
                     for s in loaded.model.steps())
    if loaded.model.lab.extensions or (pip_locked and not check):
        check_base_reference(base_image)
        from nubladobuild.engine import inspect_image

        if inspect_image(base_image) is None:
            raise InputError(f"--base {base_image}: no such image. Build it first "
                             "with `nublado-build base`; pip locks and "
                             "lab.extensions are resolved on it.")
    pip_results: list[PipLockResult] = []
    if pip_locked:
        try:
            pip_results = lock_pip_steps(
                loaded, base_image=base_image, check=check,
                tools=data_root() / "base" / "lab",
                secrets=host_secrets(ca_bundle, index_url, not no_host_config))
        except LockOutdated as exc:  # --check: go on, name every stale lock
            stale.append(exc.message)
    lines += [f"install[{r.index}].pip: {r.lock} "
              f"{'written' if r.written else 'up to date'} ({r.packages} packages)"
              for r in pip_results]
    lab_doc: dict[str, Any] | None = None
    if loaded.model.lab.extensions:

        def where(path: str) -> str:
            loc = tuple(path.split("."))
            line = loaded.line_for(loc)
            return f"{loaded.yaml_path}:{line}: {format_loc(loc)}" if line \
                else f"{loaded.yaml_path}: {path}"

        try:
            lab = lock_lab(lab=loaded.model.lab, payload_name=loaded.model.name,
                           directory=payload_dir, base_image=base_image,
                           secrets=host_secrets(ca_bundle, index_url,
                                                not no_host_config),
                           check=check, tools=data_root() / "base" / "lab",
                           where=where)
        except LockOutdated as exc:
            stale.append(exc.message)
        else:
            added = ", ".join(f"{n}=={v}" for n, v in lab.added)
            lines.append(f"lab.extensions: {lab.lock} "
                         f"{'written' if lab.written else 'up to date'} "
                         f"({len(lab.added)} packages added to the lab venv: "
                         f"{added})")
            lab_doc = {"lock": str(lab.lock), "written": lab.written,
                       "added": [f"{n}=={v}" for n, v in lab.added]}
    if stale:
        raise LockOutdated("\n".join(stale))
    if not lines:
        lines = ["no conda steps, no pip step with a lock file and no "
                 "lab.extensions: nothing to lock (add `lock: requirements.lock` to "
                 "a pip step to hash-lock it)"]
    locks = [{"index": r.index, "kind": "conda", "lock": str(r.lock),
              "packages": r.packages, "written": r.written,
              "platforms": list(r.platforms)} for r in results]
    locks += [{"index": r.index, "kind": "pip", "lock": str(r.lock),
               "packages": r.packages, "written": r.written} for r in pip_results]
    Output(as_json).result({"locks": locks, "lab": lab_doc}, "\n".join(lines))


@cli.command("test")
@click.argument("image")
@click.argument("payload_dir", required=False, type=click.Path(path_type=Path))
@click.option("--junit-xml", type=click.Path(path_type=Path),
              help="Write a JUnit XML report here.")
@click.option("-k", "keyword", help="Only run contract checks matching this "
              "pytest -k expression.")
@json_option
def test_cmd(image: str, payload_dir: Path | None, junit_xml: Path | None,
             keyword: str | None, as_json: bool) -> None:
    """Run the image contract suite (and the payload's own tests) on an image."""
    from nubladobuild.contract.runner import run_contract

    out = Output(as_json)
    summary = run_contract(image, payload_dir, junit_xml=junit_xml, keyword=keyword,
                           quiet=as_json)
    out.result(summary.as_dict(), summary.text())
    if not summary.ok:
        sys.exit(1)


@cli.command("inspect")
@click.argument("image")
@json_option
def inspect_cmd(image: str, as_json: bool) -> None:
    """Show an image's labels, base profile, manifests and Debian packages."""
    from nubladobuild.inspect import read_image

    contents = read_image(image)
    Output(as_json).result(contents.as_dict(), contents.text())


@cli.command("diff")
@click.argument("image_a")
@click.argument("image_b")
@json_option
def diff_cmd(image_a: str, image_b: str, as_json: bool) -> None:
    """Show what changed from IMAGE_A to IMAGE_B, per environment.

    The lab venv, each payload environment and the Debian packages:
    packages added, removed, upgraded and downgraded.
    """
    from nubladobuild.inspect import diff_doc, diff_environments, diff_text, read_image

    a, b = read_image(image_a), read_image(image_b)
    diffs = diff_environments(a.environments, b.environments)
    Output(as_json).result(diff_doc(a, b, diffs), diff_text(a, b, diffs))


@cli.command("build-all")
@click.argument("payload_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--payloads", "root", type=click.Path(path_type=Path),
              default=Path("payloads"), show_default=True,
              help="Directory whose subdirectories with a payload.yaml are built "
              "(when no PAYLOAD_DIRS are given).")
@click.option("--base-tag", default=DEFAULT_BASE_TAG, show_default=True,
              help="Tag of the base image built first.")
@click.option("--python-image", default="auto", show_default=True,
              help="Python image the base builds on (see `base`).")
@click.option("--profile", default=DEFAULT_PROFILE, show_default=True,
              help="Base profile of the lab venv (see `base`).")
@click.option("--keep-going", is_flag=True, help="Build the other payloads when "
              "one fails; exit 1 at the end.")
@click.option("--force", is_flag=True, help="Rebuild payloads that are up to "
              "date (same inputs, base and nubladobuild version as their image).")
@click.option("--test", "run_tests", is_flag=True, help="Run the image contract "
              "on each built image before tagging it (see `build --test`).")
@click.option("--push", "push_prefixes", multiple=True, callback=_one_line_values,
              help="Push each payload built in this run to PREFIX/<name>:<tag> "
              "(e.g. localhost:5000/rubin); repeat for several registries.")
@conda_channel_option
@allow_secret_option
@secret_options
@json_option
def build_all(payload_dirs: tuple[Path, ...], root: Path, base_tag: str,
              python_image: str, profile: str, keep_going: bool, force: bool,
              run_tests: bool, push_prefixes: tuple[str, ...],
              conda_channels: tuple[str, ...],
              allow_secrets: tuple[str, ...], ca_bundle: Path | None,
              index_url: str | None, no_host_config: bool, as_json: bool) -> None:
    """Build the base, then every payload on it that is not up to date.

    A payload is up to date when its image (<name>:latest) records the same
    inputs, the same base image and the same nubladobuild version
    (--force rebuilds it anyway). Ends with a summary: built, up to date,
    failed, with times; exit 1 when any failed.
    """
    out = Output(as_json)
    dirs = list(payload_dirs) or sorted(p.parent for p in root.glob("*/payload.yaml"))
    if not dirs:
        raise InputError(f"{root}: no */payload.yaml found; pass payload "
                         "directories or --payloads DIR.")
    # Every input error before any build.
    check_tags([base_tag])
    check_profile(profile)
    plans = [plan_payload(load_payload(directory), base_tag) for directory in dirs]
    for plan in plans:
        check_grants(plan, allow_secrets)
    destinations = {plan.name: check_destinations(
        [f"{prefix.rstrip('/')}/{plan.name}:latest" for prefix in push_prefixes],
        "--push") for plan in plans}
    secrets = host_secrets(ca_bundle, index_url, not no_host_config)
    base_result = build_base(python_image=resolve_python_image(
                                 python_image, progress=out.sink),
                             tags=[base_tag], secrets=secrets, sink=out.sink,
                             options=BaseOptions(profile=profile))
    rows: list[dict[str, Any]] = []
    for plan in plans:
        started = time.monotonic()
        tag = f"{plan.name}:latest"
        if not force and up_to_date(plan, tag):
            rows.append({"payload": plan.name, "status": "up to date", "tags": [tag],
                         "seconds": round(time.monotonic() - started, 1)})
            out.progress(f"{plan.name}: up to date ({tag})")
            continue
        tested: list[dict[str, Any]] = []
        try:
            with tempfile.TemporaryDirectory(prefix="nublado-context-") as tmp:
                result = build_payload(
                    plan=plan, tags=[], secrets=secrets, sink=out.sink,
                    workdir=Path(tmp), conda_channels=conda_channels,
                    test=_contract_gate(plan.loaded.directory, plan.name, out,
                                        tested) if run_tests else None)
            pushed = _push_built(result.result.tags, result.result.image_id,
                                 destinations[plan.name], out)
        except NubladoError as exc:
            if not keep_going:
                raise
            rows.append({"payload": plan.name, "status": "failed",
                         "error": mask_secrets(exc.message),
                         "seconds": round(time.monotonic() - started, 1)})
            click.echo(f"nublado-build: {mask_secrets(exc.message)}", err=True)
            continue
        _pairing_warnings(result)
        rows.append({"payload": plan.name, "status": "built",
                     "tags": list(result.result.tags),
                     "seconds": round(time.monotonic() - started, 1),
                     "pairing": _pairing_json(result),
                     "pushed": [_pushed_json(p) for p in pushed],
                     "tested": bool(tested)})
    failed = [r["payload"] for r in rows if r["status"] == "failed"]
    width = max(len(r["payload"]) for r in rows)
    table = [f"base {base_tag}: {base_result.seconds:.0f} s",
             f"{'payload':<{width}}  {'status':<10}  seconds"]
    table += [f"{r['payload']:<{width}}  {r['status']:<10}  {r['seconds']:.1f}"
              for r in rows]
    counts = {s: sum(1 for r in rows if r["status"] == s)
              for s in ("built", "up to date", "failed")}
    table.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    out.result({"base": {"tags": list(base_result.tags), "profile": profile,
                         "seconds": round(base_result.seconds, 1)},
                "payloads": rows, "counts": counts, "failed": failed},
               "\n".join(table))
    if failed:
        sys.exit(1)


def _contract_gate(payload_dir: Path, name: str, out: Output,
                   tested: list[dict[str, Any]]) -> Callable[[str], None]:
    """Return the ``build --test`` check: the contract on the untagged image."""

    def gate(image_id: str) -> None:
        from nubladobuild.contract.runner import run_contract

        out.progress(f"testing {image_id[:19]} before tagging it "
                     "(nublado-build test)")
        # The build's stdout carries only its result: pytest reports on stderr.
        with contextlib.redirect_stdout(sys.stderr):
            summary = run_contract(image_id, payload_dir, quiet=out.as_json)
        tested.append(summary.as_dict())
        if not summary.ok:
            failures = "; ".join(summary.failures[:10]) or \
                f"pytest exit code {summary.exit_code}"
            raise TestFailed(
                f"payload {name}: the built image {image_id[:19]} fails the "
                f"contract ({summary.passed} passed, {summary.failed} failed, "
                f"{summary.errors} errors): {failures}. No image was tagged and "
                "nothing was pushed; existing tags are unchanged. Run "
                f"`nublado-build test {image_id[:19]} {payload_dir}` for details.")

    return gate


def _push_built(tags: tuple[str, ...], image_id: str,
                destinations: list[Destination], out: Output) -> list[Pushed]:
    """Push a freshly built and tagged image; say what was kept when it fails."""
    if not destinations:
        return []
    try:
        return push_image(tags[0], destinations, progress=out.sink)
    except PushFailed as exc:
        raise PushFailed(f"{exc.message}\nThe image was built and tagged "
                         f"{', '.join(tags)} ({image_id[:19]}); push it again with "
                         f"`nublado-build push {tags[0]} --to REF`.") from None


def _pushed_json(pushed: Pushed) -> dict[str, Any]:
    """Return a pushed destination for ``--json``."""
    return {"ref": pushed.reference, "digest": pushed.digest}


@cli.command("push")
@click.argument("image")
@click.option("--to", "to_refs", multiple=True, required=True,
              callback=_one_line_values, metavar="REF",
              help="Registry reference to push the image as, e.g. "
              "registry.example.org:5000/lsst/lab:w_2025_30; repeat for several.")
@json_option
def push_cmd(image: str, to_refs: tuple[str, ...], as_json: bool) -> None:
    """Tag a local image as each REF and push it there.

    Credentials come from `docker login`. A destination whose push fails
    gets its local tag back as it was (removed, or on its previous image);
    exit 1 names each failed destination and what the engine said.
    """
    destinations = check_destinations(to_refs, "--to")
    out = Output(as_json)
    pushed = push_image(image, destinations, progress=out.sink)
    out.result({"image": image, "pushed": [_pushed_json(p) for p in pushed]},
               "\n".join(f"pushed {p.reference}"
                         + (f" ({p.digest})" if p.digest else "") for p in pushed))


@cli.command("tags")
@click.argument("tag_names", nargs=-1, metavar="TAG...")
@click.option("--policy", type=click.Choice(POLICIES), default="rsp",
              show_default=True, help="Payload tag policy to check each tag against.")
@click.option("--recommended", default=DEFAULT_RECOMMENDED, show_default=True,
              callback=_one_line_values, help="The controller's recommended tag.")
@click.option("--releases", type=click.IntRange(min=0), default=DEFAULT_RELEASES,
              show_default=True, help="Releases the controller prepulls.")
@click.option("--weeklies", type=click.IntRange(min=0), default=DEFAULT_WEEKLIES,
              show_default=True, help="Weeklies the controller prepulls.")
@click.option("--dailies", type=click.IntRange(min=0), default=DEFAULT_DAILIES,
              show_default=True, help="Dailies the controller prepulls.")
@click.option("--publish", is_flag=True, help="Also show, for each tag, the tag "
              "of its next maintenance rebuild (_rspN + 1) and its per-architecture "
              "tags (-amd64, -arm64), as the release pipelines push them.")
@json_option
def tags_cmd(tag_names: tuple[str, ...], policy: str, recommended: str,
             releases: int, weeklies: int, dailies: int, publish: bool,
             as_json: bool) -> None:
    """Show how Nublado reads TAGs: type, display name, menu and prepull set."""
    data, text = tags_report(list(tag_names), policy, recommended=recommended,
                             releases=releases, weeklies=weeklies, dailies=dailies)
    if publish:
        rows: list[dict[str, Any]] = []
        for name in dict.fromkeys(tag_names):
            row: dict[str, Any] = {"tag": name, "rebuild": None, "architectures": [],
                                   "why": None}
            try:
                row["rebuild"] = rebuild_tag(name)
            except TagError as exc:
                row["why"] = exc.message
            try:  # a tag that names an architecture already has none to add
                row["architectures"] = architecture_tags(name)
            except TagError:
                pass
            rows.append(row)
        data["publish"] = rows
        width = max(len(r["tag"]) for r in rows)
        text += "\npublish (next maintenance rebuild; per-architecture tags):\n" + \
            "\n".join(f"  {r['tag']:<{width}}  "
                      + (f"{r['rebuild']}; {', '.join(r['architectures']) or '-'}"
                         if r["rebuild"] else f"- ({r['why']})") for r in rows)
    Output(as_json).result(data, text)


@cli.command("init")
@click.argument("directory", required=False, default=".",
                type=click.Path(path_type=Path))
@click.option("--name", "name", callback=_one_line_values,
              help="Payload and kernel name (a DNS label); default: made from "
              "the directory's name.")
@click.option("--force", is_flag=True, help="Replace an existing payload.yaml.")
@click.option("--dry-run", is_flag=True, help="Print payload.yaml; write nothing.")
@json_option
def init_cmd(directory: Path, name: str | None, force: bool, dry_run: bool,
             as_json: bool) -> None:
    """Write DIRECTORY/payload.yaml from a repo2docker (Binder) repository.

    Reads binder/ or .binder/ (else the root) as repo2docker does, first
    match wins: environment.yml; Pipfile.lock or Pipfile; requirements.txt
    and, at the root, the repository as a Python project (setup.py or
    pyproject.toml; uv.lock next to pyproject.toml too). apt.txt, postBuild,
    start and runtime.txt's python-3.X map as well; every other file it
    knows (install.R, Dockerfile, Project.toml, ...) is listed as not
    mapped, with the reason.
    """
    result = plan_init(directory, name)
    data = result.as_json()
    if dry_run:
        if as_json:
            Output(as_json).result({**data, "written": False, "yaml": result.text},
                                   "")
        else:
            click.echo(result.listing(), err=True)
            click.echo(result.text, nl=False)
        return
    path = write_payload(result, force)
    problems = check_written(directory)
    text = f"wrote {path}\n{result.listing()}"
    if problems:
        text += (f"\n{len(problems)} problem{'s' if len(problems) != 1 else ''} "
                 "to fix before building (nublado-build validate):\n"
                 + "\n".join(f"  {p}" for p in problems))
    Output(as_json).result({**data, "written": True, "path": str(path),
                            "problems": problems}, text)


def main() -> None:
    """Run the CLI: user errors become one message and an exit code."""
    as_json = "--json" in sys.argv[1:]
    if os.environ.get("NUBLADO_BUILD_TRACE"):
        # Stage trace (load, plan, resolve, render) for people and tests.
        logging.basicConfig(format="nublado-build: %(message)s", stream=sys.stderr)
        logging.getLogger("nubladobuild.stages").setLevel(logging.INFO)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("nublado-build: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_INPUT if exc.exit_code == 2 else exc.exit_code)
    except NubladoError as exc:
        message = mask_secrets(exc.message)
        if as_json:
            data: dict[str, Any] = {"ok": False, "error": message,
                                    "exit_code": exc.exit_code}
            if isinstance(exc, PayloadInvalid):
                data["problems"] = [asdict(p) for p in exc.problems]
            click.echo(mask_secrets(json.dumps(data, indent=2, sort_keys=True)))
        click.echo(f"nublado-build: {message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("nublado-build: interrupted", err=True)
        sys.exit(130)
