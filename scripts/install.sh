#!/usr/bin/env bash
# Installs what edgekube needs on Debian 12 / Raspberry Pi OS (bookworm): the system packages
# (Podman with runc, Mosquitto, ...) and the Python venv .venv with `pip install -e '.[dev]'`.
# Idempotent: apt runs only when a package is missing, pip only when pyproject.toml changed.
# Used by `make up` and `make test`; prints one line per step; full output goes to a log kept on failure.
#
# Environment:
#   EDGEKUBE_VENV=path                  venv location (default: <repo>/.venv)
#   EDGEKUBE_PYTHON=python3.12          interpreter for a new venv (default: first python3* >= 3.11)
#   EDGEKUBE_SKIP_APT=1                 never call apt (non-Debian hosts: install the packages yourself)
#   EDGEKUBE_KEEP_SYSTEM_MOSQUITTO=1    leave Debian's mosquitto.service alone
#   EDGEKUBE_APT_UPDATED=1              `apt-get update` already ran in this job (e.g. by .ci/run)
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EDGEKUBE_VENV:-$ROOT/.venv}"
STAMP="$VENV/.edgekube-install-stamp"
MIN_PYTHON="3.11"

# podman: runc is listed explicitly so apt picks it for "crun | runc" (crun fails on hybrid cgroups);
# catatonit is Podman 4's pod pause process; make runs `make up` / `make test`;
# mmdebstrap builds the Debian rootfs of the systemd machines the fleet-rollout e2e test runs Ansible against;
# openssl is used by the TLS tests to inspect what the CA issued;
# the pod network (docs/networking.md): iproute2 (routes), nftables (the node proxy), conntrack (stale UDP flows);
# NFS volumes without a kernel NFS client: libnfs13 (libnfs 4.0, the NFSv4 client the mount helper
# edgekube-nfs-mount calls through ctypes) with libnfs-utils (nfs-ls, nfs-cat: look at an export by hand),
# libfuse2 (fusepy's library) and fuse3 (mount.fuse, fusermount) for the FUSE mount itself;
# nfs-ganesha + nfs-ganesha-vfs serve NFSv4 exports to the local cluster and the tests;
# chromium is the headless browser the dashboard's tests drive with Playwright (its own download is not used).
PACKAGES=(
    podman runc catatonit containernetworking-plugins slirp4netns uidmap fuse-overlayfs iproute2
    mosquitto mosquitto-clients busybox-static python3-venv make mmdebstrap openssl
    libnfs13 libnfs-utils libfuse2 fuse3 nfs-ganesha nfs-ganesha-vfs nftables conntrack
    chromium
)

LOG="$(mktemp "${TMPDIR:-/tmp}/edgekube-install.XXXXXX")"
KEEP_LOG=0
trap 'if [[ $KEEP_LOG == 0 || ! -s $LOG ]]; then rm -f "$LOG"; fi' EXIT

say() { printf 'install: %s\n' "$*"; }

die() {
    KEEP_LOG=1
    printf 'install: FAILED: %s\n' "$1" >&2
    if [[ -s $LOG ]]; then
        printf 'install: last lines of %s:\n' "$LOG" >&2
        tail -n 25 "$LOG" | sed 's/^/    /' >&2
    fi
    exit 1
}

trap 'die "unexpected error (line $LINENO): $BASH_COMMAND"' ERR

# Runs a command with its output in the log.
run() { "$@" >>"$LOG" 2>&1; }

SUDO=()
if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: run this script as root"
    SUDO=(sudo)
fi

pkg_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

install_system_packages() {
    if [[ ${EDGEKUBE_SKIP_APT:-0} == 1 ]]; then
        say "system packages: skipped (EDGEKUBE_SKIP_APT=1)"
        return
    fi
    command -v dpkg-query >/dev/null 2>&1 ||
        die "not a Debian system (no dpkg-query): install ${PACKAGES[*]} yourself, then set EDGEKUBE_SKIP_APT=1"
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "system packages: all ${#PACKAGES[@]} present"
        return
    fi
    say "system packages: installing ${missing[*]}"
    local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0)
    if [[ ${EDGEKUBE_APT_UPDATED:-0} != 1 ]]; then
        run "${apt[@]}" update || die "apt-get update failed"
    fi
    run "${apt[@]}" install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" || die "apt-get install ${missing[*]} failed"
}

