#!/usr/bin/env bash
# The README's test command: installs the test peers that are missing (the FTP and TFTP
# servers and clients the interoperability tests talk to, and the tools of the namespace
# tests), then runs `cargo test --workspace --locked` with any extra arguments passed through:
#   scripts/test.sh                    everything
#   scripts/test.sh -p ftclient vsftpd one crate, tests whose name contains "vsftpd"
# Installing needs root: run as another user, it asks sudo (on a terminal, or without a
# password); when everything is there already, nothing is installed and nothing is asked.
# FT_SKIP_INSTALL=1 skips the install step.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian/Ubuntu packages; the programs the tests run come from these.
APT_PACKAGES=(curl lftp vsftpd tftpd-hpa atftp tftp-hpa socat iproute2 iptables nftables procps
    util-linux postgresql iperf3 aria2 iputils-ping)
# Python modules, as pip-name:import-name:debian-package (pyOpenSSL is what pyftpdlib's
# TLS_FTPHandler needs).
PIP_PACKAGES=(pyftpdlib:pyftpdlib:python3-pyftpdlib pyOpenSSL:OpenSSL:python3-openssl)

say() { printf 'test: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

missing_apt() {
    local p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
    done
}

missing_pip() {
    local p
    local entry pip module
    for entry in "${PIP_PACKAGES[@]}"; do
        IFS=: read -r pip module _ <<<"$entry"
        python3 -c "import $module" 2>/dev/null || printf '%s\n' "$pip"
    done
}

# Runs a command as root: directly when root, else through sudo (which may ask for a password
# on a terminal).
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# Can as_root work: root, or sudo that needs no password or can ask for one on a terminal?
can_be_root() {
    [ "$(id -u)" = 0 ] && return 0
    command -v sudo >/dev/null || return 1
    sudo -n true 2>/dev/null || [ -t 0 ]
}

install_peers() {
    command -v python3 >/dev/null || APT_PACKAGES+=(python3 python3-pip)
    { command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; } ||
        die "apt-get not found: install these by hand, then run scripts/test.sh again: ${APT_PACKAGES[*]} (and pip install ${PIP_PACKAGES[*]%%:*})"
    local apt pip
    mapfile -t apt < <(missing_apt)
    mapfile -t pip < <(if command -v python3 >/dev/null; then missing_pip; else printf '%s\n' "${PIP_PACKAGES[@]%%:*}"; fi)
    if [ ${#apt[@]} -eq 0 ] && [ ${#pip[@]} -eq 0 ]; then
        return 0
    fi
    local what="${apt[*]}"
    [ ${#pip[@]} -eq 0 ] || what="$what${what:+; }pip: ${pip[*]}"
    can_be_root ||
        die "missing test peers ($what) and cannot install them: not root, and no sudo without a password; run it as root or on a terminal, or install them and run it again"
    if [ ${#apt[@]} -gt 0 ]; then
        say "installing ${apt[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # Wait for another apt run (another terminal, unattended-upgrades) instead of failing.
        local lock=(-o DPkg::Lock::Timeout=600)
        as_root apt-get "${lock[@]}" update -qq || die "apt-get update failed"
        as_root apt-get "${lock[@]}" install -y -qq --no-install-recommends "${apt[@]}" >/dev/null ||
            die "apt-get install ${apt[*]} failed"
    fi
    if [ ${#pip[@]} -gt 0 ]; then
        mapfile -t pip < <(missing_pip)
    fi
    if [ ${#pip[@]} -gt 0 ]; then
        say "installing (pip) ${pip[*]}"
        local log
        log=$(mktemp)
        if ! python3 -m pip install -q --disable-pip-version-check "${pip[@]}" >"$log" 2>&1; then
            # Debian's own python3 refuses pip (PEP 668, "externally-managed-environment"):
            # take the distribution's package instead.
            if grep -q externally-managed "$log"; then
                local debs=() entry
                for entry in "${PIP_PACKAGES[@]}"; do
                    [[ " ${pip[*]} " == *" ${entry%%:*} "* ]] && debs+=("${entry##*:}")
                done
                as_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
                    "${debs[@]}" >/dev/null || die "apt-get install ${debs[*]} failed"
            else
                say "pip install ${pip[*]} failed:"
                cat "$log" >&2
                rm -f "$log"
                exit 1
            fi
        fi
        rm -f "$log"
        mapfile -t pip < <(missing_pip)
        [ ${#pip[@]} -eq 0 ] || die "python3 still cannot import ${pip[*]} after installing it"
    fi
}

if [ "${FT_SKIP_INSTALL:-}" != 1 ]; then
    install_peers
fi
command -v cargo >/dev/null || {
    [ -n "${SUDO_USER:-}" ] &&
        die "cargo not found on root's PATH: run scripts/test.sh as yourself (it asks sudo only to install)"
    die "cargo not found on PATH: install Rust (https://rustup.rs)"
}
# --workspace would override a -p the user gave (cargo then tests every crate).
scope=(--workspace)
for arg in "$@"; do
    case $arg in
        --) break ;;
        -p* | --package | --package=*) scope=() ;;
    esac
done
exec cargo test "${scope[@]}" --locked "$@"
