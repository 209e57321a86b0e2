# A small EUPS stand-in: `setup PRODUCT` and `unsetup PRODUCT`.
#
# A product is a directory $EUPS_PATH/<product> with an optional table file
# ups/<product>.table listing `setupRequired(<other>)` lines, a python/
# directory (added to PYTHONPATH) and a bin/ directory (added to PATH).
# Like EUPS, setup exports SETUP_<PRODUCT> and <PRODUCT>_DIR.

__eups_var() {
    printf '%s' "$1" | tr '[:lower:]-' '[:upper:]_'
}

setup() {
    local product="${1:-}"
    if [ -z "$product" ] || [ "$product" = -h ]; then
        echo "usage: setup PRODUCT" >&2
        return 2
    fi
    local dir="${EUPS_PATH:?loadLSST.bash sets EUPS_PATH}/$product"
    if [ ! -d "$dir" ]; then
        echo "setup: product $product not found in $EUPS_PATH" >&2
        return 1
    fi
    local var
    var="$(__eups_var "$product")"
    if [ -n "$(eval "printf '%s' \"\${SETUP_${var}:-}\"")" ]; then
        return 0
    fi
    export "SETUP_${var}=${product} ${LSST_STACK_VERSION:-current} -f Linux64 -Z ${EUPS_PATH}"
    export "${var}_DIR=${dir}"
    local table="$dir/ups/$product.table" dep
    if [ -f "$table" ]; then
        while IFS= read -r dep; do
            setup "$dep" || return 1
        done < <(sed -n 's/^[[:space:]]*setupRequired(\([A-Za-z0-9_]*\)).*/\1/p' "$table")
    fi
    if [ -d "$dir/python" ]; then
        export PYTHONPATH="$dir/python${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if [ -d "$dir/bin" ]; then
        export PATH="$dir/bin:$PATH"
    fi
    return 0
}

unsetup() {
    local var
    var="$(__eups_var "${1:?usage: unsetup PRODUCT}")"
    unset "SETUP_${var}" "${var}_DIR"
}

eups() {
    case "${1:-}" in
        list)
            local d
            for d in "$EUPS_PATH"/*/; do
                d="$(basename "$d")"
                local var
                var="$(__eups_var "$d")"
                printf '%-20s %s%s\n' "$d" "${LSST_STACK_VERSION:-current}" \
                    "$([ -n "$(eval "printf '%s' \"\${SETUP_${var}:-}\"")" ] && echo ' setup')"
            done ;;
        *) echo "eups stand-in: only 'eups list' is available" >&2; return 2 ;;
    esac
}
