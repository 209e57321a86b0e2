"""lsst.daf stand-in."""
