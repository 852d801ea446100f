#!/usr/bin/env bash
# The two-machine demonstration on one Linux machine: host A and host B are network namespaces
# (separate network stacks) joined by a virtual cable. A runs `ftserver 3555`; B runs the card's
# client commands in active and passive mode, and curl; B's firewall counters show who opened
# each data connection. Then host C, behind a NAT router, shows why passive mode exists.
# Needs root. Cleans up the namespaces on every exit path. Exit status: 0 every check passed,
# 1 a check or a step failed, 77 this machine cannot run it (not root, no namespaces, a tool
# missing), 130/143 interrupted.
# Usage: sudo scripts/two-hosts.sh   (FT_BIN_DIR=DIR skips the build and uses the binaries in DIR)
set -euo pipefail
FT_SCRIPT=two-hosts
source "$(dirname "$0")/lib.sh"
FT_START=$SECONDS

# Unique per run, so two runs (or a crashed earlier run) never collide.
NS_A=ftA-$$ NS_B=ftB-$$ NS_R=ftR-$$ NS_C=ftC-$$
A=192.0.2.1 B=192.0.2.2         # TEST-NET-1 (RFC 5737): the cable between A and B
A_WAN=198.51.100.1 R_WAN=198.51.100.2 # TEST-NET-2: the "internet" between A and the router
R_LAN=10.0.0.1 C=10.0.0.2       # a private home network behind the router
PORT=3555 DATA_PORT=8555

WORK=
SERVER_PID=
CREATED=()
cleanup() {
    local rc=$? ns pid
    trap - EXIT INT TERM
    case $rc in 130 | 143) printf '\n%s: interrupted; %s\n' "$FT_SCRIPT" "stopped the server and removed the namespaces" >&2 ;; esac
    if [ -n "$SERVER_PID" ]; then stop_pid "$SERVER_PID"; fi
    for ns in "${CREATED[@]}"; do
        # Anything still running inside a namespace this run created was started by this run.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cannot_run <why>: this machine cannot run the demonstration at all (not a failed check).
cannot_run() {
    printf '%s: %s\n' "$FT_SCRIPT" "$*" >&2
    exit 77
}

[ "$(uname -s)" = Linux ] || cannot_run "network namespaces need Linux; use scripts/demo.sh here"
[ "$(id -u)" = 0 ] ||
    cannot_run "creating network namespaces needs root: run sudo scripts/two-hosts.sh (or scripts/demo.sh without root)"
for tool in ip ss python3 sha256sum timeout curl; do
    command -v "$tool" >/dev/null || cannot_run "$tool not found on PATH (apt install iproute2 curl python3)"
done
if ! err=$(ip netns add "$NS_A" 2>&1); then
    cannot_run "cannot create a network namespace: ${err:-ip netns add failed} (a container may need --privileged or CAP_SYS_ADMIN)"
fi
CREATED+=("$NS_A")
# iptables counts packets (who opened which connection) and does the NAT; use whichever
# backend this kernel supports.
IPT=
for cand in iptables iptables-nft iptables-legacy; do
    if command -v "$cand" >/dev/null && timeout 10 ip netns exec "$NS_A" "$cand" -t nat -L -n >/dev/null 2>&1; then
        IPT=$cand
        break
    fi
done
[ -n "$IPT" ] || cannot_run "no working iptables found (apt install iptables); it counts connections and does the NAT"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ft-two-hosts.XXXXXX")
chmod 755 "$WORK"

printf '%sft on two hosts: host A (%s) serves, host B (%s) downloads%s\n' "$FT_BOLD" "$A" "$B" "$FT_OFF"

step "Build the two programs (release mode)"
build_release

# net <command...>: shows one setup command and runs it.
net() {
    show "" "$@"
    timeout 10 "$@" >/dev/null
}

step "Build the network: two hosts joined by a cable"
note "Each network namespace is a separate network stack: its own interfaces, addresses,"
note "routes and firewall, like a separate computer. A veth pair is the cable between them."
net ip netns add "$NS_B"
CREATED+=("$NS_B")
net ip link add vA$$ netns "$NS_A" type veth peer name vB$$ netns "$NS_B"
net ip -n "$NS_A" link set vA$$ name eth0
net ip -n "$NS_B" link set vB$$ name eth0
net ip -n "$NS_A" addr add "$A/24" dev eth0
net ip -n "$NS_B" addr add "$B/24" dev eth0
for ns in "$NS_A" "$NS_B"; do
    net ip -n "$ns" link set lo up
    net ip -n "$ns" link set eth0 up
