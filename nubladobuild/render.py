"""Stage 4, render: write a plan out as a build context. The only writer.

A Dockerfile and the files it uses, from the plan and what the resolve
stage found. Deterministic: the same plan and resolution give the same
bytes and file modes, whether ``render`` or ``build`` asks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from nubladobuild.compat import links_file
from nubladobuild.errors import InputError
from nubladobuild.kinds import KINDS
from nubladobuild.kinds.conda import PACKAGES
from nubladobuild.lab import SCRIPT as LAB_SCRIPT
from nubladobuild.plan import STAGES, Plan
from nubladobuild.resolve import Resolved
from nubladobuild.resources import data_root
from nubladobuild.templating import render_template

#: A rendered context larger than this is refused (the payload directory
#: copied for script steps is bounded on its own when it is read).
MAX_CONTEXT_BYTES = 4 * 1024 * 1024 * 1024
#: The file that marks a directory as a rendered context (``render -o``
#: replaces only such directories).
MARKER = ".nublado-build-context"
#: Labels whose values a build passes as build arguments (label, ARG): they
#: change from build to build (the time) or are not known to ``render``
#: (the tag), so the rendered Dockerfile stays the same for render and
#: build, and the layers stay cached.
BUILD_LABELS = (("org.opencontainers.image.created", "NUBLADO_CREATED"),
                ("org.opencontainers.image.version", "NUBLADO_IMAGE_VERSION"))


def render_dockerfile(plan: Plan, resolved: Resolved) -> str:
    """Return the payload Dockerfile for a plan and its resolution."""
    return render_template(
        "Dockerfile.payload.j2",
        version=plan.version,
        source=f"{plan.name}/payload.yaml",
        payload=plan.loaded.model,
        base_image=plan.base_image,
        lab_user=resolved.lab_user,
        entrypoint=list(resolved.entrypoint),
        cmd=list(resolved.cmd),
        workdir=resolved.workdir,
        steps=plan.steps,
        step_templates={name: kind.template for name, kind in KINDS.items()},
        kernel=plan.kernel,
        kernels=plan.kernels,
        shell_path=plan.shell_path,
        python=plan.python,
        labels=plan.labels + resolved.labels,
        build_labels=BUILD_LABELS,
        compat=plan.compat,
        lab=plan.lab,
        start=plan.start,
    )


def context_files(plan: Plan, resolved: Resolved) -> dict[str, tuple[bytes, int]]:
    """Return every file of the build context: relative path -> (bytes, mode)."""
    files: dict[str, tuple[bytes, int]] = {
        "Dockerfile": (render_dockerfile(plan, resolved).encode(), 0o644),
        "shell/setup.sh": (plan.shell_setup.encode(), 0o644),
        ".dockerignore": (b"", 0o644),
        MARKER: (f"nublado-build {plan.version} context for {plan.name}\n".encode(),
                 0o644),
    }
    files["guard/guard.py"] = (guard_script(), 0o644)
    files["guard/allowed.txt"] = ("".join(f"{path}\n" for path in plan.generated)
                                  .encode(), 0o644)
    if plan.lab is not None:
        files["guard/lab-allowed.txt"] = ("".join(f"{path}\n" for path in
                                                  plan.lab.allowed).encode(), 0o644)
        files[f"lab/{LAB_SCRIPT}"] = (
            (data_root() / "base" / "lab" / LAB_SCRIPT).read_bytes(), 0o755)
        for name, content in plan.lab.files.items():
            files[f"lab/{name}"] = (content, 0o644)
    if plan.compat.links:
        files[plan.compat.file] = (links_file(plan.compat.links), 0o644)
    if plan.start is not None:
        files.update(plan.start.files)
    for kernel in plan.kernels:
        files[f"{kernel.context_dir}/kernel.json"] = (kernel.kernel_json.encode(),
                                                      0o644)
        if kernel.wrapper is not None:
            files[f"{kernel.context_dir}/launch"] = (kernel.wrapper.encode(), 0o755)
    for step in plan.steps:
        for name, content in step.files.items():
            files[f"{step.dir}/{name}"] = (content, step.modes.get(name, 0o644))
    steps = {s.index: s for s in plan.steps}
    for fetched in resolved.conda:
        target = f"{steps[fetched.index].dir}/{PACKAGES}"
        for path in sorted(fetched.directory.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                files[f"{target}/{path.name}"] = (path.read_bytes(), 0o644)
    return files


def guard_script() -> bytes:
    """Return the isolation guard that runs in its own build stage."""
    return (data_root() / "base" / "guard" / "guard.py").read_bytes()


def _prepare(out: Path) -> None:
    """Empty ``out`` if it is a previous render; refuse anything else."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"-o {out}: exists and is not a directory; name a new "
                         "or empty directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError(f"-o {out}: directory is not empty and is not a "
                             "context rendered by nublado-build; name a new or "
                             "empty directory (nothing was removed)")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"-o {out}: cannot create the directory "
                         f"({exc.strerror}); name a writable place") from None


def render(plan: Plan, resolved: Resolved, out: Path) -> Path:
    """Write the build context into ``out``.

    ``out`` must be new, empty, or a previous render (then it is replaced);
    nothing else is ever removed.

    Returns
    -------
    Path
        The directory written, ready for ``docker build``.

    Raises
    ------
    InputError
        When ``out`` holds something else or cannot be written.
    """
    STAGES.info("render %s", plan.name)
    files = context_files(plan, resolved)
    size = sum(len(content) for content, _ in files.values())
    if size > MAX_CONTEXT_BYTES:
        raise InputError(f"{plan.loaded.yaml_path}: the build context would be "
                         f"{size >> 20} MiB, over {MAX_CONTEXT_BYTES >> 20} MiB; "
                         "move large data out of the payload directory")
    _prepare(out)
    try:
        for relative, (content, mode) in sorted(files.items()):
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(mode)
    except OSError as exc:
        raise InputError(f"-o {out}: cannot write the context ({exc.strerror})") \
            from None
    return out
