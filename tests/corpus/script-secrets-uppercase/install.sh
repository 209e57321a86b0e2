#!/bin/sh
set -e
mkdir -p "$PAYLOAD_PREFIX"
