"""lsst.daf.butler stand-in: enough to import and report a version."""

import lsst.utils

__version__ = "28.2025.3000"
UTILS_VERSION = lsst.utils.__version__
