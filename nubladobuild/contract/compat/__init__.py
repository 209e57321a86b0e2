"""The compat suite: images with compat links (io.nublado.compat)."""
