"""The image contract: a testinfra suite any payload image must pass.

Run it with ``nublado-build test IMAGE [PAYLOAD_DIR]``; the payload's own
testinfra files (its ``tests:`` directory) run in the same session and can
use the same fixtures (``host``, ``image_info``, ``run_kernel`` ...).
"""
