"""The image contract: testinfra suites any nublado-build image must pass.

Run it with ``nublado-build test IMAGE [PAYLOAD_DIR]``. The suites follow
the image hierarchy (as docker-stacks does), and which ones run is decided
from the image's labels and reported in the summary (``suites``):

``base/``
    What nublado-jupyterlab-base guarantees: non-root user, the lab venv and
    runlab, a lab tree nobody can write, the versions-installed manifests,
    the base profile recorded (label, ``profile/name``) and every package of
    its lock installed at the locked version, no kernelspec from the lab
    venv, the terminal sentinel hook, and the lab server started by the
    image's own command (as its user, and as an arbitrary UID on a read-only
    root) answering ``/api`` from the lab venv.
    Runs on every image; alone on a base image (no ``io.nublado.payload.*``
    labels).
``payload/``
    What a payload adds: its labels (provenance labels of their shapes
    among them), manifest, one kernelspec check per
    kernel and one wrapper check per wrapper script (none: one skipped case,
    by name), kernels from the payload's Python, the terminal setup, the lab
    offering and starting the payload kernel, and in a real browser
    (Playwright driving the system's Chromium): the launcher, and, when the
    payload kernel has ipywidgets / ipympl, a slider whose value crosses
    between page and kernel and an interactive figure.
``compat/``
    Images with an ``io.nublado.compat`` label: the links resolve, the
    legacy paths, the old controller's start.
``payload-tests``
    The payload's own testinfra files (its ``tests:`` directory), which can
    use the same fixtures (``host``, ``container``, ``ro_container``,
    ``image_info``, ``kernel_runner``, ``lab_token``; ``start_lab`` and
    ``finish_lab`` for lab servers).

Every test gets fresh containers (see plugin.py): commands in them are
bounded by ``timeout`` inside the container and a subprocess timeout
outside, everything is labelled and removed, and a lab server's log with an
error line fails the test that started it. The JSON summary lists the ids
of the tests that passed, skipped and failed as known (``xfailed_tests``),
so callers can compare names, not only counts.
"""
