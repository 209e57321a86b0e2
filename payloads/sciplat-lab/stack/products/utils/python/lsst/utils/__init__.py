"""lsst.utils stand-in."""

__version__ = "28.2025.3000"
