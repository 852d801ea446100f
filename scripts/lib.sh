# shellcheck shell=bash
# Shell helpers shared by scripts/demo.sh and scripts/two-hosts.sh: build, sample files,
# printing each command before it runs, sha256 checks, waiting for the server's ready line.
# Sourced, not run. Needs bash, coreutils (timeout, sha256sum) and python3.

FT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FT_CHECKS=0
FT_FAILED=()

if [ -t 1 ]; then
    FT_BOLD=$'\033[1m' FT_GREEN=$'\033[32m' FT_RED=$'\033[31m' FT_DIM=$'\033[2m' FT_OFF=$'\033[0m'
else
    FT_BOLD='' FT_GREEN='' FT_RED='' FT_DIM='' FT_OFF=''
fi

# A numbered step heading.
FT_STEP=0
step() {
    FT_STEP=$((FT_STEP + 1))
    printf '\n%s%d. %s%s\n' "$FT_BOLD" "$FT_STEP" "$*" "$FT_OFF"
}

# A line of explanation for the student.
note() {
    printf '   %s\n' "$@"
}

# Lines of program output, indented so they stand apart from the commands.
indent() {
    sed 's/^/     | /'
}

# Quotes one word the way a person would type it: bare when safe, else in single quotes.
quote_word() {
    case $1 in
        '&' | '|' | '>' | '<') printf '%s' "$1" ;; # shell operators, shown as typed
        '' | *[!A-Za-z0-9_./:=@%+,-]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
        *) printf '%s' "$1" ;;
    esac
}

# Prints "<prompt>$ cmd args" exactly as it could be typed.
show() {
    local prompt=$1 line='' w
    shift
    for w in "$@"; do line+=" $(quote_word "$w")"; done
    printf '   %s%s$%s%s\n' "$FT_DIM" "$prompt" "$FT_OFF" "$line"
}

die() {
    printf '%s: %s\n' "$FT_SCRIPT" "$*" >&2
    exit 1
}

# Records one check: check <ok:0|1> <what>.
check() {
    FT_CHECKS=$((FT_CHECKS + 1))
    if [ "$1" = 0 ]; then
        printf '   %sok%s    %s\n' "$FT_GREEN" "$FT_OFF" "$2"
    else
        printf '   %sFAIL%s  %s\n' "$FT_RED" "$FT_OFF" "$2"
        FT_FAILED+=("$2")
    fi
}

sha() {
    sha256sum <"$1" | cut -c1-64
}

# check_same <original> <downloaded> <what>: the download must exist and have the original's sha256.
check_same() {
    local want got name
    want=$(sha "$1")
    name=$(basename "$2")
    if [ ! -f "$2" ]; then
        check 1 "$3: no file $name was saved"
        return
    fi
    got=$(sha "$2")
    if [ "$want" = "$got" ]; then
        check 0 "$3: $name has $(stat -c %s "$2") bytes, sha256 ${got:0:16}... same as the original"
    else
        check 1 "$3: $name has sha256 ${got:0:16}..., the original ${want:0:16}..."
    fi
}

# check_listing <expected file> <actual file> <what>
check_listing() {
    local n
    n=$(wc -l <"$1")
    if diff -q "$1" "$2" >/dev/null; then
        if [ "$n" = 1 ]; then n="1 entry"; else n="$n entries"; fi
        check 0 "$3: lists exactly what the directory holds ($n)"
    else
        check 1 "$3: listing differs from what the server's directory holds"
        diff -u "$1" "$2" | sed 's/^/         /' || true
    fi
}

