"""Server configuration for nublado-jupyterlab-base.

Found through jupyter_core's system config path (/usr/local/etc/jupyter).
"""

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - traitlets injects it

try:  # the lab venv has /usr/local/share/jupyterlab/lib on its path
    from nublado_lab.startup import terminal_command
except ImportError:  # a payload's own Jupyter reading the system config
    terminal_command = None

# Payload kernels only: a kernel asked for as python3 (or any name the lab
# venv could serve itself) runs the payload's default kernel, never the
# server's Python; kernels get back the variables the start-up kept from the
# server (LD_*, PYTHON*, ...) and ~/.local/bin on PATH.
if terminal_command is not None:
    c.ServerApp.kernel_spec_manager_class = \
        "nublado_lab.kernelspecs.NubladoKernelSpecManager"

# Terminals start a login bash, so /etc/profile.d runs the payload's shell
# setup (only inside the lab: the sentinel RUNNING_INSIDE_JUPYTERLAB is set),
# with the variables the start-up kept from the server set again.
c.ServerApp.terminado_settings = {
    "shell_command": terminal_command() if terminal_command else ["/bin/bash", "-l"]}

# The image may run with a read-only root filesystem and no home in
# /etc/passwd; keep the server's state out of the image.
c.ServerApp.open_browser = False
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"

# The server environment is locked (no pip in it): extensions cannot be
# installed from the UI; they come with the base image.
c.LabApp.extension_manager = "readonly"

# No news feed: labs often run without internet access, and the base image
# decides what users see (the announcements plugin is disabled in
# labconfig/page_config.json).
c.LabApp.news_url = None
