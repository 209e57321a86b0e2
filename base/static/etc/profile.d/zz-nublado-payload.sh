# Payload shell setup for terminals inside JupyterLab.
#
# Sourced by login shells (/etc/profile) and, through a hook, by interactive
# shells (/etc/bash.bashrc). Runs the payload's setup files from
# /usr/local/share/jupyterlab/shell.d only when the lab's sentinel
# RUNNING_INSIDE_JUPYTERLAB is set, so `docker run IMAGE bash` stays plain.
# Then the payload's start hook's exports (env.sh in NUBLADO_START_HOOK_DIR,
# written by the lab's start-up, which checked and quoted every line), then
# ~/.local/bin first on PATH, so that `pip install --user TOOL` followed by
# `TOOL` works.
# Not `set -e`: this file is sourced into the user's shell.
if [ -n "${RUNNING_INSIDE_JUPYTERLAB:-}" ] && [ -z "${__nublado_payload_shell_done:-}" ]; then
    __nublado_payload_shell_done=1
    for __nublado_f in /usr/local/share/jupyterlab/shell.d/*.sh; do
        if [ -r "$__nublado_f" ]; then
            # shellcheck source=/dev/null
            . "$__nublado_f"
        fi
    done
    unset __nublado_f
    if [ -n "${NUBLADO_START_HOOK_DIR:-}" ] \
        && [ -r "${NUBLADO_START_HOOK_DIR}/env.sh" ]; then
        # shellcheck source=/dev/null
        . "${NUBLADO_START_HOOK_DIR}/env.sh"
    fi
    if [ -n "${HOME:-}" ] && [ "$HOME" != / ]; then
        case ":${PATH}:" in
            *":${HOME}/.local/bin:"*) ;;
            *) PATH="${HOME}/.local/bin:${PATH}"; export PATH ;;
        esac
    fi
fi