done
# Counting rules in B (no effect on traffic): TCP SYN packets start a connection, so they tell
# who opened it.
timeout 10 ip netns exec "$NS_B" "$IPT" -A INPUT -p tcp --syn -s "$A" -j ACCEPT
timeout 10 ip netns exec "$NS_B" "$IPT" -A OUTPUT -p tcp --syn -d "$A" ! --dport "$PORT" -j ACCEPT
note "B's firewall now counts new TCP connections: opened by A towards B, and opened by B"
note "towards A on a port other than $PORT (data connections)."

# syn_count <chain>: how many connections B's counting rule in that chain has seen.
syn_count() {
    timeout 10 ip netns exec "$NS_B" "$IPT" -L "$1" -v -n -x | awk 'NR == 3 { print $1 }'
}

# opened_by <A|B> <in before> <out before> <what>: checks who opened the data connection(s).
opened_by() {
    local from_a=$(($(syn_count INPUT) - $2)) from_b=$(($(syn_count OUTPUT) - $3)) bad=0
    if [ "$1" = A ]; then
        { [ "$from_a" -ge 1 ] && [ "$from_b" = 0 ]; } || bad=1
        check "$bad" "$4: A opened the data connection to B ($from_a new from $A to $B, $from_b from B)"
    else
        { [ "$from_b" -ge 1 ] && [ "$from_a" = 0 ]; } || bad=1
        check "$bad" "$4: B opened the data connection to A ($from_b new from $B to $A, $from_a from A)"
    fi
}

SAMPLE=$WORK/sample
make_sample "$SAMPLE"

step "Host A: start the server on port $PORT"
note "It shares $SAMPLE:"
list_sample "$SAMPLE"
show "hostA:sample" ftserver -v "$PORT" '&'
(cd "$SAMPLE" && exec ip netns exec "$NS_A" ftserver -v "$PORT" >"$WORK/server.out" 2>"$WORK/server.log") &
SERVER_PID=$!
if ! wait_ready "$WORK/server.out" "$SERVER_PID" 30 >/dev/null; then
    cat "$WORK/server.out" "$WORK/server.log" | indent
    die "ftserver did not print its ready line within 30 s"
fi
indent <"$WORK/server.out"

# client <dir> <what> cmd...: runs a command on host B in a fresh directory.
client() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    shift
    run_client "$NS_B" "hostB:${dir##*/}" "$dir" "$WORK/out" "$WORK/err" "$@"
}

step "Host B, active mode: the card's commands, B listens on $DATA_PORT and A connects to it"
in0=$(syn_count INPUT) out0=$(syn_count OUTPUT)
client b-active ftclient "$A" "$PORT" -l "$DATA_PORT" || true
check_listing "$SAMPLE.expected-list" "$WORK/out" "ftclient -l (active)"
opened_by A "$in0" "$out0" "ftclient -l (active)"
in0=$(syn_count INPUT) out0=$(syn_count OUTPUT)
client b-active ftclient "$A" "$PORT" -g big.bin "$DATA_PORT" || true
check_same "$SAMPLE/big.bin" "$WORK/b-active/big.bin" "ftclient -g (active)"
opened_by A "$in0" "$out0" "ftclient -g (active)"
note "A closed the data connection first, so A remembers it for a while (TIME-WAIT):"
show hostA ss -tn state time-wait dst "$B"
timeout 10 ip netns exec "$NS_A" ss -tn state time-wait dst "$B" | indent

step "Host B, passive mode: no DATA_PORT, B connects to a port A opened"
in0=$(syn_count INPUT) out0=$(syn_count OUTPUT)
client b-passive ftclient "$A" "$PORT" -l || true
check_listing "$SAMPLE.expected-list" "$WORK/out" "ftclient -l (passive)"
opened_by B "$in0" "$out0" "ftclient -l (passive)"
in0=$(syn_count INPUT) out0=$(syn_count OUTPUT)
client b-passive ftclient "$A" "$PORT" -g big.bin || true
check_same "$SAMPLE/big.bin" "$WORK/b-passive/big.bin" "ftclient -g (passive)"
opened_by B "$in0" "$out0" "ftclient -g (passive)"

step "Host B, curl against ftserver: any standard FTP client works"
note "-P $B makes curl use active mode with that address; without -P curl uses passive mode."
in0=$(syn_count INPUT) out0=$(syn_count OUTPUT)
client b-curl-active curl -sS --max-time 30 -P "$B" -o big.bin "ftp://$A:$PORT/big.bin" || true
check_same "$SAMPLE/big.bin" "$WORK/b-curl-active/big.bin" "curl -P $B (active)"
opened_by A "$in0" "$out0" "curl -P $B (active)"
in0=$(syn_count INPUT) out0=$(syn_count OUTPUT)
client b-curl-passive curl -sS --max-time 30 -o big.bin "ftp://$A:$PORT/big.bin" || true
check_same "$SAMPLE/big.bin" "$WORK/b-curl-passive/big.bin" "curl (passive)"
opened_by B "$in0" "$out0" "curl (passive)"

