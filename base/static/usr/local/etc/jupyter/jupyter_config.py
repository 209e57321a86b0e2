"""Configuration read by every Jupyter application (server, kernelspec, ...).

Found through jupyter_core's system config path (/usr/local/etc/jupyter).
"""

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - traitlets injects it

# Only payload kernels: never advertise the server's own Python.
c.KernelSpecManager.ensure_native_kernel = False
