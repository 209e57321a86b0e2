#!/bin/bash
# Second install step of conda-demo: runs after the conda environment is in
# the image, with PAYLOAD_PREFIX=/opt/conda-demo-tools.
set -euo pipefail
/opt/conda/envs/demo/bin/python -c 'import six, idna, sys; print("conda env:", sys.version.split()[0])'
mkdir -p "$PAYLOAD_PREFIX/bin"
printf '#!/bin/sh\necho %s\n' "'$DEMO_GREETING'" > "$PAYLOAD_PREFIX/bin/demo-greeting"
chmod 755 "$PAYLOAD_PREFIX/bin/demo-greeting"
