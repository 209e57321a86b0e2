"""Write a plan out as a build context: a Dockerfile and the files it uses.

Pure and deterministic: the same plan gives the same bytes and file modes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from nubladobuild.compat import links_file
from nubladobuild.plan import Plan
from nubladobuild.templating import render_template


def render_dockerfile(plan: Plan) -> str:
    """Return the payload Dockerfile for a plan."""
    return render_template(
        "Dockerfile.payload.j2",
        version=plan.version,
        source=f"{plan.loaded.model.name}/payload.yaml",
        payload=plan.loaded.model,
        base_image=plan.base_image,
        lab_user=plan.lab_user,
        steps=plan.steps,
        kernel=plan.kernel,
        shell_path=plan.shell_path,
        python=plan.python,
        labels=plan.labels,
        compat=plan.compat,
    )


def context_files(plan: Plan) -> dict[str, tuple[bytes, int]]:
    """Return every file of the build context: relative path -> (bytes, mode)."""
    files: dict[str, tuple[bytes, int]] = {
        "Dockerfile": (render_dockerfile(plan).encode(), 0o644),
        "kernel/kernel.json": (plan.kernel.kernel_json.encode(), 0o644),
        "shell/setup.sh": (plan.shell_setup.encode(), 0o644),
        ".dockerignore": (b"", 0o644),
    }
    if plan.compat.links:
        files[plan.compat.file] = (links_file(plan.compat.links), 0o644)
    if plan.kernel.wrapper is not None:
        files["kernel/launch"] = (plan.kernel.wrapper.encode(), 0o755)
    for step in plan.steps:
        for name, content in step.files.items():
            mode = step.modes.get(name) or (
                0o755 if name.endswith((".sh", "install")) else 0o644)
            files[f"{step.dir}/{name}"] = (content, mode)
    return files


def render(plan: Plan, out: Path) -> Path:
    """Write the build context for a plan into ``out`` (replaced if present).

    Returns
    -------
    Path
        The directory written, ready for ``docker build``.
    """
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for relative, (content, mode) in sorted(context_files(plan).items()):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    return out
