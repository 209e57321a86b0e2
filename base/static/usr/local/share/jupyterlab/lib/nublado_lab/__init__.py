"""Start-up and kernel policy of nublado-jupyterlab-base.

Lives outside the lab venv's site-packages (a ``.pth`` file there points
at this directory) so that it is part of the base's own files, not a
package anyone installs. Standard library only in ``startup``: it decides
how the server starts before anything else is imported.
"""
