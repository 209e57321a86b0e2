"""The base suite: what nublado-jupyterlab-base guarantees (every image)."""
