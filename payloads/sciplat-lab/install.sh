#!/bin/bash
# Lay out a Science Pipelines stack the way lsstinstall does, under
# PAYLOAD_PREFIX (/opt/lsst/software/stack):
#
#   conda/envs/$LSST_SCIPIPE_ENV/   the Python environment (a venv here)
#   loadLSST.bash                   puts the environment first, defines setup
#   eups/                           the EUPS stand-in (setup / unsetup / eups)
#   stack/current/<product>/        products: table file, python/, bin/
#
# Runs as root in the build, with the build's CA and index settings exported
# (with-build-secrets), so pip works behind a proxy without baking anything
# into the image.
set -euo pipefail
: "${PAYLOAD_PREFIX:?run by nublado-build with PAYLOAD_PREFIX set}"
env_name="${LSST_SCIPIPE_ENV:-lsst-scipipe}"
version="${LSST_STACK_VERSION:-w_2025_30}"
here="$(pwd)"
envdir="$PAYLOAD_PREFIX/conda/envs/$env_name"

echo "install.sh: stack $version into $PAYLOAD_PREFIX (env $env_name)"
python3 -m venv "$envdir"
"$envdir/bin/python" -m pip install --no-input --no-warn-script-location \
    -r "$here/requirements.txt"

# The EUPS stand-in and the products it manages.
mkdir -p "$PAYLOAD_PREFIX/eups" "$PAYLOAD_PREFIX/stack/current"
install -m 0644 "$here/stack/eups-setup.bash" "$PAYLOAD_PREFIX/eups/setup.bash"
cp -R "$here/stack/products/." "$PAYLOAD_PREFIX/stack/current/"
sed "s|@ENV_NAME@|$env_name|g; s|@VERSION@|$version|g" \
    "$here/stack/loadLSST.bash.in" > "$PAYLOAD_PREFIX/loadLSST.bash"
chmod 0644 "$PAYLOAD_PREFIX/loadLSST.bash"
echo "$version" > "$PAYLOAD_PREFIX/stack/current/VERSION"

# Byte-compile everything now: the lab runs with a read-only root.
"$envdir/bin/python" -m compileall -q "$PAYLOAD_PREFIX/stack/current" >/dev/null
chmod -R a+rX "$PAYLOAD_PREFIX"

# Smoke test, as the kernel will do it.
bash -c "source '$PAYLOAD_PREFIX/loadLSST.bash' && setup lsst_distrib \
    && python -c 'import lsst.daf.butler, yaml, ipykernel; print(\"stack ok:\", lsst.daf.butler.__version__)'"
