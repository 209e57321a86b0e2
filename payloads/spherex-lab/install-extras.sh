#!/bin/bash
# Add SPHEREx helpers next to the conda environment: a release file and a
# `spherex-info` command that reports the environment, run by terminals
# and notebooks alike.
set -euo pipefail
: "${PAYLOAD_PREFIX:?run by nublado-build with PAYLOAD_PREFIX set}"
mkdir -p "$PAYLOAD_PREFIX/bin" "$PAYLOAD_PREFIX/etc"
echo "${SPHEREX_RELEASE:?}" > "$PAYLOAD_PREFIX/etc/release"
cat > "$PAYLOAD_PREFIX/bin/spherex-info" <<'INFO'
#!/opt/spherex/bin/python
"""Print what the SPHEREx environment provides."""
import sys

import packaging
import yaml

with open("/opt/spherex-extras/etc/release") as f:
    release = f.read().strip()
print(f"spherex {release} python {sys.version_info[0]}.{sys.version_info[1]} "
      f"packaging {packaging.__version__} yaml {yaml.__version__}")
INFO
chmod 0755 "$PAYLOAD_PREFIX/bin/spherex-info"
"$PAYLOAD_PREFIX/bin/spherex-info"
