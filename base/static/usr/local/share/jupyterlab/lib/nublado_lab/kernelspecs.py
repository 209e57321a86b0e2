"""Kernel specs as users see them: payload kernels only, never the lab Python.

``ensure_native_kernel = False`` only hides the server's own ``python3`` from
the list: asked for by name (most notebooks' metadata, every REST client),
jupyter_client still starts it from ipykernel's resources, with the server's
interpreter. This manager

- hides every spec that would run the lab venv's Python: a spec directory
  inside the venv (ipykernel's native resources among them), or an argv
  whose program is inside the venv;
- runs a spec whose argv starts with a bare ``python``/``python3``/
  ``python3.X`` with that name resolved on the kernel's PATH (jupyter_client
  would otherwise swap in the server's own interpreter), and hides it when
  there is no such program;
- answers ``python3`` and ``python`` (and any hidden spec's name), when no
  visible spec has that name, with the payload's default kernel: a notebook
  from elsewhere or a REST client lands in the payload. A payload (or a
  user) may still have its own ``python3`` spec, which then wins;
- gives a kernel it starts the variables the start-up kept away from the
  server (``NUBLADO_PAYLOAD_ENV``: ``LD_*``, ``PYTHON*``, ...), what the
  payload's start hook exported (``env.json`` in ``NUBLADO_START_HOOK_DIR``,
  read for each kernel; the server's own environment never holds it), and
  puts ``~/.local/bin`` first on its PATH.

Loaded by ``/usr/local/etc/jupyter/jupyter_server_config.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from traitlets import Unicode

from nublado_lab.starthook import start_exports
from nublado_lab.startup import kept_environment

__all__ = ["ALIASES", "NubladoKernelSpecManager"]

ALIASES = ("python3", "python")
"""Names that mean "a Python kernel": the payload's default kernel."""

_PYTHON_NAMES = frozenset({"python", f"python{sys.version_info[0]}",
                           "python{}.{}".format(*sys.version_info[:2])})


def _inside(path: str, prefix: str) -> bool:
    path = os.path.normpath(os.path.abspath(path))
    prefix = os.path.normpath(prefix)
    return path == prefix or path.startswith(prefix + os.sep)


