#!/bin/bash
# Install script of script-demo. Runs as root in a copy of the payload
# directory, with PAYLOAD_PREFIX and the env of payload.yaml set.
set -euo pipefail
echo "script-demo: installing into $PAYLOAD_PREFIX"
python3 -m venv "$PAYLOAD_PREFIX/venv"
# DEMO_PACKAGES is a space-separated list: split it on purpose.
# shellcheck disable=SC2086
"$PAYLOAD_PREFIX/venv/bin/python" -m pip install --no-input $DEMO_PACKAGES
mkdir -p "$PAYLOAD_PREFIX/share"
printf '%s\n' "$DEMO_MESSAGE" > "$PAYLOAD_PREFIX/share/message.txt"
cp data/motd.txt "$PAYLOAD_PREFIX/share/motd.txt"
echo "script-demo: done"
