#!/usr/bin/env bash
# Benchmarks ft against vsftpd, pyftpdlib, curl, lftp, tftpd-hpa, py3tftp, a raw TCP pipe and iperf3 on
# loopback, and writes BENCHMARKS.md. Usage: scripts/bench.sh [--rounds N] [--cases 1,2,...] [--baseline DIR]
# (cases 1-6 by default; 7 is FTPS, 8 PostgreSQL: e.g. --cases 7,8)
# (DIR: another build's ftserver and ftclient, measured beside this one; see scripts/bench.py)
# scripts/bench.sh --wan [OPTIONS]: the same contenders on an emulated wide-area link instead
# (scripts/wan-bench.py --help; needs root), printing its tables and writing docs/wan-download.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --wan ]; then
    shift
    need=()
    for tool in vsftpd lftp in.tftpd atftp curl aria2c; do command -v "$tool" >/dev/null || need+=("$tool"); done
    if [ ${#need[@]} -gt 0 ]; then
        echo "bench: installing peers (missing: ${need[*]})"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends vsftpd lftp tftpd-hpa atftp curl aria2 iproute2 >/dev/null
    fi
    cargo build --release --locked -p ftserver -p ftclient -p linkem
    exec python3 scripts/wan-bench.py --bin target/release "$@"
fi
need=()
for tool in vsftpd lftp socat in.tftpd atftp curl iperf3 openssl; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing peers (missing: ${need[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends vsftpd lftp socat tftpd-hpa atftp curl iperf3 iproute2 openssl >/dev/null
fi
# Case 8 (PostgreSQL) needs initdb and pg_ctl: the postgresql package, only when asked for.
if [[ " $* " =~ --cases[=\ ][0-9,]*8 ]] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    echo "bench: installing postgresql (case 8)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
python3 -c 'import pyftpdlib, py3tftp' 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check pyftpdlib py3tftp
cargo build --release --locked -p ftserver -p ftclient
exec python3 scripts/bench.py --bin target/release "$@"
