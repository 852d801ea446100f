#!/usr/bin/env bash
# The classroom demonstration on one machine: builds ftserver and ftclient, shares a sample
# directory, lists and downloads it in active and in passive mode, checks every download by
# sha256, stops the server on every exit path, and exits non-zero if anything did not match.
# Usage: scripts/demo.sh   (FT_BIN_DIR=DIR skips the build and uses the binaries in DIR)
set -euo pipefail
FT_SCRIPT=demo
source "$(dirname "$0")/lib.sh"
FT_START=$SECONDS

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ft-demo.XXXXXX")
SERVER_PID=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    case $rc in 130 | 143) printf '\n%s: interrupted; %s\n' "$FT_SCRIPT" "stopped the server and removed the temporary directory" >&2 ;; esac
    if [ -n "$SERVER_PID" ]; then stop_pid "$SERVER_PID"; fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

printf '%sft demo: an FTP server and client talking on this machine (127.0.0.1)%s\n' "$FT_BOLD" "$FT_OFF"

step "Build the two programs (release mode)"
build_release

step "Make a directory for the server to share"
SAMPLE=$WORK/sample
make_sample "$SAMPLE"
note "$SAMPLE holds:"
list_sample "$SAMPLE"
note "big.bin is random bytes, including NUL, CR and LF: a text-mode transfer would change it."

step "Start the server"
note "PORT 0 asks the kernel for any free port; the server prints the one it got."
note "--bind 127.0.0.1 keeps it reachable from this machine only; -v also logs each command."
show "" ftserver --root "$SAMPLE" --bind 127.0.0.1 -v 0 '&'
ftserver --root "$SAMPLE" --bind 127.0.0.1 -v 0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
if ! PORT=$(wait_ready "$WORK/server.out" "$SERVER_PID" 30); then
    cat "$WORK/server.out" "$WORK/server.log" | indent
    die "ftserver did not print its ready line within 30 s"
fi
indent <"$WORK/server.out"
note "The server listens for control connections on port $PORT."

DATA_PORT=$(free_port)
mkdir -p "$WORK/active" "$WORK/passive"

step "Active mode: the client listens on DATA_PORT $DATA_PORT, the server connects to it"
note "This is the classic FTP flow: the client says \"send the data to me at port $DATA_PORT\""
note "(the EPRT or PORT command) and the server opens the data connection back to the client."
run_client "" "active" "$WORK/active" "$WORK/out" "$WORK/err" \
    ftclient 127.0.0.1 "$PORT" -l "$DATA_PORT" || true
check_listing "$SAMPLE.expected-list" "$WORK/out" "-l (active)"
for f in notes.txt big.bin; do
    run_client "" "active" "$WORK/active" "$WORK/out" "$WORK/err" \
        ftclient 127.0.0.1 "$PORT" -g "$f" "$DATA_PORT" || true
    check_same "$SAMPLE/$f" "$WORK/active/$f" "-g (active)"
done

step "Passive mode: no DATA_PORT, the client connects to a port the server opened"
note "The client asks \"where should I connect?\" (EPSV, or PASV) and opens the data"
note "connection itself. This is what works through firewalls and NAT routers."
run_client "" "passive" "$WORK/passive" "$WORK/out" "$WORK/err" \
    ftclient 127.0.0.1 "$PORT" -l || true
check_listing "$SAMPLE.expected-list" "$WORK/out" "-l (passive)"
run_client "" "passive" "$WORK/passive" "$WORK/out" "$WORK/err" \
    ftclient 127.0.0.1 "$PORT" -l --dir docs || true
check_listing "$SAMPLE.expected-list-docs" "$WORK/out" "-l --dir docs (passive)"
for f in big.bin 'read me.txt' docs/guide.txt; do
    run_client "" "passive" "$WORK/passive" "$WORK/out" "$WORK/err" \
        ftclient 127.0.0.1 "$PORT" -g "$f" || true
    check_same "$SAMPLE/$f" "$WORK/passive/$(basename "$f")" "-g (passive)"
done

step "What the server logged"
note "The server's log (stderr), cut to the data connections: EPRT in active mode carries the"
note "client's address and port, EPSV in passive mode asks for the server's; then each transfer."
show_log "$WORK/server.log"

step "Stop the server"
note "In a terminal you would press Ctrl-C; here the script sends the same kind of signal."
show "" kill -TERM "$SERVER_PID"
stop_pid "$SERVER_PID"
SERVER_PID=
note "stopped."

summary "list and get, active and passive, every download byte-identical"
