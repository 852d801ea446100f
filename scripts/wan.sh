#!/usr/bin/env bash
# Runs a server and a client on two sides of an emulated wide-area link (linkem): the server in
# namespace A at 10.77.0.1, the client in namespace B at 10.77.0.2, with the given delay, loss,
# rate and so on in between. Both commands see WAN_SERVER=10.77.0.1 and WAN_CLIENT=10.77.0.2.
# Everything it created (namespaces, devices, the server) is gone when it exits, however it
# exits. Needs root.
#
# Usage: sudo scripts/wan.sh [--wait-port PORT] [LINKEM OPTIONS] -- SERVER CMD... -- CLIENT CMD...
#   e.g. scripts/wan.sh --delay 25ms --loss 0.1% --rate 100mbit --wait-port 2121 \
#          -- target/release/ftserver --root /srv 2121 -- target/release/ftclient 10.77.0.1 2121 -l
#   LINKEM OPTIONS: --delay --jitter --loss --reorder --rate --queue, each also as --a-to-b-X
#   (server to client) and --b-to-a-X (client to server), --seed, --mtu (linkem --help).
#   --wait-port PORT: start the client only once the server listens on PORT (TCP or UDP).
#   An empty SERVER part (-- -- CLIENT...) runs the client alone.
#   FT_BIN_DIR=DIR uses DIR/linkem instead of building it with cargo.
# Exit status: the client's, or 1 if the link or the server could not start, 2 usage.
set -euo pipefail

usage() {
    printf 'wan: %s\n' "$1" >&2
    printf 'usage: scripts/wan.sh [--wait-port PORT] [LINKEM OPTIONS] -- SERVER CMD... -- CLIENT CMD...\n' >&2
    exit 2
}
die() {
    printf 'wan: %s\n' "$*" >&2
    exit 1
}

LINK_ARGS=() SERVER=() CLIENT=() WAIT_PORT=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case $1 in
        --wait-port)
            [ $# -ge 2 ] || usage "--wait-port needs a port number"
            WAIT_PORT=$2
            shift 2
            ;;
        --ns-a | --ns-b | --ns-a=* | --ns-b=*) usage "wan.sh names the namespaces itself" ;;
        *)
            LINK_ARGS+=("$1")
            shift
            ;;
    esac
done
[ $# -gt 0 ] || usage "no '--' before the server command"
shift
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    SERVER+=("$1")
    shift
done
[ $# -gt 0 ] || usage "no '--' between the server command and the client command"
shift
CLIENT=("$@")
[ ${#CLIENT[@]} -gt 0 ] || usage "no client command after the second '--'"
case $WAIT_PORT in
    '' | *[!0-9]*) [ -z "$WAIT_PORT" ] || usage "--wait-port '$WAIT_PORT' is not a port number" ;;
esac
[ "$(id -u)" = 0 ] || die "creating network namespaces needs root: run it with sudo"
command -v ip >/dev/null || die "ip not found on PATH (apt install iproute2)"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${FT_BIN_DIR:-}" ]; then
    LINKEM=$(cd "$FT_BIN_DIR" && pwd)/linkem
else
    command -v cargo >/dev/null || die "cargo not found: build linkem first and set FT_BIN_DIR"
    (cd "$ROOT" && cargo build --release --quiet -p linkem) || die "cargo build -p linkem failed"
    LINKEM=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/linkem
fi
[ -x "$LINKEM" ] || die "no linkem binary at $LINKEM"

NS_A=wanA-$$ NS_B=wanB-$$
export WAN_SERVER=10.77.0.1 WAN_CLIENT=10.77.0.2
LINK_PID= SERVER_PID= WORK=
cleanup() {
    local rc=$? ns pid
    trap - EXIT INT TERM
    if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; fi
    for ns in "$NS_A" "$NS_B"; do
        # Whatever still runs inside was started by this run.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    if [ -n "$LINK_PID" ]; then
        # linkem removes its namespaces on SIGTERM and prints the counters of each direction.
        kill -TERM "$LINK_PID" 2>/dev/null || true
        wait "$LINK_PID" 2>/dev/null || true
    fi
    for ns in "$NS_A" "$NS_B"; do
        if [ -e "/run/netns/$ns" ]; then ip netns del "$ns" 2>/dev/null || true; fi
    done
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d)
mkfifo "$WORK/ready"
"$LINKEM" --ns-a "$NS_A" --ns-b "$NS_B" "${LINK_ARGS[@]}" >"$WORK/ready" &
LINK_PID=$!
READY=
read -r -t 30 READY <"$WORK/ready" || true
case $READY in
    "ready $NS_A $WAN_SERVER $NS_B $WAN_CLIENT") ;;
    *) die "linkem did not start (its message is above)" ;;
esac
printf 'wan: server address %s (namespace %s), client %s (namespace %s)\n' \
    "$WAN_SERVER" "$NS_A" "$WAN_CLIENT" "$NS_B" >&2

if [ ${#SERVER[@]} -gt 0 ]; then
    ip netns exec "$NS_A" "${SERVER[@]}" &
    SERVER_PID=$!
fi
if [ -n "$WAIT_PORT" ]; then
    deadline=$((SECONDS + 30))
    until ip netns exec "$NS_A" ss -Hltun "sport = :$WAIT_PORT" | grep -q .; do
        if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
            die "the server exited before it listened on port $WAIT_PORT"
        fi
        [ $SECONDS -lt $deadline ] || die "nothing listened on port $WAIT_PORT within 30 s"
        sleep 0.05
    done
fi
set +e
ip netns exec "$NS_B" "${CLIENT[@]}"
rc=$?
set -e
exit "$rc"