# Debian's mosquitto package starts a broker on port 1883, the local cluster's default port.
stop_system_mosquitto() {
    if [[ ${EDGEKUBE_KEEP_SYSTEM_MOSQUITTO:-0} == 1 ]] || ! command -v dpkg-query >/dev/null 2>&1 ||
        ! pkg_installed mosquitto; then
        return
    fi
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet mosquitto.service || systemctl is-enabled --quiet mosquitto.service; then
            run "${SUDO[@]}" systemctl disable --now mosquitto.service ||
                die "could not stop Debian's mosquitto.service (systemctl disable --now mosquitto)"
            say "system mosquitto: stopped and disabled mosquitto.service (edgekube runs its own broker)"
        fi
        return
    fi
    # No systemd (containers, some CI machines): the sysvinit script and its boot links.
    local pid="" stopped=0
    if [[ -r /run/mosquitto/mosquitto.pid ]]; then
        pid="$(tr -dc '0-9' </run/mosquitto/mosquitto.pid)"
    fi
    if [[ -n $pid && "$(cat "/proc/$pid/comm" 2>/dev/null || true)" == mosquitto ]]; then
        if [[ -x /etc/init.d/mosquitto ]]; then
            run "${SUDO[@]}" /etc/init.d/mosquitto stop || true
        fi
        if kill -0 "$pid" 2>/dev/null; then
            run "${SUDO[@]}" kill "$pid" || die "could not stop the system mosquitto (pid $pid)"
        fi
        stopped=1
    fi
    if compgen -G '/etc/rc[2-5].d/S*mosquitto' >/dev/null && command -v update-rc.d >/dev/null 2>&1; then
        run "${SUDO[@]}" update-rc.d mosquitto disable || die "update-rc.d mosquitto disable failed"
        stopped=1
    fi
    if [[ $stopped == 1 ]]; then
        say "system mosquitto: stopped and disabled the init script (edgekube runs its own broker)"
    fi
}

python_ok() {
    "$1" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON/./, }))" >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in ${EDGEKUBE_PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

make_venv() {
    if [[ -x $VENV/bin/python ]] && python_ok "$VENV/bin/python"; then
        return
    fi
    local python
    python="$(find_python)" || die "no Python >= $MIN_PYTHON found (apt-get install python3 python3-venv)"
    if [[ -e $VENV ]]; then
        [[ -f $VENV/pyvenv.cfg ]] || die "$VENV exists but is not a venv: move it away"
        rm -rf "$VENV"
    fi
    run "$python" -m venv "$VENV" || die "$python -m venv $VENV failed (is python3-venv installed?)"
    say "python venv: created $VENV with $("$VENV/bin/python" -V 2>&1)"
}

install_python_packages() {
    local want
    want="pyproject=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) python=$("$VENV/bin/python" -V 2>&1)"
    if [[ -f $STAMP && "$(cat "$STAMP")" == "$want" && -x $VENV/bin/pytest ]]; then
        say "python packages: up to date ($VENV)"
        return
    fi
    say "python packages: pip install -e '.[dev]' into $VENV"
    rm -f "$STAMP"
    (cd "$ROOT" && run env PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$VENV/bin/python" -m pip install -q -e '.[dev]') || die "pip install -e '.[dev]' failed"
    printf '%s\n' "$want" >"$STAMP"
}

# `make dashboard` rebuilds the dashboard's bundle with npm (docs/dashboard.md); the bundle is committed, so only
# that needs node. Installed from Debian only when there is no npm at all: a node from elsewhere (nodesource,
# nvm) is left alone rather than fought over by apt.
install_node() {
    if [[ ${EDGEKUBE_SKIP_APT:-0} == 1 ]] || command -v npm >/dev/null 2>&1; then
        return
    fi
    say "node: installing nodejs npm (make dashboard)"
    local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0)
    run "${apt[@]}" install -y nodejs npm || die "apt-get install nodejs npm failed"
}

install_system_packages
install_node
stop_system_mosquitto
make_venv
install_python_packages
say "done"
