#!/usr/bin/env bash
# Checks what dist/ ships: dist/ftserver.service passes `systemd-analyze verify` (with ExecStart
# pointed at the ftserver just built) and ftserver accepts every option its ExecStart gives;
# prints systemd's exposure score for it. dist/Containerfile is not built here: that needs a
# container engine (podman or docker with its daemon); the script says whether one is present.
# Installs systemd's tools when they are missing and it may (root, FT_SKIP_INSTALL unset).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'check-dist: %s\n' "$*"; }
die() {
    say "$*" >&2
    exit 1
}

if ! command -v systemd-analyze >/dev/null; then
    if [ "$(id -u)" = 0 ] && [ "${FT_SKIP_INSTALL:-}" != 1 ] && command -v apt-get >/dev/null; then
        say "installing systemd (for systemd-analyze)"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
            --no-install-recommends systemd >/dev/null
    fi
    command -v systemd-analyze >/dev/null ||
        die "systemd-analyze not found: run as root to install it, or apt-get install systemd"
fi

unit=dist/ftserver.service
target=$(cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
cargo build --quiet --locked -p ftserver
bin=$target/debug/ftserver

# ExecStart as written, then the same arguments run through ftserver's parser: --help at the
# end makes it print its help and exit 0 if and only if everything before it parsed.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$(grep -c '^ExecStart=' "$unit")" = 1 ] || die "$unit: expected exactly one ExecStart= line"
read -r -a argv <<<"$exec_start"
[ "${argv[0]}" = /usr/local/bin/ftserver ] || die "$unit: ExecStart runs ${argv[0]}, expected /usr/local/bin/ftserver"
"$bin" "${argv[@]:1}" --help >/dev/null || die "$unit: ftserver refuses the ExecStart arguments: ${argv[*]:1}"

# systemd-analyze wants the program to exist: verify a copy whose ExecStart names the build.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|^ExecStart=/usr/local/bin/ftserver |ExecStart=$bin |" "$unit" >"$work/ftserver.service"
# --man=no: the man page is not installed on a build machine (scripts/gen-docs.sh makes it).
if ! out=$(systemd-analyze verify --man=no "$work/ftserver.service" 2>&1) || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    die "$unit: systemd-analyze verify complained (above)"
fi
say "$unit: systemd-analyze verify passed"
if score=$(systemd-analyze security --offline=true "$work/ftserver.service" 2>/dev/null | tail -n 1); then
    say "$unit: ${score#→ }"
fi

if command -v podman >/dev/null || { command -v docker >/dev/null && docker info >/dev/null 2>&1; }; then
    say "dist/Containerfile: a container engine is present; build it with: podman build -f dist/Containerfile ."
else
    say "dist/Containerfile: not built (no container engine here: neither podman nor a running docker daemon)"
fi
