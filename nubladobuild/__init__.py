"""nubladobuild: build two-Python JupyterLab images for Nublado."""

__version__ = "0.1.0"