# Prints the final summary line and returns 0 only when every check passed.
summary() {
    local seconds=$((SECONDS - FT_START)) f
    echo
    if [ ${#FT_FAILED[@]} -eq 0 ] && [ "$FT_CHECKS" -gt 0 ]; then
        printf '%s%s: all %d checks passed (%s) in %ds%s\n' \
            "$FT_GREEN" "$FT_SCRIPT" "$FT_CHECKS" "$1" "$seconds" "$FT_OFF"
        return 0
    fi
    printf '%s%s: FAILED %d of %d checks in %ds:%s\n' \
        "$FT_RED" "$FT_SCRIPT" "${#FT_FAILED[@]}" "$FT_CHECKS" "$seconds" "$FT_OFF"
    for f in "${FT_FAILED[@]}"; do printf '   - %s\n' "$f"; done
    return 1
}

# A TCP port that is free right now on this machine (the kernel picks it; >= 1024).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Builds the release binaries (unless FT_BIN_DIR names a directory that already holds them)
# and puts them first on PATH, so the commands shown are exactly the commands run.
build_release() {
    if [ -n "${FT_BIN_DIR:-}" ]; then
        FT_BIN=$(cd "$FT_BIN_DIR" && pwd)
        note "using the binaries in $FT_BIN (FT_BIN_DIR)"
    else
        command -v cargo >/dev/null ||
            die "cargo not found on PATH: install Rust (https://rustup.rs), or build first with 'cargo build --release' and run with FT_BIN_DIR=target/release (under sudo: sudo FT_BIN_DIR=target/release $0)"
        show "" cargo build --release
        (cd "$FT_ROOT" && timeout 1200 cargo build --release --quiet) ||
            die "cargo build --release failed"
        local target
        target=$(cd "$FT_ROOT" && cargo metadata --format-version 1 --no-deps |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') ||
            die "cannot find cargo's target directory"
        FT_BIN=$target/release
    fi
    [ -x "$FT_BIN/ftserver" ] && [ -x "$FT_BIN/ftclient" ] ||
        die "ftserver and ftclient not found in $FT_BIN"
    PATH=$FT_BIN:$PATH
    export PATH
    note "ftserver and ftclient are in ${FT_BIN#"$PWD"/}"
}

# make_sample <dir>: the files the server shares. Prints nothing; list_sample describes them.
make_sample() {
    mkdir -p "$1/docs"
    printf 'FTP uses two connections.\nThe control connection carries commands and replies.\nThe data connection carries the file.\n' >"$1/notes.txt"
    printf 'A file inside a sub-directory.\n' >"$1/docs/guide.txt"
    printf 'A file whose name has a space in it.\n' >"$1/read me.txt"
    # Bytes that a text-mode transfer would damage come first, then 3 MiB of random bytes.
    { printf '\0\r\n\n\r\0\r'; head -c 3145728 /dev/urandom; } >"$1/big.bin"
    # What `ftclient -l` must print for the top directory: sorted, directories end in "/".
    printf '%s\n' big.bin docs/ notes.txt 'read me.txt' >"$1.expected-list"
    printf '%s\n' guide.txt >"$1.expected-list-docs"
}

list_sample() {
    (cd "$1" && find . -type f | LC_ALL=C sort | while read -r f; do
        printf '%10d bytes  sha256 %.16s...  %s\n' "$(stat -c %s "$f")" "$(sha "$f")" "${f#./}"
    done) | indent
}

# show_log <server stderr file>: the lines of an `ftserver -v` log that tell the data-connection
# story (EPRT/PORT or EPSV/PASV, then the transfer, and refusals), without the timestamp prefix.
show_log() {
    sed -n -E 's/^\[[^]]*\] //; /: (EPRT|PORT|EPSV|PASV|RETR|LIST|NLST|MLSD)( |$)|refused/p' "$1" | indent
}

# wait_ready <stdout file> <pid> <seconds>: polls until the server prints its ready line, then
# prints the port from it. Fails if the server exits first or the deadline passes.
wait_ready() {
    local deadline=$((SECONDS + $3)) line
    while [ "$SECONDS" -lt "$deadline" ]; do
        # `ftserver: serving ROOT on ADDR:PORT (what is exposed)`: the port is what follows the
        # last colon before the parenthesis.
        line=$(grep -s -m1 '^ftserver: serving .* on .*:[0-9][0-9]* (.*)$' "$1" || true)
        if [ -n "$line" ]; then
            line=${line% (*}
            printf '%s\n' "${line##*:}"
            return 0
        fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop_pid <pid>: SIGTERM (what Ctrl-C would do), then SIGKILL after 5 s if it is still running.
stop_pid() {
    local pid=$1 deadline=$((SECONDS + 5))
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while [ "$SECONDS" -lt "$deadline" ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# run_client <netns or ""> <prompt> <dir> <out> <err> cmd...: shows the command, runs it in <dir>
# (inside the network namespace if one is named) under a timeout, shows what it printed, and
# returns the command's exit status.
run_client() {
    local ns=$1 prompt=$2 dir=$3 out=$4 err=$5 rc=0
    shift 5
    local in=()
    [ -n "$ns" ] && in=(ip netns exec "$ns")
    show "$prompt" "$@"
    (cd "$dir" && timeout --foreground 60 "${in[@]}" "$@" >"$out" 2>"$err") || rc=$?
    cat "$out" "$err" | indent
    if [ "$rc" = 124 ]; then printf '     (stopped after 60 s)\n'; fi
    return "$rc"
}
