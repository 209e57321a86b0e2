"""Start a kernel with jupyter_client and run code in it; print JSON.

Runs inside the image with the JupyterLab Python (fed on stdin), exactly as
the lab server would start the kernel: ``python - KERNEL_NAME CODE``.
"""

import json
import sys
import time

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

name, code = sys.argv[1], sys.argv[2]
manager = KernelSpecManager()
manager.ensure_native_kernel = False
start = time.monotonic()
km = KernelManager(kernel_name=name, kernel_spec_manager=manager)
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=180)
started = time.monotonic() - start
stream: list[str] = []
errors: list[str] = []


def hook(msg: dict) -> None:  # type: ignore[type-arg]
    """Collect a kernel's stream output and error values."""
    kind = msg["msg_type"]
    if kind == "stream":
        stream.append(msg["content"]["text"])
    elif kind == "error":
        errors.append(msg["content"]["evalue"])


try:
    reply = kc.execute_interactive(code, timeout=180, output_hook=hook)
    status = reply["content"]["status"]
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
print(json.dumps({"start_seconds": started, "status": status,
                  "stdout": "".join(stream), "errors": errors}))