class NubladoKernelSpecManager(KernelSpecManager):
    """Payload kernels only; ``python3`` means the payload's default kernel."""

    lab_prefix = Unicode(sys.prefix, config=True,
                         help="The lab venv: specs that would run it are hidden.")

    default_kernel = Unicode("", config=True,
                             help="Kernel that ALIASES name (default: the kernel "
                             "manager's default kernel, else NUBLADO_DEFAULT_KERNEL, "
                             "else the only visible kernel).")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ensure_native_kernel = False

    # --- what a spec runs ------------------------------------------------------

    def _prefixes(self) -> tuple[str, ...]:
        prefix = os.path.normpath(self.lab_prefix)
        real = os.path.realpath(prefix)
        return (prefix,) if real == prefix else (prefix, real)

    def _in_lab(self, path: str) -> bool:
        return any(_inside(path, p) for p in self._prefixes())

    def _resolve_program(self, argv: list[str]) -> str | None:
        """Return the program ``argv`` runs, or None when it is not allowed."""
        if not argv:
            return None
        program = argv[0]
        if program in _PYTHON_NAMES:
            found = shutil.which(program, path=os.environ.get("PATH", os.defpath))
            if found is None:
                return None
            program = found
        if os.path.isabs(program) and self._in_lab(program):
            return None
        return program

    def _hidden(self, resource_dir: str) -> bool:
        if self._in_lab(resource_dir):
            return True
        try:
            with open(os.path.join(resource_dir, "kernel.json"), encoding="utf-8") as f:
                argv = json.load(f).get("argv") or []
        except (OSError, ValueError, AttributeError):
            return False  # jupyter_client reports a broken spec itself
        return self._resolve_program(list(argv)) is None

    # --- KernelSpecManager -----------------------------------------------------

    def find_kernel_specs(self) -> dict[str, str]:
        """Return the visible specs (name -> resource directory)."""
        specs = super().find_kernel_specs()
        return {name: d for name, d in specs.items() if not self._hidden(d)}

    def _get_kernel_spec_by_name(self, kernel_name: str,
                                 resource_dir: str) -> KernelSpec:
        if self._hidden(resource_dir):
            raise NoSuchKernel(kernel_name)
        spec = super()._get_kernel_spec_by_name(kernel_name, resource_dir)
        program = self._resolve_program(list(spec.argv))
        if program is None:  # the spec changed since _hidden read it
            raise NoSuchKernel(kernel_name)
        if spec.argv[0] != program:
            spec.argv = [program, *spec.argv[1:]]
        return spec

    def get_all_specs(self) -> dict[str, Any]:
        """Return the visible specs as written (what the lab lists)."""
        result = {}
        for name, resource_dir in self.find_kernel_specs().items():
            try:
                spec = self._get_kernel_spec_by_name(name, resource_dir)
            except NoSuchKernel:
                continue
            except Exception:  # a broken spec must not hide the others
                self.log.warning("Error loading kernelspec %r", name, exc_info=True)
                continue
            result[name] = {"resource_dir": spec.resource_dir, "spec": spec.to_dict()}
        return result

    def alias_target(self) -> str | None:
        """Return the kernel that ALIASES stand for, or None."""
        candidates = [self.default_kernel]
        manager = getattr(self.parent, "kernel_manager", None)
        candidates.append(getattr(manager, "default_kernel_name", "") or "")
        candidates.append(os.environ.get("NUBLADO_DEFAULT_KERNEL", ""))
        for name in candidates:
            if name and name.lower() not in ALIASES:
                return name
        visible = list(self.find_kernel_specs())
        return visible[0] if len(visible) == 1 else None

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        """Return the spec to run for ``kernel_name`` (aliases resolved)."""
        try:
            spec = super().get_kernel_spec(kernel_name)
        except NoSuchKernel:
            target = self.alias_target()
            aliased = kernel_name.lower() in ALIASES or self._hidden_name(kernel_name)
            if not aliased:
                raise
            if not target or target.lower() == kernel_name.lower():
                raise
            self.log.info("Kernel %r runs the payload's default kernel %r",
                          kernel_name, target)
            spec = super().get_kernel_spec(target)
        return self._with_environment(spec)

    def _hidden_name(self, kernel_name: str) -> bool:
        directory = self._find_spec_directory(kernel_name.lower())
        return directory is not None and self._hidden(directory)

    def payload_bin(self, spec: KernelSpec) -> str | None:
        """Return the ``bin`` directory of the Python a spec runs, if known.

        From ``metadata.nublado.python`` (written by nublado-build for every
        kernel, wrapper or not), else from an argv that runs a Python
        directly.
        """
        metadata = spec.metadata if isinstance(spec.metadata, dict) else {}
        nublado = metadata.get("nublado")
        python = nublado.get("python") if isinstance(nublado, dict) else None
        if not isinstance(python, str) or not os.path.isabs(python):
            program = spec.argv[0] if spec.argv else ""
            python = program if os.path.basename(program).startswith("python") \
                else None
        if not python or not os.path.isabs(python) or self._in_lab(python):
            return None
        return os.path.dirname(os.path.normpath(python))

    def _with_environment(self, spec: KernelSpec) -> KernelSpec:
        """Add the kept variables, the hook's exports and (unless set) a PATH.

        PATH starts with ``~/.local/bin`` then the payload Python's ``bin``
        (as in repo2docker images), so ``!pip``, ``!python`` and tools a
        user installed with ``pip install --user`` are the ones a notebook's
        ``!`` commands find. A PATH the start hook exported stands where
        the server's would (``${PATH}``); the spec's own values win over the
        hook's.
        """
        env = dict(spec.env or {})
        hook = start_exports()
        hook_path = hook.pop("PATH", None)
        # jupyter_client substitutes ${NAME} in spec env values: keep ours literal.
        for name, value in {**kept_environment(), **hook}.items():
            env.setdefault(name, value.replace("$", "$$"))
        base_path = "${PATH}" if hook_path is None else hook_path.replace("$", "$$")
        if "PATH" in env:
            # The spec sets its PATH itself (nublado-build writes the payload's
            # bin and ~/.local/bin there): one place decides it.
            env["PATH"] = env["PATH"].replace("${PATH}", base_path)
            spec.env = env
            return spec
        first = []
        home = os.environ.get("HOME", "")
        if home and home != "/":
            first.append(os.path.join(home, ".local", "bin"))
        payload_bin = self.payload_bin(spec)
        if payload_bin:
            first.append(payload_bin)
        if first:
            prefix = ":".join(p.replace("$", "$$") for p in first)
            env["PATH"] = f"{prefix}:{base_path}"
        elif hook_path is not None:
            env["PATH"] = base_path
        spec.env = env
        return spec