step "Behind a NAT router: why passive mode exists"
note "Host C sits in a private home network ($C) behind router R, which rewrites C's"
note "outgoing connections to come from its own public address ($R_WAN): NAT (masquerade)."
note "A can answer R, but it can never open a connection to C's private address."
for ns in "$NS_R" "$NS_C"; do
    net ip netns add "$ns"
    CREATED+=("$ns")
done
net ip link add wA$$ netns "$NS_A" type veth peer name wR$$ netns "$NS_R"
net ip link add lR$$ netns "$NS_R" type veth peer name lC$$ netns "$NS_C"
net ip -n "$NS_A" link set wA$$ name eth1
net ip -n "$NS_R" link set wR$$ name eth0
net ip -n "$NS_R" link set lR$$ name eth1
net ip -n "$NS_C" link set lC$$ name eth0
net ip -n "$NS_A" addr add "$A_WAN/24" dev eth1
net ip -n "$NS_R" addr add "$R_WAN/24" dev eth0
net ip -n "$NS_R" addr add "$R_LAN/24" dev eth1
net ip -n "$NS_C" addr add "$C/24" dev eth0
net ip -n "$NS_A" link set eth1 up
for ns in "$NS_R" "$NS_C"; do
    net ip -n "$ns" link set lo up
    net ip -n "$ns" link set eth0 up
done
net ip -n "$NS_R" link set eth1 up
net ip -n "$NS_C" route add default via "$R_LAN"
net ip netns exec "$NS_R" sysctl -w net.ipv4.ip_forward=1
net ip netns exec "$NS_R" "$IPT" -t nat -A POSTROUTING -o eth0 -j MASQUERADE

# on_c <dir> cmd...: runs a command on host C in a fresh directory.
on_c() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    shift
    run_client "$NS_C" "hostC:${dir##*/}" "$dir" "$WORK/out" "$WORK/err" "$@"
}
# fails_cleanly <status> <file> <what>: the command must fail and leave no file behind.
fails_cleanly() {
    local bad=0
    { [ "$1" != 0 ] && [ ! -e "$2" ]; } || bad=1
    check "$bad" "$3: fails (exit $1) and leaves no file, as it must behind NAT"
}

note "Passive: C opens both connections, the router lets them out:"
on_c c-passive ftclient "$A_WAN" "$PORT" -g big.bin || true
check_same "$SAMPLE/big.bin" "$WORK/c-passive/big.bin" "ftclient -g (passive) behind NAT"
on_c c-curl-passive curl -sS --max-time 30 -o big.bin "ftp://$A_WAN:$PORT/big.bin" || true
check_same "$SAMPLE/big.bin" "$WORK/c-curl-passive/big.bin" "curl (passive) behind NAT"

note "Active: C asks A to connect to $C:$DATA_PORT, but A sees the control connection"
note "coming from $R_WAN and has no route to $C, so the server refuses:"
rc=0
on_c c-active ftclient "$A_WAN" "$PORT" -g big.bin "$DATA_PORT" || rc=$?
fails_cleanly "$rc" "$WORK/c-active/big.bin" "ftclient active behind NAT"
rc=0
on_c c-curl-active curl -sS --max-time 30 -P - -o big.bin "ftp://$A_WAN:$PORT/big.bin" || rc=$?
if [ "$rc" = 30 ]; then note "(curl's exit status 30 means \"FTP PORT failed\": the server refused the address)"; fi
fails_cleanly "$rc" "$WORK/c-curl-active/big.bin" "curl -P - (active) behind NAT"
note "That is why passive mode exists: the client opens every connection itself, which"
note "firewalls and NAT routers allow. (Some routers rewrite PORT commands with an FTP"
note "helper; this one does not, like most.)"

step "What the server on host A logged"
note "Cut to the data connections: B's EPRT carries B's address ($B) and port $DATA_PORT; C's"
note "carries its private address, which the server refuses; EPSV means passive mode."
show_log "$WORK/server.log"

step "Stop the server and remove the namespaces"
show hostA kill -TERM "$SERVER_PID"
stop_pid "$SERVER_PID"
SERVER_PID=
for ns in "${CREATED[@]}"; do net ip netns del "$ns"; done
CREATED=()

summary "host B lists and downloads from host A in active and passive mode; passive also works behind NAT, active does not"
