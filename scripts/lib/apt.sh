# Shared by scripts/redis.sh and scripts/prometheus.sh (sourced; each defines `log` first):
# installing Debian packages for the project's own servers.

# apt_install LOCK CHECK PACKAGE...: installs the Debian PACKAGEs unless CHECK (a command, run
# without arguments) succeeds already; then CHECK must succeed. As root, or through `sudo -n`.
# One apt run at a time (flock on LOCK), even with several callers at once, and the packages'
# postinst scripts may not start their system services (a deny-all policy-rc.d, only while we
# install, and only if the machine has none of its own).
apt_install() {
    local lock=$1 check=$2
    shift 2
    if "$check"; then
        return 0
    fi

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo -n)
        else
            log "$* missing and cannot be installed: not root and no sudo."
            log "install the Debian packages ($*: apt-get install $*) and retry."
            return 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "$* missing and apt-get is not available: install them by hand."
        return 1
    fi

    exec 9>>"$lock"
    if ! flock -w 900 9; then
        log "timed out waiting for $lock (another install still running?)"
        return 1
    fi
    # Someone else may have installed them while we waited for the lock.
    if "$check"; then
        return 0
    fi

    local policy=/usr/sbin/policy-rc.d created_policy=""
    if [ ! -e "$policy" ]; then
        if printf '#!/bin/sh\n# tower-reliability scripts: do not start services\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null && "${sudo[@]}" chmod 755 "$policy"; then
            created_policy=1
            trap '"${sudo[@]}" rm -f "$policy"' EXIT
        fi
    fi

    log "installing the Debian packages $* with apt-get"
    local started=$SECONDS
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "$@" >&2

    if [ -n "$created_policy" ]; then
        "${sudo[@]}" rm -f "$policy"
        trap - EXIT
    fi

    if ! "$check"; then
        log "apt-get finished but $* still not usable"
        return 1
    fi
    log "installed $* in $((SECONDS - started)) s"
}
